/**
 * Turns lifecycle events into webhook deliveries: one per public event of a job with a callback URL, `job.progress`
 * throttled per job across every notifier replica. The delivery id is the event's webhook-id, so a redelivered event
 * (crash between publish and ack) is de-duplicated by the broker.
 */
import {
  BUCKETS,
  SUBJECTS,
  isPublicEvent,
  toJobView,
  webhookId,
  type JobEvent,
  type WebhookBody,
  type WebhookDelivery,
} from '@gantry/contracts';
import { encodeJson, publishJson, type NatsHandle } from '@gantry/jetstream';
import { ATTR } from '@gantry/telemetry';
import type { KV } from '@nats-io/kv';
import { endpointHash } from '../delivery/endpoint';
import type { NotifierMetrics } from '../notifier-metrics';

export class IntakeService {
  private throttle: KV | undefined;

  constructor(
    private readonly nats: NatsHandle,
    private readonly progressIntervalMs: number,
    private readonly metrics: NotifierMetrics,
  ) {}

  async start(): Promise<void> {
    this.throttle = await this.nats.kvm.open(BUCKETS.progressThrottle);
  }

  /** At most one progress webhook per job per interval, shared by all replicas (compare-and-set on a KV key). */
  private async allowProgress(jobId: string, now: number): Promise<boolean> {
    if (this.progressIntervalMs <= 0 || !this.throttle) return true;
    const cur = await this.throttle.get(jobId);
    const value = encodeJson({ at: now });
    try {
      if (!cur || cur.operation !== 'PUT') {
        await this.throttle.create(jobId, value);
        return true;
      }
      const last = cur.json<{ at: number }>().at;
      if (now - last < this.progressIntervalMs) return false;
      await this.throttle.update(jobId, value, cur.revision);
      return true;
    } catch {
      return false; // another replica took this window
    }
  }

  async handle(e: JobEvent): Promise<void> {
    const job = e.job;
    if (!isPublicEvent(e.type) || !job.callbackUrl) return;
    const now = Date.now();
    if (e.type === 'job.progress' && !(await this.allowProgress(job.id, now))) {
      this.metrics.throttled();
      return;
    }
    const id = webhookId(job.id, e.generation, e.sequence);
    const body: WebhookBody = {
      type: e.type,
      timestamp: e.timestamp,
      sequence: e.sequence,
      generation: e.generation,
      data: toJobView(job, new Date(e.timestamp)),
    };
    const delivery: WebhookDelivery = {
      v: 1,
      webhookId: id,
      jobId: job.id,
      tenant: job.tenant,
      type: e.type,
      url: job.callbackUrl,
      ...(job.callbackToken ? { callbackToken: job.callbackToken } : {}),
      attempts: 0,
      notBefore: now,
      body,
    };
    await publishJson(this.nats.js, SUBJECTS.webhook(endpointHash(job.callbackUrl)), delivery, {
      msgID: id,
      attributes: { [ATTR.jobId]: job.id, [ATTR.eventType]: e.type },
      spanName: 'webhook enqueue',
    });
    this.metrics.enqueued(e.type);
  }
}
