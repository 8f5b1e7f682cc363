import { CONSUMERS, STREAMS } from '@gantry/contracts';
import type { NatsHandle } from '@gantry/jetstream';
import { Counter, DURATION_BUCKETS, Gauge, Histogram, type Registry } from '@gantry/telemetry';

export class NotifierMetrics {
  private readonly deliveries: Counter<'outcome' | 'status'>;
  private readonly latency: Histogram<'outcome'>;
  private readonly events: Counter<'type'>;
  private readonly retries: Counter;
  private readonly dlq: Counter;
  private readonly parks: Counter;
  private readonly throttles: Counter;

  constructor(registry: Registry, nats: () => NatsHandle | undefined) {
    const registers = [registry];
    this.deliveries = new Counter({
      name: 'gantry_webhook_attempts_total',
      help: 'Webhook delivery attempts by outcome and HTTP status class',
      labelNames: ['outcome', 'status'],
      registers,
    });
    this.latency = new Histogram({
      name: 'gantry_webhook_attempt_seconds',
      help: 'Webhook attempt latency by outcome',
      labelNames: ['outcome'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.events = new Counter({
      name: 'gantry_webhooks_enqueued_total',
      help: 'Webhook deliveries created, by event type',
      labelNames: ['type'],
      registers,
    });
    this.retries = new Counter({
      name: 'gantry_webhook_retries_total',
      help: 'Failed attempts scheduled for a retry',
      registers,
    });
    this.dlq = new Counter({
      name: 'gantry_webhook_dead_letters_total',
      help: 'Deliveries that exhausted their attempts',
      registers,
    });
    this.parks = new Counter({
      name: 'gantry_webhook_parked_total',
      help: 'Deliveries deferred because their endpoint was busy or failing',
      registers,
    });
    this.throttles = new Counter({
      name: 'gantry_webhook_progress_throttled_total',
      help: 'job.progress events not sent (throttled)',
      registers,
    });
    new Gauge({
      name: 'gantry_webhook_pending',
      help: 'Deliveries waiting in the deliveries stream (not yet attempted or waiting for a retry)',
      registers,
      async collect() {
        const n = nats();
        if (!n) return;
        try {
          const info = await n.jsm.consumers.info(STREAMS.webhooks, CONSUMERS.notifierDeliveries);
          this.set(info.num_pending + info.num_ack_pending);
        } catch {
          // NATS unavailable: keep the last value
        }
      },
    });
  }

  attempt(outcome: 'success' | 'failure', status: number | undefined, seconds: number): void {
    const statusClass = status === undefined ? 'none' : `${Math.floor(status / 100)}xx`;
    this.deliveries.inc({ outcome, status: statusClass });
    this.latency.observe({ outcome }, seconds);
  }
  enqueued(type: string): void {
    this.events.inc({ type });
  }
  retried(): void {
    this.retries.inc();
  }
  deadLettered(): void {
    this.dlq.inc();
  }
  parked(): void {
    this.parks.inc();
  }
  throttled(): void {
    this.throttles.inc();
  }
}
