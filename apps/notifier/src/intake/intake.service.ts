/**
 * Turns lifecycle events into webhook deliveries: one per public event of a job with a callback URL (`job.progress`
 * throttled per job across every notifier replica), published to its tenant's and endpoint's subject of the
 * deliveries stream (the tenant's consumer is created with its first delivery: `tenant-lanes.ts`).
 * The delivery's message id is its `webhook-id`, so an event redelivered after a crash between publish and ack is
 * de-duplicated by the broker.
 *
 * **No tenant waits behind another's flood at the intake.** The intake consumer hands revisions out in stream order
 * for every tenant at once, so the transport reads ahead (a window of `WEBHOOK_INTAKE_WINDOW` revisions and
 * `WEBHOOK_INTAKE_WINDOW_BYTES`, held undecoded and unacked until their delivery is durably published) and starts
 * this handler {@link INTAKE_CONCURRENCY} at a time, round-robin over the revisions' tenants (the `Gantry-Tenant`
 * header; the transport's `fair` binding option): a quiet tenant's revision, once read, waits at most one turn, not
 * behind the thousands of a flooding tenant read before it. A job's revisions are handled one after another in the
 * order this replica received them (chained per job id), so its progress throttle sees them in sequence.
 */
import {
  expandEvent,
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

/** Revisions turned into deliveries at once per replica (each is one publish to the deliveries stream). */
export const INTAKE_CONCURRENCY = 64;

export class IntakeService {
  /** The last revision of each job being handled here: the next one of that job waits for it. */
  private readonly tails = new Map<string, Promise<void>>();

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
    if (!isPublicEvent(e.type) || !e.job.callbackUrl) return;
    const jobId = e.job.id;
    const previous = this.tails.get(jobId);
    // A failed previous revision is redelivered by the broker later; this one need not wait for that.
    const run = (previous ? previous.catch(() => undefined) : Promise.resolve()).then(() => this.enqueue(e));
    const tail = run.catch(() => undefined);
    this.tails.set(jobId, tail);
    try {
      await run;
    } finally {
      if (this.tails.get(jobId) === tail) this.tails.delete(jobId);
    }
  }

  /**
   * The deliveries of one revision, in order: an outcome that also records its attempt's start (no `job.started`
   * revision was written) owes the derived `job.started` webhook first, then its own (ids from their sequences, so a
   * redelivered revision is de-duplicated by the broker, both of them).
   */
  private async enqueue(revision: JobEvent): Promise<void> {
    for (const e of expandEvent(revision)) await this.enqueueOne(e);
  }

  private async enqueueOne(e: JobEvent): Promise<void> {
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
