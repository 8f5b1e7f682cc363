/**
 * Builds and starts one notifier replica: provisioning, intake (lifecycle events → deliveries), delivery (attempts,
 * retries, dead letters), the failed-list/replay request handlers and the ops endpoint. `main.ts` adds the process
 * concerns (config from the environment, tracing, signals); tests start replicas in-process with this function.
 */
import { hostname } from 'node:os';
import { NestFactory } from '@nestjs/core';
import type { INestMicroservice } from '@nestjs/common';
import {
  BUCKETS,
  topologyFor,
  HEADERS,
  bucketDeclarations,
  consumerDeclarations,
  newWorkerId,
  streamDeclarations,
} from '@gantry/contracts';
import { JetStreamServer, NatsHandle, provision } from '@gantry/jetstream';
import { OutputStore } from '@gantry/storage';
import { createRegistry, NestPinoLogger, startOpsServer, type Logger, type OpsServer } from '@gantry/telemetry';
import { NotifierModule } from './app.module';
import type { NotifierConfig } from './config';
import { DeadLetterService } from './dead-letters/dead-letter.service';
import { DeliveryService } from './delivery/delivery.service';
import { EndpointGate } from './delivery/endpoint-gate';
import { WebhookSigner } from './delivery/signer';
import { WebhookSender } from './delivery/webhook-sender';
import { IntakeService } from './intake/intake.service';
import { ProgressThrottle } from './intake/progress-throttle';
import { NotifierMetrics } from './notifier-metrics';

export interface RunningNotifier {
  id: string;
  /** Base URL of /healthz, /readyz and /metrics. */
  opsUrl: string;
  /** Stops pulling, finishes in-flight attempts (bounded), drains NATS. */
  close(): Promise<void>;
}

/** Endpoints idle this long are forgotten by the gate. */
const ENDPOINT_IDLE_MS = 5 * 60_000;

export async function startNotifier(config: NotifierConfig, logger: Logger): Promise<RunningNotifier> {
  const registry = createRegistry('notifier');
  const id = newWorkerId(`notifier-${hostname()}`);
  const live: { nats?: NatsHandle; started: boolean } = { started: false };
  const ops: OpsServer = await startOpsServer({
    host: config.HTTP_HOST,
    port: config.NOTIFIER_HTTP_PORT,
    registry,
    readiness: () => ({
      ready: live.started && !!live.nats?.connected,
      detail: { nats: live.nats?.connected ?? false, notifierId: id },
    }),
  });
  logger.info({ url: ops.url }, 'notifier ops endpoint listening');

  const nats = await NatsHandle.connect({ servers: config.NATS_URL, name: id, logger, auth: config });
  live.nats = nats;
  const topology = topologyFor(config, {
    webhookMaxPending: config.WEBHOOK_MAX_PENDING,
    // Handlers renew their messages with working() while they run, so AckWait only decides how soon the
    // deliveries of a replica that died (kill -9) mid-attempt are handed to another.
    webhookAckWaitMs: config.WEBHOOK_TIMEOUT_MS + 5_000,
  });
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

  const gate = new EndpointGate({
    concurrency: config.WEBHOOK_ENDPOINT_CONCURRENCY,
    queueLimit: config.WEBHOOK_ENDPOINT_QUEUE,
    failureThreshold: config.WEBHOOK_CIRCUIT_FAILURES,
    cooldownMs: config.WEBHOOK_CIRCUIT_COOLDOWN_MS,
    timeoutMs: config.WEBHOOK_TIMEOUT_MS,
  });
  const metrics = new NotifierMetrics(
    registry,
    () => live.nats,
    () => gate.openCircuits(),
  );
  const outputs = new OutputStore(config);
  const deadLetters = new DeadLetterService(nats, metrics, logger);
  const intake = new IntakeService(
    nats,
    new ProgressThrottle(await nats.kvm.open(BUCKETS.progressThrottle), config.WEBHOOK_PROGRESS_INTERVAL_MS),
    metrics,
  );
  const deliveries = new DeliveryService(
    nats,
    new WebhookSender(new WebhookSigner(config.WEBHOOK_SECRET, config.WEBHOOK_SECRETS), {
      timeoutMs: config.WEBHOOK_TIMEOUT_MS,
      allowPrivate: config.ALLOW_PRIVATE_URLS,
    }),
    gate,
    deadLetters,
    { retryDelaysMs: config.WEBHOOK_RETRY_DELAYS_MS, timeoutMs: config.WEBHOOK_TIMEOUT_MS },
    metrics,
    logger,
    (list) => outputs.presignAll(list),
  );
  const strategy = new JetStreamServer({
    nats,
    logger,
    registry,
    rpcQueueGroup: 'notifier',
    bindings: {
      intake: {
        consumer: consumers.notifierIntake,
        maxInFlight: 64,
        // Revisions of jobs without a callback owe no webhook: acked unread.
        wants: (h) => h?.get(HEADERS.callback) !== '0',
      },
      deliveries: { consumer: consumers.notifierDeliveries, maxInFlight: config.WEBHOOK_MAX_IN_FLIGHT },
    },
    drainTimeoutMs: config.WEBHOOK_TIMEOUT_MS + 5_000,
  });
  const app: INestMicroservice = await NestFactory.createMicroservice(
    NotifierModule.register({ intake, deliveries, deadLetters }),
    { strategy, logger: new NestPinoLogger(logger) },
  );
  await app.listen();
  const pruner = setInterval(() => gate.prune(ENDPOINT_IDLE_MS), 60_000);
  pruner.unref();
  live.started = true;
  logger.info({ notifierId: id }, 'notifier started');

  let closing: Promise<void> | undefined;
  return {
    id,
    opsUrl: ops.url,
    close: () =>
      (closing ??= (async () => {
        clearInterval(pruner);
        live.started = false;
        await app.close().catch((err: unknown) => logger.warn({ err: String(err) }, 'notifier close failed'));
        await nats.drain();
        outputs.destroy();
        await ops.close();
      })()),
  };
}
