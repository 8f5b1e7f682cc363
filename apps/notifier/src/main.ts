import 'reflect-metadata';
import { hostname } from 'node:os';
import { NestFactory } from '@nestjs/core';
import {
  DEFAULT_TOPOLOGY,
  bucketDeclarations,
  consumerDeclarations,
  newWorkerId,
  streamDeclarations,
} from '@gantry/contracts';
import { loadConfigOrExit } from '@gantry/config';
import { JetStreamServer, NatsHandle, provision } from '@gantry/jetstream';
import { createLogger, createRegistry, NestPinoLogger, startOpsServer, startTelemetry } from '@gantry/telemetry';
import { NotifierModule } from './app.module';
import { notifierRefinements, notifierSpec } from './config';
import { DeliveryService } from './delivery/delivery.service';
import { WebhookSigner } from './delivery/signer';
import { IntakeService } from './intake/intake.service';
import { NotifierMetrics } from './notifier-metrics';

async function main(): Promise<void> {
  const config = loadConfigOrExit('notifier', notifierSpec, notifierRefinements);
  const telemetry = startTelemetry('notifier');
  const logger = createLogger('notifier', config.LOG_LEVEL);
  const registry = createRegistry('notifier');
  const id = newWorkerId(`notifier-${hostname()}`);
  const live: { nats?: NatsHandle; started: boolean } = { started: false };
  const ops = await startOpsServer({
    host: config.HTTP_HOST,
    port: config.NOTIFIER_HTTP_PORT,
    registry,
    readiness: () => ({
      ready: live.started && !!live.nats?.connected,
      detail: { nats: live.nats?.connected ?? false, notifierId: id },
    }),
  });
  logger.info({ url: ops.url }, 'notifier ops endpoint listening');

  const nats = await NatsHandle.connect({ servers: config.NATS_URL, name: id, logger });
  live.nats = nats;
  const topology = {
    ...DEFAULT_TOPOLOGY,
    replicas: config.NATS_REPLICAS,
    retentionMs: config.JOB_RETENTION_HOURS * 3_600_000,
    webhookMaxPending: config.WEBHOOK_MAX_PENDING,
    webhookAckWaitMs: config.WEBHOOK_TIMEOUT_MS + 30_000,
  };
  const streams = streamDeclarations(topology);
  const consumers = consumerDeclarations(topology);
  await provision(
    nats,
    {
      streams: [streams.jobs, streams.webhooks, streams.webhookDlq],
      buckets: [bucketDeclarations(topology).progressThrottle],
    },
    logger,
  );

  const metrics = new NotifierMetrics(registry, () => live.nats);
  const intake = new IntakeService(nats, config.WEBHOOK_PROGRESS_INTERVAL_MS, metrics);
  await intake.start();
  const deliveries = new DeliveryService(
    nats,
    new WebhookSigner(config.WEBHOOK_SECRET, config.WEBHOOK_SECRETS),
    {
      timeoutMs: config.WEBHOOK_TIMEOUT_MS,
      retryDelaysMs: config.WEBHOOK_RETRY_DELAYS_MS,
      endpointConcurrency: config.WEBHOOK_ENDPOINT_CONCURRENCY,
      allowPrivate: config.ALLOW_PRIVATE_URLS,
    },
    metrics,
    logger,
  );
  const strategy = new JetStreamServer({
    nats,
    logger,
    rpcQueueGroup: 'notifier',
    bindings: {
      intake: { consumer: consumers.notifierIntake, maxInFlight: 64 },
      deliveries: { consumer: consumers.notifierDeliveries, maxInFlight: config.WEBHOOK_MAX_IN_FLIGHT },
    },
    drainTimeoutMs: config.WEBHOOK_TIMEOUT_MS + 5_000,
  });
  const app = await NestFactory.createMicroservice(NotifierModule.register(intake, deliveries), {
    strategy,
    logger: new NestPinoLogger(logger),
  });
  await app.listen();
  live.started = true;
  logger.info({ notifierId: id }, 'notifier started');

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'notifier stopping');
    await app.close().catch(() => undefined);
    await nats.drain();
    await ops.close();
    await telemetry.shutdown();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

main().catch((err: unknown) => {
  process.stderr.write(
    `notifier failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exit(1);
});
