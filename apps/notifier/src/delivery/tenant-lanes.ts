/**
 * Tenant isolation of webhook deliveries (API.md §5: no tenant's endpoints delay another tenant's deliveries).
 *
 * - **Durable, bounded per tenant.** Every delivery is published on its tenant's subject of the deliveries stream,
 *   `gantry.v1.webhook.<tenant>.<endpointHash>`, and each tenant has its own durable consumer
 *   (`notifier_deliveries_v1_t_<tenant>`, shared by the replicas) whose MaxAckPending is `WEBHOOK_TENANT_MAX_PENDING`:
 *   at most that many of the tenant's deliveries are handed out or waiting for a retry at once; the rest wait in the
 *   stream (WorkQueue, no max age), outside every other tenant's budget — a tenant's dead callbacks can fill its own
 *   consumer, never a shared one. Restarts and `kill -9` lose nothing: a delivery leaves the stream only when acked.
 * - **Fair slots.** A replica pulls at most `WEBHOOK_TENANT_MAX_IN_FLIGHT` of a tenant's messages at once (its lane),
 *   and each one then waits for one of the replica's `WEBHOOK_MAX_IN_FLIGHT` slots, handed out round-robin over the
 *   tenants ({@link FairSlots}). So 32 hanging hostnames of one tenant hold at most its lane, and another tenant's
 *   delivery gets a slot within one turn. Per endpoint, the {@link EndpointGate} still bounds attempts in flight.
 *
 * Consumers are created when a replica enqueues a tenant's first delivery, and every replica finds the tenants'
 * consumers by listing them (at start and every `discoveryMs`), so a delivery enqueued by one replica is served by all.
 */
import {
  CHANNELS,
  CONSUMERS,
  STREAMS,
  SUBJECTS,
  tenantDeliveriesConsumer,
  type ConsumerDeclaration,
  type TopologyOptions,
  type WebhookDelivery,
} from '@gantry/contracts';
import {
  decodePayload,
  ensureConsumer,
  isNotFound,
  JetStreamContext,
  PoisonMessageError,
  publishJson,
  settleAfterFailure,
  type NatsHandle,
} from '@gantry/jetstream';
import type { Consumer, ConsumerMessages, JsMsg } from '@nats-io/jetstream';
import { ATTR, extractTrace, inSpan, processAttributes, recordError, SpanKind, type Logger } from '@gantry/telemetry';
import type { Attributes } from '@opentelemetry/api';
import { endpointHash } from './endpoint';
import type { FairSlots } from './fair-slots';

/** Publishes deliveries on their tenant's subject, making sure the tenant's consumer exists first. */
export class DeliveryQueue {
  private readonly known = new Map<string, Promise<void>>();
  private readonly listeners: Array<(tenant: string) => void> = [];

  constructor(
    private readonly nats: NatsHandle,
    private readonly topology: TopologyOptions,
    private readonly logger: Logger,
  ) {}

  /** Called once per tenant whose consumer this replica created or confirmed. */
  onTenant(listener: (tenant: string) => void): void {
    this.listeners.push(listener);
  }

  /** The tenant's consumer exists (created if needed; once per tenant and process). */
  ensure(tenant: string): Promise<void> {
    let p = this.known.get(tenant);
    if (!p) {
      p = ensureConsumer(this.nats.jsm, this.declaration(tenant), this.logger).then(() => {
        for (const l of this.listeners) l(tenant);
      });
      // A failure is not remembered: the next delivery of the tenant tries again.
      p.catch(() => this.known.delete(tenant));
      this.known.set(tenant, p);
    }
    return p;
  }

  declaration(tenant: string): ConsumerDeclaration {
    return tenantDeliveriesConsumer(tenant, this.topology);
  }

  async publish(d: WebhookDelivery, o: { msgID: string; spanName: string; attributes?: Attributes }): Promise<void> {
    await this.ensure(d.tenant);
    await publishJson(this.nats.js, SUBJECTS.webhookOf(d.tenant, endpointHash(d.url)), d, o);
  }
}

export interface TenantLanesOptions {
  nats: NatsHandle;
  queue: DeliveryQueue;
  slots: FairSlots;
  handler: (d: WebhookDelivery, ctx: JetStreamContext) => Promise<void>;
  /** Messages of one tenant a replica holds at once (handled or waiting for a slot). */
  perTenant: number;
  /** How often the replica looks for tenants' consumers created by other replicas. */
  discoveryMs: number;
  /** `working()` period while a message is held. */
  heartbeatMs: number;
  logger: Logger;
}

interface Lane {
  tenant: string;
  stop(): void;
  done: Promise<void>;
  inFlight(): number;
}

const BINDING = 'deliveries';

export class TenantLanes {
  private readonly lanes = new Map<string, Lane>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly o: TenantLanesOptions) {
    o.queue.onTenant((t) => this.open(t));
  }

  async start(): Promise<void> {
    await this.discover();
    this.timer = setInterval(() => {
      this.discover().catch((err: unknown) =>
        this.o.logger.warn({ err: String(err) }, 'listing tenant delivery consumers failed'),
      );
    }, this.o.discoveryMs);
    this.timer.unref();
  }

  /** Tenants served by this replica now. */
  get tenants(): string[] {
    return [...this.lanes.keys()];
  }

  private async discover(): Promise<void> {
    const prefix = CONSUMERS.notifierTenantDeliveriesPrefix;
    for await (const ci of this.o.nats.jsm.consumers.list(STREAMS.webhooks)) {
      const name = ci.config.durable_name ?? ci.name;
      if (name.startsWith(prefix)) this.open(name.slice(prefix.length));
    }
  }

  private open(tenant: string): void {
    if (this.closed || this.lanes.has(tenant)) return;
    this.lanes.set(tenant, this.lane(tenant));
    this.o.logger.debug({ tenant }, 'serving the tenant’s webhook deliveries');
  }

  private lane(tenant: string): Lane {
    const { nats, logger, perTenant } = this.o;
    const durable = CONSUMERS.notifierTenantDeliveries(tenant);
    let stopped = false;
    let current: ConsumerMessages | undefined;
    let inFlight = 0;
    let wake: (() => void) | undefined;
    const freed = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    const tasks = new Set<Promise<void>>();
    const done = (async () => {
      let consumer: Consumer | undefined;
      let failures = 0;
      while (!stopped) {
        if (inFlight >= perTenant) {
          await new Promise<void>((r) => (wake = r));
          continue;
        }
        try {
          consumer ??= await nats.js.consumers.get(STREAMS.webhooks, durable);
          current = await consumer.fetch({ max_messages: perTenant - inFlight, expires: 5_000 });
          for await (const m of current) {
            inFlight++;
            const task = this.handle(tenant, m).finally(() => {
              inFlight--;
              tasks.delete(task);
              freed();
            });
            tasks.add(task);
          }
          failures = 0;
        } catch (err) {
          if (stopped) break;
          failures++;
          const delay = Math.min(5_000, 100 * 2 ** Math.min(failures, 6));
          logger.warn({ tenant, err: String(err), retryInMs: delay }, 'tenant delivery pull failed; retrying');
          await new Promise((r) => setTimeout(r, delay));
          if (isNotFound(err) || failures > 3) {
            // Deleted by an operator: put it back (the messages are still in the stream).
            await this.o.queue.ensure(tenant).catch(() => undefined);
            await ensureConsumer(nats.jsm, this.o.queue.declaration(tenant), logger).catch(() => undefined);
            consumer = undefined;
          }
        }
      }
      await Promise.allSettled([...tasks]);
    })();
    return {
      tenant,
      done,
      inFlight: () => inFlight,
      stop: () => {
        stopped = true;
        current?.stop();
        freed();
      },
    };
  }

  /** One message: renewed while held, a fair slot, the delivery handler, settled as the JetStream transport settles (settleAfterFailure). */
  private async handle(tenant: string, m: JsMsg): Promise<void> {
    const ctx = new JetStreamContext(m, BINDING, this.o.nats.nc);
    const timer = setInterval(() => ctx.working(), this.o.heartbeatMs);
    const release = await this.o.slots.acquire(tenant);
    try {
      const attributes = processAttributes(m.subject, {
        [ATTR.consumer]: BINDING,
        [ATTR.deliveryCount]: m.info.deliveryCount,
        [ATTR.streamSeq]: m.seq,
        'gantry.tenant': tenant,
      });
      await inSpan(
        `${m.subject} process`,
        { kind: SpanKind.CONSUMER, parent: extractTrace(m.headers), attributes },
        async (span) => {
          try {
            let d: WebhookDelivery;
            try {
              d = decodePayload(CHANNELS.webhooks, m.data);
            } catch (err) {
              throw new PoisonMessageError(`undecodable payload on ${m.subject}`, { cause: err });
            }
            await this.o.handler(d, ctx);
            ctx.ack();
          } catch (err) {
            recordError(span, err);
            settleAfterFailure(ctx, m, err, { logger: this.o.logger, item: 'delivery' });
          }
        },
      );
    } finally {
      clearInterval(timer);
      release();
    }
  }

  /** Stops pulling and waits (bounded) for the messages held. */
  async close(timeoutMs: number): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    for (const l of this.lanes.values()) l.stop();
    let t: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.lanes.values()].map((l) => l.done)),
      new Promise((r) => (t = setTimeout(r, timeoutMs))),
    ]);
    if (t) clearTimeout(t);
  }
}
