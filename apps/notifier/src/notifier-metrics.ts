/**
 * The notifier's Prometheus metrics (docs/webhooks.md lists them with what to alert on). Pending deliveries are read
 * from the broker at scrape time (the delivery consumer's undelivered + unacknowledged messages), so every replica
 * reports the same, true number, waiting retries included.
 */
import { STREAMS, SUBJECTS } from '@gantry/contracts';
import type { NatsHandle } from '@gantry/jetstream';
import { Counter, DURATION_BUCKETS, Gauge, Histogram, type Registry } from '@gantry/telemetry';
import type { FailureReason } from './delivery/webhook-sender';

export type AttemptOutcome = 'success' | 'failure';

/**
 * Tenants exported one by one in `gantry_webhook_parked_tenant` (those with the most parked deliveries); the others are
 * summed under {@link OTHER_TENANTS}. Tenants are as many as API keys and schedules make them: one series per tenant
 * would let the label's cardinality grow without bound.
 */
export const PARKED_TENANT_SERIES = 20;
/** The label value of the tenants beyond the first {@link PARKED_TENANT_SERIES} (not a valid tenant name). */
export const OTHER_TENANTS = '(other)';

/** Parked deliveries per tenant from the parked stream's per-subject counts (`…webhook_parked.<tenant>.<hash>`). */
export function parkedPerTenant(subjects: Record<string, number>, top = PARKED_TENANT_SERIES): Map<string, number> {
  const per = new Map<string, number>();
  for (const [subject, n] of Object.entries(subjects)) {
    const tenant = subject.split('.')[3];
    if (tenant) per.set(tenant, (per.get(tenant) ?? 0) + n);
  }
  const ranked = [...per].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  const out = new Map(ranked.slice(0, top));
  const rest = ranked.slice(top).reduce((sum, [, n]) => sum + n, 0);
  if (ranked.length > top) out.set(OTHER_TENANTS, rest);
  return out;
}

export class NotifierMetrics {
  private readonly attempts: Counter<'outcome' | 'status'>;
  private readonly deliveries: Counter<'type'>;
  private readonly failures: Counter<'reason'>;
  private readonly duration: Histogram<'outcome'>;
  private readonly lag: Histogram;
  private readonly enqueues: Counter<'type'>;
  private readonly retries: Counter;
  private readonly dlq: Counter;
  private readonly replays: Counter;
  private readonly deferrals: Counter;
  private readonly circuitWaits: Counter;
  private readonly throttles: Counter;
  private readonly parkings: Counter;
  private readonly unparkings: Counter;

  constructor(registry: Registry, nats: () => NatsHandle | undefined, openCircuits: () => number = () => 0) {
    const registers = [registry];
    this.attempts = new Counter({
      name: 'gantry_webhook_attempts_total',
      help: 'Webhook HTTP attempts by outcome and status class (1xx-5xx, none = no response)',
      labelNames: ['outcome', 'status'],
      registers,
    });
    this.deliveries = new Counter({
      name: 'gantry_webhook_deliveries_total',
      help: 'Webhooks delivered (answered 2xx), by event type',
      labelNames: ['type'],
      registers,
    });
    this.failures = new Counter({
      name: 'gantry_webhook_failures_total',
      help: 'Failed attempts by reason: http (non-2xx), timeout, connection, blocked (address policy)',
      labelNames: ['reason'],
      registers,
    });
    this.duration = new Histogram({
      name: 'gantry_webhook_attempt_duration_seconds',
      help: 'Latency of webhook HTTP attempts, by outcome',
      labelNames: ['outcome'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.lag = new Histogram({
      name: 'gantry_webhook_delivery_lag_seconds',
      help: 'From the lifecycle event to its successful delivery (retries included)',
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.enqueues = new Counter({
      name: 'gantry_webhooks_enqueued_total',
      help: 'Webhook deliveries created from lifecycle events, by event type',
      labelNames: ['type'],
      registers,
    });
    this.retries = new Counter({
      name: 'gantry_webhook_retries_total',
      help: 'Failed attempts scheduled for another attempt',
      registers,
    });
    this.dlq = new Counter({
      name: 'gantry_webhook_dead_letters_total',
      help: 'Deliveries that exhausted their attempts (listed at /v1/webhooks/failed)',
      registers,
    });
    this.replays = new Counter({
      name: 'gantry_webhook_replays_total',
      help: 'Dead-lettered deliveries replayed',
      registers,
    });
    this.deferrals = new Counter({
      name: 'gantry_webhook_deferred_total',
      help: 'Due deliveries put back because their endpoint was busy (no attempt counted)',
      registers,
    });
    this.circuitWaits = new Counter({
      name: 'gantry_webhook_circuit_waits_total',
      help: "Due deliveries put back to wait for an open circuit's probe (no request sent, no attempt counted)",
      registers,
    });
    this.throttles = new Counter({
      name: 'gantry_webhook_progress_throttled_total',
      help: 'job.progress events not sent because of WEBHOOK_PROGRESS_INTERVAL_MS',
      registers,
    });
    this.parkings = new Counter({
      name: 'gantry_webhook_parked_total',
      help: 'Deliveries parked by this replica (their endpoint had more than WEBHOOK_ENDPOINT_MAX_PENDING waiting)',
      registers,
    });
    this.unparkings = new Counter({
      name: 'gantry_webhook_unparked_total',
      help: 'Parked deliveries this replica moved back to their tenant once their endpoint had room',
      registers,
    });
    // Parked now: read from the parked stream at scrape time (every replica reports the same, true number). One
    // stream info for both gauges per scrape: the first collected refreshes it.
    let parked: Promise<{ total: number; perTenant: Map<string, number> } | undefined> | undefined;
    let parkedAt = 0;
    const readParked = (): Promise<{ total: number; perTenant: Map<string, number> } | undefined> => {
      const now = Date.now();
      if (!parked || now - parkedAt > 250) {
        parkedAt = now;
        parked = (async () => {
          const n = nats();
          if (!n?.connected) return undefined;
          try {
            const info = await n.jsm.streams.info(STREAMS.webhookParked, {
              subjects_filter: SUBJECTS.webhookParkedAll,
            });
            return { total: info.state.messages, perTenant: parkedPerTenant(info.state.subjects ?? {}) };
          } catch {
            // NATS unavailable (or the stream not provisioned yet): keep the last values
            return undefined;
          }
        })();
      }
      return parked;
    };
    new Gauge({
      name: 'gantry_webhook_parked',
      help: 'Deliveries parked now (GANTRY_WEBHOOK_PARKED_V1: outside every MaxAckPending, waiting for their endpoint)',
      registers,
      async collect() {
        const p = await readParked();
        if (p) this.set(p.total);
      },
    });
    new Gauge({
      name: 'gantry_webhook_parked_tenant',
      help: `Deliveries parked now per tenant: the ${PARKED_TENANT_SERIES} tenants with the most, the rest summed as tenant="${OTHER_TENANTS}"`,
      labelNames: ['tenant'],
      registers,
      async collect() {
        const p = await readParked();
        if (!p) return;
        this.reset();
        for (const [tenant, n] of p.perTenant) this.set({ tenant }, n);
      },
    });
    new Gauge({
      name: 'gantry_webhook_circuit_open',
      help: 'Endpoints whose circuit is open on this replica (one request at a time, the rest wait for its verdict)',
      registers,
      collect() {
        this.set(openCircuits());
      },
    });
    new Gauge({
      name: 'gantry_webhook_pending',
      help: 'Deliveries in the deliveries stream: not yet attempted, waiting for a retry, or in flight',
      registers,
      async collect() {
        const n = nats();
        if (!n?.connected) return;
        try {
          // A WorkQueue stream: every message in it is a delivery not yet done, whichever tenant's consumer has it.
          const info = await n.jsm.streams.info(STREAMS.webhooks);
          this.set(info.state.messages);
        } catch {
          // NATS unavailable: keep the last value
        }
      },
    });
  }

  attempt(outcome: AttemptOutcome, status: number | undefined, seconds: number): void {
    const statusClass = status === undefined ? 'none' : `${Math.floor(status / 100)}xx`;
    this.attempts.inc({ outcome, status: statusClass });
    this.duration.observe({ outcome }, seconds);
  }
  delivered(type: string, lagSeconds: number): void {
    this.deliveries.inc({ type });
    if (Number.isFinite(lagSeconds) && lagSeconds >= 0) this.lag.observe(lagSeconds);
  }
  failed(reason: FailureReason): void {
    this.failures.inc({ reason });
  }
  enqueued(type: string): void {
    this.enqueues.inc({ type });
  }
  retried(): void {
    this.retries.inc();
  }
  deadLettered(): void {
    this.dlq.inc();
  }
  replayed(): void {
    this.replays.inc();
  }
  deferred(): void {
    this.deferrals.inc();
  }
  circuitWait(): void {
    this.circuitWaits.inc();
  }
  throttled(): void {
    this.throttles.inc();
  }
  parked(): void {
    this.parkings.inc();
  }
  unparked(): void {
    this.unparkings.inc();
  }
}
