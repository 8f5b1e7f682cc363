/**
 * Turns lifecycle events into webhook deliveries: one per public event of a job with a callback URL (`job.progress`
 * throttled per job across every notifier replica), published to its tenant's and endpoint's subject of the
 * deliveries stream (the tenant's consumer is created with its first delivery: `tenant-lanes.ts`).
 * The delivery's message id is its `webhook-id`, so an event redelivered after a crash between publish and ack is
 * de-duplicated by the broker.
 */
import {
  isPublicEvent,
  toJobView,
  webhookId,
  type JobEvent,
  type WebhookBody,
  type WebhookDelivery,
} from '@gantry/contracts';
import { ATTR } from '@gantry/telemetry';
import type { DeliveryQueue } from '../delivery/tenant-lanes';
import type { NotifierMetrics } from '../notifier-metrics';
import type { ProgressThrottle } from './progress-throttle';

export class IntakeService {
  constructor(
    private readonly queue: DeliveryQueue,
    private readonly throttle: ProgressThrottle,
    private readonly metrics: NotifierMetrics,
    private readonly now: () => number = Date.now,
  ) {}

  /** The delivery owed for an event, or undefined when none is (internal event, no callback URL). */
  static deliveryFor(e: JobEvent, now: number): WebhookDelivery | undefined {
    const job = e.job;
    if (!isPublicEvent(e.type) || !job.callbackUrl) return undefined;
    const body: WebhookBody = {
      type: e.type,
      timestamp: e.timestamp,
      sequence: e.sequence,
      generation: e.generation,
      data: toJobView(job, new Date(e.timestamp)),
    };
    return {
      v: 1,
      webhookId: webhookId(job.id, e.generation, e.sequence),
      jobId: job.id,
      tenant: job.tenant,
      type: e.type,
      url: job.callbackUrl,
      ...(job.callbackToken ? { callbackToken: job.callbackToken } : {}),
      attempts: 0,
      notBefore: now,
      body,
    };
  }

  async handle(e: JobEvent): Promise<void> {
    const now = this.now();
    const delivery = IntakeService.deliveryFor(e, now);
    if (!delivery) return;
    if (e.type === 'job.progress') {
      const eventAt = Date.parse(e.timestamp);
      const allowed = await this.throttle.allow(e.job.id, {
        at: now,
        eventAt: Number.isFinite(eventAt) ? eventAt : now,
        event: `${e.generation}.${e.sequence}`,
      });
      if (!allowed) {
        this.metrics.throttled();
        return;
      }
    }
    await this.queue.publish(delivery, {
      msgID: delivery.webhookId,
      attributes: { [ATTR.jobId]: e.job.id, [ATTR.eventType]: e.type },
      spanName: 'webhook enqueue',
    });
    this.metrics.enqueued(e.type);
  }
}
