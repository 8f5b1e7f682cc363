/**
 * RFC 9457 problem details. Every error the gateway returns (401 and 404 included) is `application/problem+json`
 * with `type`, `title`, `status`, `detail` and, for validation failures, `errors: [{ field, message }]`.
 */
import type { FieldError } from '@gantry/contracts';

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  errors?: FieldError[];
}

export class Problem extends Error {
  override readonly name = 'Problem';
  constructor(
    readonly status: number,
    readonly slug: string,
    readonly title: string,
    readonly detail: string,
    readonly errors?: FieldError[],
    readonly headers: Record<string, string> = {},
  ) {
    super(detail);
  }

  body(instance?: string): ProblemBody {
    return {
      type: `urn:gantry:problem:${this.slug}`,
      title: this.title,
      status: this.status,
      detail: this.detail,
      ...(instance ? { instance } : {}),
      ...(this.errors && this.errors.length > 0 ? { errors: this.errors } : {}),
    };
  }
}

export const problems = {
  validation: (errors: FieldError[], detail = 'the request is not valid') =>
    new Problem(400, 'validation-error', 'Invalid request', detail, errors),
  badRequest: (detail: string) => new Problem(400, 'bad-request', 'Bad request', detail),
  unauthorized: (detail = 'a valid API key is required (Authorization: Bearer <key> or X-API-Key)') =>
    new Problem(401, 'unauthorized', 'Unauthorized', detail, undefined, { 'www-authenticate': 'Bearer' }),
  forbidden: (detail = 'this route needs an admin key') => new Problem(403, 'forbidden', 'Forbidden', detail),
  notFound: (detail: string) => new Problem(404, 'not-found', 'Not found', detail),
  methodNotAllowed: (method: string, allow: readonly string[]) =>
    new Problem(
      405,
      'method-not-allowed',
      'Method not allowed',
      `${method} is not allowed here; this route takes ${allow.join(', ')}`,
      undefined,
      { allow: allow.join(', ') },
    ),
  requestTimeout: (detail = 'the request was not received in time') =>
    new Problem(408, 'request-timeout', 'Request timeout', detail),
  conflict: (detail: string) => new Problem(409, 'conflict', 'Conflict', detail),
  tooLarge: (detail: string) => new Problem(413, 'payload-too-large', 'Payload too large', detail),
  uriTooLong: (detail = 'the request URI (or one of its path segments) is too long') =>
    new Problem(414, 'uri-too-long', 'URI too long', detail),
  headersTooLarge: (detail = 'the request headers are too large') =>
    new Problem(431, 'headers-too-large', 'Request header fields too large', detail),
  unsupportedMedia: (detail = 'write routes accept application/json only') =>
    new Problem(415, 'unsupported-media-type', 'Unsupported media type', detail),
  unprocessable: (detail: string) => new Problem(422, 'unprocessable', 'Unprocessable request', detail),
  tooMany: (detail: string, retryAfterSeconds: number, slug = 'too-many-requests') =>
    new Problem(429, slug, 'Too many requests', detail, undefined, {
      'retry-after': String(Math.max(1, Math.ceil(retryAfterSeconds))),
    }),
  unavailable: (detail: string, retryAfterSeconds = 2, slug = 'unavailable') =>
    new Problem(503, slug, 'Service unavailable', detail, undefined, {
      'retry-after': String(Math.max(1, Math.ceil(retryAfterSeconds))),
    }),
  internal: (detail = 'an unexpected error occurred') => new Problem(500, 'internal', 'Internal error', detail),
};
