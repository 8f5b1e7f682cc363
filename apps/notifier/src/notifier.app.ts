/**
 * Builds and starts one notifier replica: provisioning, intake (lifecycle events → deliveries), delivery (attempts,
 * retries, dead letters), the failed-list/replay request handlers and the ops endpoint. `main.ts` adds the process
 * concerns (config from the environment, tracing, signals); tests start replicas in-process with this function.
 */
import { hostname } from 'node:os';
import {
  BUCKETS,
  topologyFor,
  HEADERS,
  bucketDeclarations,
  consumerDeclarations,
  newWorkerId,
  streamDeclarations,
} from '@gantry/contracts';
import { JetStreamServer, ServiceHost } from '@gantry/jetstream';
import { OutputStore } from '@gantry/storage';
import { createRegistry, type Logger } from '@gantry/telemetry';
import { NotifierModule } from './app.module';
import type { NotifierConfig } from './config';
import { DeadLetterService } from './dead-letters/dead-letter.service';
import { DeliveryService } from './delivery/delivery.service';
import { EndpointGate } from './delivery/endpoint-gate';
import { EndpointParking } from './delivery/endpoint-parking';
import { FairSlots } from './delivery/fair-slots';
import { DeliveryQueue, TenantLanes } from './delivery/tenant-lanes';
import { WebhookSigner } from './delivery/signer';
import { WebhookSender } from './delivery/webhook-sender';
import { INTAKE_CONCURRENCY, IntakeService } from './intake/intake.service';
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
/** How often a replica moves parked deliveries back to endpoints with room again. */
const PARKED_SWEEP_MS = 2_000;
/** How often a replica looks for tenants' delivery consumers created by other replicas. */
const TENANT_DISCOVERY_MS = 2_000;

export function startNotifier(config: NotifierConfig, logger: Logger): Promise<RunningNotifier> {
  const registry = createRegistry('notifier');
  const id = newWorkerId(`notifier-${hostname()}`);
  const ops = { host: config.HTTP_HOST, port: config.NOTIFIER_HTTP_PORT };
  return ServiceHost.start({ service: 'notifier', id, logger, registry, ops }, async (host) => {
    const nats = await host.connect({ servers: config.NATS_URL, auth: config });
    let started = false;
    host.readiness.set(() => ({
      ready: started && nats.connected,
      detail: { nats: nats.connected, notifierId: id },
    }));
    const topology = topologyFor(config, {
      webhookMaxPending: config.WEBHOOK_MAX_PENDING,
      // Handlers renew their messages with working() while they run, so AckWait only decides how soon the
      // deliveries of a replica that died (kill -9) mid-attempt are handed to another.
      webhookAckWaitMs: config.WEBHOOK_TIMEOUT_MS + 5_000,
      webhookTenantMaxPending: config.WEBHOOK_TENANT_MAX_PENDING,
    });
    const streams = streamDeclarations(topology);
    const consumers = consumerDeclarations(topology);
    await host.provision(nats, {
      streams: [streams.jobs, streams.webhooks, streams.webhookParked, streams.webhookDlq],
      buckets: [bucketDeclarations(topology).progressThrottle],
    });

    const gate = new EndpointGate({
      concurrency: config.WEBHOOK_ENDPOINT_CONCURRENCY,
      queueLimit: config.WEBHOOK_ENDPOINT_QUEUE,
      failureThreshold: config.WEBHOOK_CIRCUIT_FAILURES,
      cooldownMs: config.WEBHOOK_CIRCUIT_COOLDOWN_MS,
      timeoutMs: config.WEBHOOK_TIMEOUT_MS,
    });
    const metrics = new NotifierMetrics(
      registry,
      () => nats,
      () => gate.openCircuits(),
    );
    const outputs = new OutputStore(config);
    host.onClose('output store', () => outputs.destroy());
    const queue = new DeliveryQueue(nats, topology, logger);
    const deadLetters = new DeadLetterService(nats, metrics, logger, queue);
    const intake = new IntakeService(
      queue,
      new ProgressThrottle(await nats.kvm.open(BUCKETS.progressThrottle), config.WEBHOOK_PROGRESS_INTERVAL_MS),
      metrics,
    );
    const parking = new EndpointParking({
      nats,
      perEndpoint: config.WEBHOOK_ENDPOINT_MAX_PENDING,
      sweepMs: PARKED_SWEEP_MS,
      logger,
      counted: metrics,
    });
    const deliveries = new DeliveryService(
      queue,
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
      Date.now,
      config.WEBHOOK_ENDPOINT_MAX_PENDING > 0 ? parking : undefined,
    );
    const drainTimeoutMs = config.WEBHOOK_TIMEOUT_MS + 5_000;
    const strategy = new JetStreamServer({
      nats,
      logger,
      registry,
      rpcQueueGroup: 'notifier',
      bindings: {
        intake: {
          consumer: consumers.notifierIntake,
          // Read ahead, and tenants take turns (intake.service.ts): a quiet tenant never waits behind a flood.
          maxInFlight: config.WEBHOOK_INTAKE_WINDOW,
          maxBytesInFlight: config.WEBHOOK_INTAKE_WINDOW_BYTES,
          // A revision is the job's record (at most MAX_JOB_BYTES of spec) plus its state fields and headers.
          maxMessageBytes: config.MAX_JOB_BYTES + 16 * 1024,
          fair: { key: (h) => h?.get(HEADERS.tenant) ?? '', concurrency: INTAKE_CONCURRENCY },
          // Revisions of jobs without a callback owe no webhook: acked unread.
          wants: (h) => h?.get(HEADERS.callback) !== '0',
        },
        // Deliveries enqueued before v1.1 (one subject per endpoint); new ones go through the tenants' lanes.
        deliveries: { consumer: consumers.notifierDeliveries, maxInFlight: config.WEBHOOK_TENANT_MAX_IN_FLIGHT },
      },
      drainTimeoutMs,
    });
    const app = await host.microservice(
      NotifierModule.register({ intake, deliveries, deadLetters }),
      strategy,
      drainTimeoutMs + 5_000,
    );
    await app.listen();
    const lanes = new TenantLanes({
      nats,
      queue,
      slots: new FairSlots(config.WEBHOOK_MAX_IN_FLIGHT),
      handler: (d, ctx) => deliveries.handle(d, ctx),
      perTenant: config.WEBHOOK_TENANT_MAX_IN_FLIGHT,
      discoveryMs: TENANT_DISCOVERY_MS,
      heartbeatMs: Math.max(100, Math.floor((config.WEBHOOK_TIMEOUT_MS + 5_000) / 3)),
      logger,
    });
    await lanes.start();
    parking.start();
    host.onClose('parked deliveries', () => parking.close());
    // Closed before the transport (steps close in reverse order): in-flight deliveries finish, bounded.
    host.onClose('tenant lanes', () => lanes.close(drainTimeoutMs), drainTimeoutMs + 5_000);
    const pruner = setInterval(() => gate.prune(ENDPOINT_IDLE_MS), 60_000);
    pruner.unref();
    host.onClose('endpoint pruner', () => clearInterval(pruner));
    started = true;
    logger.info({ notifierId: id }, 'notifier started');
    return { id, opsUrl: host.opsUrl, close: () => host.close() };
  });
}
