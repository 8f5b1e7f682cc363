/**
 * What happens to every request before Nest sees it, as Fastify hooks (so it runs before the body is read):
 *
 * 1. `/v1` routes: the API key is checked (401, or 429 when one client IP keeps presenting none or bad ones);
 * 2. write routes take `application/json` only (415), with a body limit per route (413);
 * 3. submits (`POST /v1/jobs`, `POST /v1/batches`) take one unit of the key's shared rate limit (429 + Retry-After);
 * 4. every answer is counted in the HTTP metrics.
 *
 * The JSON parser accepts an empty body as "no body" (clients send `content-type: application/json` on a bodiless
 * `POST …/cancel`) and refuses bodies nested deeper than {@link MAX_JSON_DEPTH}.
 */
import { createHash } from 'node:crypto';
import { maxHeaderSize, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { presentedKey, type ApiKeyAuthenticator, type AuthedRequest } from '../auth/auth';
import type { SharedRateLimiter } from '../rate-limit/rate-limiter';
import type { HttpMetrics } from './http-metrics';
import { jsonDepth, MAX_JSON_DEPTH } from './json-shape';
import { toProblem } from './problem.filter';
import { problems, type Problem } from './problem';

const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const SUBMIT_ROUTES = new Set(['/v1/jobs', '/v1/batches']);

/** Largest body of `POST /v1/jobs`: a job's fields are bounded far below this (input 256 KiB, metadata 8 KiB). */
export const JOB_BODY_LIMIT_BYTES = 1024 * 1024;
/** Largest body of the other small write routes (cancel, retry, priority, queue config). */
export const SMALL_BODY_LIMIT_BYTES = 64 * 1024;

export interface RequestHooksOptions {
  authenticator: ApiKeyAuthenticator;
  limiter: SharedRateLimiter;
  /** GET/HEAD requests per API key (RATE_LIMIT_READS_PER_MINUTE). */
  readLimiter: SharedRateLimiter;
  metrics: HttpMetrics;
  /** Body limit of `POST /v1/batches` (BODY_LIMIT_BYTES). */
  batchBodyLimit: number;
  /** True once shutdown began: new requests get a 503 problem with Retry-After (another replica can take them). */
  closing: () => boolean;
}

/** Routes as Fastify registered them (for the OpenAPI completeness test and the docs). */
export interface RegisteredRoute {
  method: string;
  url: string;
}

const STARTED = Symbol('gantry.started');
type TimedRequest = FastifyRequest & { [STARTED]?: bigint };

export async function sendProblem(reply: FastifyReply, p: Problem, url: string): Promise<FastifyReply> {
  await reply
    .status(p.status)
    .headers({ 'content-type': 'application/problem+json', ...p.headers })
    .send(JSON.stringify(p.body(url.split('?')[0])));
  return reply;
}

/**
 * Fastify's `frameworkErrors`: what its router refuses before any hook or route runs (an over-long path parameter →
 * 414, a malformed percent-encoding → 400), as problems instead of Fastify's own JSON.
 */
export function answerFrameworkError(err: FastifyError, req: FastifyRequest, reply: FastifyReply): void {
  void sendProblem(reply, toProblem(err), req.raw.url ?? '/');
}

/** The request line (method, URI, version) at the start of a raw packet, when it is there. */
const REQUEST_LINE_START = /^[A-Z]{3,10} [^ \r\n]/;

/**
 * Fastify's `clientErrorHandler`: Node's HTTP parser refused the request before Fastify saw it (headers over
 * `http.maxHeaderSize`, a request it cannot parse, a client too slow to send its request). Answers with a problem and
 * closes the connection, as Node and Fastify do (the stream cannot be trusted after a parse error).
 *
 * Node reports an over-long request line as a header overflow too; when the packet that overflowed starts with a
 * request line that is itself most of the limit, the answer is 414, not 431.
 */
export function answerClientError(err: Error & { code?: string; rawPacket?: unknown }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  let p: Problem;
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT' || err.code === 'ERR_HTTP_REQUEST_TIMEOUT_ERROR') {
    p = problems.requestTimeout();
  } else if (err.code === 'HPE_HEADER_OVERFLOW') {
    const raw = Buffer.isBuffer(err.rawPacket) ? err.rawPacket.toString('latin1') : '';
    const lineEnd = raw.indexOf('\r\n');
    const requestLine = lineEnd < 0 ? raw.length : lineEnd;
    p =
      REQUEST_LINE_START.test(raw) && requestLine > maxHeaderSize / 2
        ? problems.uriTooLong('the request line is too long')
        : problems.headersTooLarge(`the request headers are over ${maxHeaderSize} bytes`);
  } else {
    p = problems.badRequest('the request is not valid HTTP/1.1');
  }
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = JSON.stringify(p.body());
  const head = [
    `HTTP/1.1 ${p.status} ${STATUS_CODES[p.status] ?? 'Error'}`,
    'content-type: application/problem+json',
    `content-length: ${Buffer.byteLength(body)}`,
    'connection: close',
    ...Object.entries(p.headers).map(([k, v]) => `${k}: ${v}`),
  ].join('\r\n');
  // end (not write + destroy): the answer is flushed before the socket closes.
  socket.end(`${head}\r\n\r\n${body}`);
  socket.setTimeout(5_000, () => socket.destroy());
}

function clientSubject(ip: string): string {
  return `ip_${createHash('sha256').update(ip).digest('hex').slice(0, 16)}`;
}

function bodyLimitFor(method: string, url: string, o: RequestHooksOptions): number | undefined {
  if (!WRITE_METHODS.has(method)) return undefined;
  if (url === '/v1/batches') return o.batchBodyLimit;
  // A schedule carries one job request (MAX_JOB_BYTES) besides its own few fields.
  if (url === '/v1/jobs' || url === '/v1/schedules') return Math.min(JOB_BODY_LIMIT_BYTES, o.batchBodyLimit);
  return SMALL_BODY_LIMIT_BYTES;
}

/** A matcher for a route template's paths (`/v1/jobs/:id/cancel`, `/docs/*`). */
function templateMatcher(url: string): RegExp {
  const parts = url.split('/').map((seg) => {
    if (seg === '*') return '.*';
    if (seg.startsWith(':')) return '[^/]+';
    return seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  });
  return new RegExp(`^${parts.join('/')}/?$`);
}

/** Installs the hooks; call before Nest registers its routes (the per-route body limits are set as routes appear). */
export function installRequestHooks(fastify: FastifyInstance, o: RequestHooksOptions): RegisteredRoute[] {
  const routes: RegisteredRoute[] = [];
  const matchers: { method: string; match: RegExp }[] = [];
  /** Methods with a route for this path (for 405 + Allow when the request's method has none). */
  const allowedMethods = (path: string): string[] => {
    const allow = new Set(matchers.filter((m) => m.match.test(path)).map((m) => m.method));
    if (allow.has('GET')) allow.add('HEAD');
    return [...allow].sort();
  };
  fastify.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const m of methods) {
      if (m === 'HEAD') continue;
      routes.push({ method: m, url: route.url });
      matchers.push({ method: m, match: templateMatcher(route.url) });
      const limit = bodyLimitFor(m, route.url, o);
      if (limit !== undefined) route.bodyLimit = limit;
    }
  });

  const defaultJson = fastify.getDefaultJsonParser('error', 'error');
  fastify.removeContentTypeParser('application/json');
  fastify.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') {
      done(null, undefined);
      return;
    }
    void defaultJson(req, text, (err, parsed) => {
      if (err) return done(err, undefined);
      if (jsonDepth(parsed, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) {
        return done(problems.badRequest(`the body is nested deeper than ${MAX_JSON_DEPTH} levels`), undefined);
      }
      done(null, parsed);
    });
  });

  fastify.addHook('onRequest', async (req: AuthedRequest & TimedRequest, reply) => {
    req[STARTED] = process.hrtime.bigint();
    const path = req.url.split('?')[0]!;
    if (o.closing()) {
      void reply.header('connection', 'close');
      return sendProblem(
        reply,
        problems.unavailable('this gateway is shutting down; try again', 1, 'shutting-down'),
        path,
      );
    }
    // No route for this method and path: 405 when the path has routes for other methods, else Nest's 404.
    // Inside /v1 only once the key is checked, like every other answer there.
    const notAllowed = (): Promise<FastifyReply> | undefined => {
      const allow = allowedMethods(path);
      return allow.length > 0 ? sendProblem(reply, problems.methodNotAllowed(req.method, allow), path) : undefined;
    };
    if (!(path === '/v1' || path.startsWith('/v1/'))) return req.is404 ? notAllowed() : undefined;

    const key = presentedKey(req.headers);
    const principal = key ? o.authenticator.authenticate(key) : undefined;
    if (!principal) {
      // Requests without a valid key count against their client IP, so key guessing is rate limited too.
      const d = await o.limiter.take(clientSubject(req.ip));
      if (!d.allowed) {
        o.metrics.rateLimited.inc({ scope: 'ip' });
        return sendProblem(reply, problems.tooMany('too many requests from this address', d.retryAfterSeconds), path);
      }
      return sendProblem(reply, key ? problems.unauthorized('unknown API key') : problems.unauthorized(), path);
    }
    req.principal = principal;
    if (req.is404) return notAllowed();

    if (req.method === 'GET' || req.method === 'HEAD') {
      const d = await o.readLimiter.take(`r_${principal.keyId}`);
      if (!d.allowed) {
        o.metrics.rateLimited.inc({ scope: 'key-reads' });
        return sendProblem(
          reply,
          problems.tooMany(
            'this API key is over its read rate limit (RATE_LIMIT_READS_PER_MINUTE)',
            d.retryAfterSeconds,
            'rate-limited',
          ),
          path,
        );
      }
    }
    if (WRITE_METHODS.has(req.method)) {
      const hasBody = Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
      const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      if ((hasBody || type) && type !== 'application/json') {
        return sendProblem(reply, problems.unsupportedMedia(), path);
      }
      if (req.method === 'POST' && SUBMIT_ROUTES.has(path)) {
        const d = await o.limiter.take(`k_${principal.keyId}`);
        if (!d.allowed) {
          o.metrics.rateLimited.inc({ scope: 'key' });
          return sendProblem(
            reply,
            problems.tooMany(
              `this API key is over its submit rate limit (RATE_LIMIT_SUBMITS_PER_MINUTE)`,
              d.retryAfterSeconds,
              'rate-limited',
            ),
            path,
          );
        }
      }
    }
    return undefined;
  });

  fastify.addHook('onResponse', async (req: TimedRequest, reply) => {
    const started = req[STARTED];
    const seconds = started === undefined ? 0 : Number(process.hrtime.bigint() - started) / 1e9;
    o.metrics.observe(req.method, req.routeOptions?.url ?? 'unmatched', reply.statusCode, seconds);
  });
  return routes;
}
