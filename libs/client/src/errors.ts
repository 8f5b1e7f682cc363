import type { ProblemDetails } from './contracts.js';

/** Base class of every error the client throws; `code` is stable, `cause` keeps the underlying error. */
export class GantryError extends Error {
  override name = 'GantryError';
  constructor(
    readonly code: 'API_ERROR' | 'NETWORK_ERROR' | 'WAIT_TIMEOUT' | 'WEBHOOK_VERIFICATION' | 'STREAM_ERROR',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The gateway answered with an error status; `problem` is its RFC 9457 body. */
export class GantryApiError extends GantryError {
  override name = 'GantryApiError';
  constructor(
    readonly status: number,
    readonly problem: ProblemDetails,
    /** Seconds the gateway asked to wait (`Retry-After` of 429 and 503), when it said. */
    readonly retryAfterSeconds?: number,
  ) {
    super('API_ERROR', apiErrorMessage(status, problem));
  }
}

function apiErrorMessage(status: number, p: ProblemDetails): string {
  const fields = p.errors?.length ? `: ${p.errors.map((e) => `${e.field} ${e.message}`).join('; ')}` : '';
  const detail = p.detail && p.detail !== p.title ? ` — ${p.detail}` : '';
  return `${status} ${p.title}${detail}${fields}`;
}

/** The gateway could not be reached (connection refused, DNS, reset, request timeout). */
export class GantryNetworkError extends GantryError {
  override name = 'GantryNetworkError';
  constructor(message: string, cause?: unknown) {
    super('NETWORK_ERROR', message, { cause });
  }
}

/** `jobs.wait` gave up before the job ended. */
export class WaitTimeoutError extends GantryError {
  override name = 'WaitTimeoutError';
  constructor(
    readonly jobId: string,
    readonly timeoutMs: number,
  ) {
    super('WAIT_TIMEOUT', `job ${jobId} did not end within ${timeoutMs} ms`);
  }
}

/** A webhook's signature, timestamp or body did not verify. */
export class WebhookVerificationError extends GantryError {
  override name = 'WebhookVerificationError';
  constructor(message: string, cause?: unknown) {
    super('WEBHOOK_VERIFICATION', message, { cause });
  }
}
