/** Maps every error to problem+json: our Problems, Nest HTTP exceptions, Fastify errors, and dependency failures. */
import { Catch, HttpException, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import { TransitionRefused } from '@gantry/contracts';
import { RpcError, RpcUnavailableError, isNatsUnavailable } from '@gantry/jetstream';
import { JobConflictError, JobNotFoundError } from '@gantry/job-store';
import type { Logger } from '@gantry/telemetry';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { BatchReadError } from '../batches/batch-manifests';
import { Problem, problems } from './problem';

const HTTP_TITLES: Record<number, string> = {
  401: 'Unauthorized',
  403: 'Forbidden',
  405: 'Method not allowed',
  406: 'Not acceptable',
  408: 'Request timeout',
  409: 'Conflict',
  429: 'Too many requests',
  500: 'Internal error',
  503: 'Service unavailable',
};

function fromFastify(err: { statusCode?: number; code?: string; message?: string }): Problem | undefined {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return problems.tooLarge('the request body is too large');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return problems.unsupportedMedia();
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return problems.uriTooLong('a path segment of the request URI is too long (an id has at most 200 characters)');
    case 'FST_ERR_BAD_URL':
      return problems.badRequest('the request URI is malformed (invalid percent-encoding)');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return problems.badRequest('the JSON body is empty');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return problems.badRequest(`the body is not valid JSON: ${err.message ?? ''}`.trim());
    default:
      break;
  }
  if (err instanceof SyntaxError) return problems.badRequest(`the body is not valid JSON: ${err.message}`);
  if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
    return new Problem(err.statusCode, 'bad-request', 'Bad request', err.message ?? 'bad request');
  }
  return undefined;
}

export function toProblem(err: unknown): Problem {
  if (err instanceof Problem) return err;
  if (err instanceof JobNotFoundError) return problems.notFound(`job ${err.jobId} not found`);
  if (err instanceof TransitionRefused) return problems.conflict(err.message);
  if (err instanceof JobConflictError) return problems.unavailable('the job is being changed by others; try again', 1);
  if (err instanceof RpcError)
    return new Problem(
      err.status,
      'upstream',
      err.title,
      err.detail,
      undefined,
      err.status >= 500 || err.status === 429 ? { 'retry-after': '2' } : {},
    );
  if (err instanceof BatchReadError)
    return problems.unavailable(
      `batch ${err.batchId} could not be read (NATS unavailable); the request changed nothing`,
      2,
      'nats-unavailable',
    );
  if (err instanceof RpcUnavailableError)
    return problems.unavailable(
      'the scheduler did not answer (no leader or NATS unavailable)',
      2,
      'scheduler-unavailable',
    );
  if (err instanceof HttpException) {
    const status = err.getStatus();
    const r = err.getResponse();
    const detail = typeof r === 'string' ? r : ((r as { message?: unknown }).message?.toString() ?? err.message);
    switch (status) {
      case 404:
        return problems.notFound('no such route');
      case 413:
        return problems.tooLarge(detail);
      case 415:
        return problems.unsupportedMedia(detail);
      case 400:
        return problems.badRequest(detail);
      default:
        return new Problem(status, 'http-error', HTTP_TITLES[status] ?? 'Error', detail);
    }
  }
  const f =
    typeof err === 'object' && err !== null ? fromFastify(err as { statusCode?: number; code?: string }) : undefined;
  if (f) return f;
  // By the client's error classes (see isNatsUnavailable), e.g. `JetStreamNotEnabled` when the node holding the stream
  // is down on a cluster (test/cluster/nats-cluster.e2e.ts).
  if (isNatsUnavailable(err)) {
    return problems.unavailable('NATS is unavailable; the request changed nothing', 2, 'nats-unavailable');
  }
  return problems.internal();
}

@Catch()
export class ProblemFilter implements ExceptionFilter {
  constructor(private readonly logger: Logger) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const ctx = host.switchToHttp();
    const reply = ctx.getResponse<FastifyReply>();
    const req = ctx.getRequest<FastifyRequest>();
    const p = toProblem(exception);
    if (p.status >= 500) this.logger.error({ err: exception, path: req.url }, 'request failed');
    void reply
      .status(p.status)
      .headers({ 'content-type': 'application/problem+json', ...p.headers })
      .send(JSON.stringify(p.body(req.url?.split('?')[0])));
  }
}
