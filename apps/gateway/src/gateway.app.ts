/**
 * Builds and starts the gateway: Fastify with the request hooks (auth, media type, body limits, rate limits,
 * metrics), the Nest application, the OpenAPI document (`/openapi.json`, UI at `/docs`) and, once NATS is there, the
 * batch repair consumer. `main.ts` runs it as a process; integration tests run it in-process against a real
 * nats-server.
 */
import type { Server } from 'node:http';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { DocumentBuilder, SwaggerModule, type OpenAPIObject } from '@nestjs/swagger';
import { JobTypeRegistry, systemClock, type Clock } from '@gantry/contracts';
import { ServiceHost } from '@gantry/jetstream';
import { OutputStore } from '@gantry/storage';
import { createRegistry, NestPinoLogger, type Logger, type Registry } from '@gantry/telemetry';
import { GatewayModule } from './app.module';
import { ApiKeyAuthenticator } from './auth/auth';
import { BatchRepairer } from './batches/batch-repairer';
import type { GatewayConfig } from './config';
import { HttpMetrics } from './http/http-metrics';
import {
  answerClientError,
  answerFrameworkError,
  installRequestHooks,
  type RegisteredRoute,
} from './http/request-hooks';
import { GatewayNats } from './nats/gateway-nats';
import { KvQuotaStore } from './rate-limit/kv-quota-store';
import { SharedRateLimiter } from './rate-limit/rate-limiter';
import { installDashboard } from './ui/dashboard';

export interface GatewayOptions {
  config: GatewayConfig;
  logger: Logger;
  registry?: Registry;
  clock?: Clock;
}

export interface Gateway {
  app: NestFastifyApplication;
  nats: GatewayNats;
  url: string;
  openapi: OpenAPIObject;
  /** Every route Fastify registered (method + URL template). */
  routes: RegisteredRoute[];
  close(): Promise<void>;
}

/** On shutdown, how long requests in flight may take before their connections are cut. */
const SHUTDOWN_GRACE_MS = 5_000;
/** How long the server waits for a request's headers and body (slow-client protection); responses may stream. */
const REQUEST_TIMEOUT_MS = 30_000;

export function startGateway(o: GatewayOptions): Promise<Gateway> {
  const registry = o.registry ?? createRegistry('gateway');
  // No ops endpoint of its own: the HTTP app serves /healthz, /readyz and /metrics (HealthController).
  return ServiceHost.start({ service: 'gateway', id: 'gateway', logger: o.logger, registry }, (host) =>
    build(host, o, registry),
  );
}

async function build(host: ServiceHost, o: GatewayOptions, registry: Registry): Promise<Gateway> {
  const { config, logger } = o;
  const clock = o.clock ?? systemClock;
  const metrics = new HttpMetrics(registry);
  const types = JobTypeRegistry.load(config.JOB_TYPES_FILE);
  const outputs = new OutputStore(config);
  host.onClose('output store', () => outputs.destroy());
  // Connects (and provisions) in the background: the API answers 503 until NATS is there.
  const nats = new GatewayNats(config, logger);
  host.onClose('nats', () => nats.close());

  let lastLimiterError = 0;
  const onLimiterError = (err: unknown): void => {
    if (clock.now().getTime() - lastLimiterError < 10_000) return;
    lastLimiterError = clock.now().getTime();
    logger.warn({ err: String(err) }, 'rate-limit store unavailable; admitting without the shared limit');
  };
  const quotaStore = new KvQuotaStore(async (bucket) => (await nats.ready).kvm.open(bucket));
  const limiter = new SharedRateLimiter(quotaStore, () => clock.now().getTime(), {
    limit: config.RATE_LIMIT_SUBMITS_PER_MINUTE,
    windowMs: 60_000,
    onError: onLimiterError,
  });
  // Reads (GET) per key: the same shared counters, other subjects (`r_<key id>`).
  const readLimiter = new SharedRateLimiter(quotaStore, () => clock.now().getTime(), {
    limit: config.RATE_LIMIT_READS_PER_MINUTE,
    windowMs: 60_000,
    onError: onLimiterError,
  });

  const adapter = new FastifyAdapter({
    bodyLimit: config.BODY_LIMIT_BYTES,
    // Our own hook answers during shutdown (problem+json with Retry-After).
    return503OnClosing: false,
    trustProxy: config.TRUST_PROXY,
    requestTimeout: REQUEST_TIMEOUT_MS,
    routerOptions: { maxParamLength: 200 },
    // Errors answered before any hook runs are problems too (API.md §3): the router's (414, malformed URL) and the
    // HTTP parser's (431, 414 for a request line, 400, 408).
    frameworkErrors: answerFrameworkError,
    clientErrorHandler: answerClientError,
  });
  let closing = false;
  const routes = installRequestHooks(adapter.getInstance(), {
    closing: () => closing,
    authenticator: new ApiKeyAuthenticator(config.API_KEYS),
    limiter,
    readLimiter,
    metrics,
    batchBodyLimit: config.BODY_LIMIT_BYTES,
  });
  installDashboard(adapter.getInstance(), { traceUrlTemplate: config.TRACE_URL_TEMPLATE });
  const app = await NestFactory.create<NestFastifyApplication>(
    GatewayModule.register({ config, logger, clock, types, outputs, registry, metrics, nats }),
    adapter,
    // The JSON parser is the one installed by the request hooks (empty body allowed, nesting bounded).
    { logger: new NestPinoLogger(logger), bodyParser: false },
  );

  const openapi = SwaggerModule.createDocument(
    app,
    new DocumentBuilder()
      .setTitle('Gantry')
      .setDescription(
        'A job queue for GPU work. Every `/v1` route needs an API key (`Authorization: Bearer <key>` or `X-API-Key`). ' +
          'Every error is RFC 9457 `application/problem+json`.',
      )
      .setVersion('1')
      .addBearerAuth({ type: 'http', scheme: 'bearer' }, 'bearer')
      .addApiKey({ type: 'apiKey', in: 'header', name: 'X-API-Key' }, 'apiKey')
      .build(),
  );
  SwaggerModule.setup('docs', app, openapi, { jsonDocumentUrl: 'openapi.json', yamlDocumentUrl: 'openapi.yaml' });

  await app.listen(config.GATEWAY_PORT, config.GATEWAY_HOST);
  // Nest ends the event streams first (onModuleDestroy), then closes the server, which waits for requests in flight.
  // Connections that stay open after that (a client that went away without closing its socket) are cut after a
  // grace period rather than holding the shutdown for their keep-alive timeout.
  host.onClose(
    'http',
    async () => {
      const server = app.getHttpServer() as Server;
      const force = setTimeout(() => server.closeAllConnections(), SHUTDOWN_GRACE_MS);
      try {
        await app.close();
      } finally {
        clearTimeout(force);
      }
    },
    SHUTDOWN_GRACE_MS + 5_000,
  );
  const url = (await app.getUrl()).replace('[::1]', '127.0.0.1');

  let repairer: BatchRepairer | undefined;
  const repairStarted = nats.ready.then(async (handle) => {
    if (closing) return;
    repairer = new BatchRepairer(handle, clock, logger, { repairAfterMs: config.BATCH_REPAIR_AFTER_MS });
    await repairer.start();
  });
  repairStarted.catch((err: unknown) => logger.error({ err }, 'batch repair consumer did not start'));
  host.onClose('batch repair', () => repairer?.stop());
  // First of all: new requests get 503 + Retry-After, and a repair consumer not yet started never starts.
  host.onClose('intake', () => {
    closing = true;
  });

  return { app, nats, url, openapi, routes, close: () => host.close() };
}
