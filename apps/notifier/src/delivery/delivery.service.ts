/**
 * One delivery message of the deliveries stream (`gantry.v1.webhook.<tenant>.<endpointHash>`, WorkQueue, no max age;
 * handed out by its tenant's lane, see `tenant-lanes.ts`) at a time:
 *
 * - Whenever a delivery is to wait in its tenant's consumer (below), it is parked instead while its endpoint has more
 *   than `WEBHOOK_ENDPOINT_MAX_PENDING` in the stream (`endpoint-parking.ts`).
 * - Not yet due (`notBefore`): nak'ed for the remaining time. A nak delay is kept by the broker, so a waiting retry
 *   survives a notifier restart or `kill -9`; it is re-checked on every delivery.
 * - Due: the {@link EndpointGate} bounds the work per endpoint (slots, a short in-memory queue, deferral, circuit).
 *   A delivery put back because the endpoint is busy or its circuit is open is nak'ed with a delay and counts no
 *   attempt (API.md §5: an attempt counts only when a request was sent). One that has waited out its schedule's whole
 *   time budget behind an open circuit is dead-lettered with the attempts it really made.
 * - Each attempt renders the body with freshly presigned `downloadUrl`s and is signed afresh (same `webhook-id`, new
 *   `webhook-timestamp`).
 * - 2xx: ack. Failure with attempts left: the delivery is re-published with `attempts + 1` and a new `notBefore` (the
 *   retry schedule with jitter, or `Retry-After`), then the old message is acked. Last failure: dead-lettered, acked.
 *   Publish-then-ack, with message ids per attempt, makes a crash in between cost at most one extra attempt.
 */
import type { WebhookDelivery } from '@gantry/contracts';
import type { JetStreamContext } from '@gantry/jetstream';
import { ATTR, inSpan, recordError, SpanKind, type Logger } from '@gantry/telemetry';
import type { DeadLetterService } from '../dead-letters/dead-letter.service';
import type { NotifierMetrics } from '../notifier-metrics';
import { endpointKey } from './endpoint';
import type { EndpointParking } from './endpoint-parking';
import type { EndpointGate } from './endpoint-gate';
import { renderBody, type Presigner } from './presign';
import type { DeliveryQueue } from './tenant-lanes';
import { afterFailure, timeBudgetMs } from './retry-schedule';
import type { AttemptResult, WebhookSender } from './webhook-sender';

export interface DeliverySettings {
  retryDelaysMs: number[];
  /** Deadline of one attempt, for the schedule's time budget. */
  timeoutMs: number;
}

/** A due delivery earlier than this is treated as due (clock granularity between replicas). */
const DUE_SLACK_MS = 20;

export class DeliveryService {
  constructor(
    private readonly queue: DeliveryQueue,
    private readonly sender: WebhookSender,
    private readonly gate: EndpointGate,
    private readonly deadLetters: DeadLetterService,
    private readonly settings: DeliverySettings,
    private readonly metrics: NotifierMetrics,
    private readonly logger: Logger,
    private readonly presign?: Presigner,
    private readonly now: () => number = Date.now,
    private readonly parking?: EndpointParking,
  ) {}

  /** The delivery waits `delayMs` in its tenant's consumer, or is parked when its endpoint is over its share. */
  private async wait(d: WebhookDelivery, ctx: JetStreamContext, delayMs: number): Promise<void> {
    if (this.parking && (await this.parking.parkIfOver(d, ctx))) return;
    ctx.nak(delayMs);
  }

  async handle(d: WebhookDelivery, ctx: JetStreamContext): Promise<void> {
    const wait = d.notBefore - this.now();
    if (wait > DUE_SLACK_MS) {
      await this.wait(d, ctx, wait);
      return;
    }
    // The first attempt of a replay is an operator saying "fixed now": it goes out even through an open circuit.
    const replayProbe = d.replayOf !== undefined && d.attempts === 0;
    const admission = await this.gate.acquire(endpointKey(d.url), replayProbe);
    switch (admission.kind) {
      case 'defer': {
        const circuit = admission.circuit;
        if (!circuit) {
          this.metrics.deferred();
          await this.wait(d, ctx, admission.delayMs);
          return;
        }
        const left = this.budgetLeft(d);
        if (left > 0) {
          this.metrics.circuitWait();
          await this.wait(d, ctx, Math.min(admission.delayMs, left));
          return;
        }
        await this.deadLetterHeldBack(d, circuit.lastStatus);
        await ctx.ackAck();
        return;
      }
      case 'attempt': {
        if (admission.probe && !replayProbe && this.budgetLeft(d) <= 0) {
          // It waited in memory for an open circuit's verdict past its schedule's budget: no request now either.
          admission.release();
          await this.deadLetterHeldBack(d, d.lastStatus);
          await ctx.ackAck();
          return;
        }
        let result: AttemptResult;
        try {
          result = await this.attempt(d);
        } catch (err) {
          admission.done(false);
          throw err;
        }
        admission.done(result.ok, result.status);
        if (result.ok) {
          this.metrics.delivered(d.type, (this.now() - Date.parse(d.body.timestamp)) / 1000);
          await ctx.ackAck();
          return;
        }
        if (result.reason) this.metrics.failed(result.reason);
        await this.settleFailure(d, result, ctx);
        return;
      }
    }
  }

  /** Ms left of the delivery's schedule time budget (≤ 0: spent). */
  private budgetLeft(d: WebhookDelivery): number {
    const budget = timeBudgetMs(this.settings.retryDelaysMs, this.settings.timeoutMs);
    return budget - (this.now() - this.dueSince(d));
  }

  /** Dead-letters a delivery held back by an open circuit for its whole time budget, with the attempts really made. */
  private async deadLetterHeldBack(d: WebhookDelivery, status: number | undefined): Promise<void> {
    const lastStatus = d.lastStatus ?? status;
    const budget = timeBudgetMs(this.settings.retryDelaysMs, this.settings.timeoutMs);
    await this.deadLetters.record(d, {
      attempts: d.attempts,
      ...(lastStatus !== undefined ? { lastStatus } : {}),
      lastError:
        `not sent: the endpoint's circuit stayed open for the schedule's time budget of ` +
        `${Math.round(budget / 1000)} s` +
        (d.lastError !== undefined ? `; last error: ${d.lastError}` : ''),
    });
  }

  /** When the delivery's schedule began: its first attempt, or when it first came due. */
  private dueSince(d: WebhookDelivery): number {
    const first = d.firstAttemptAt === undefined ? NaN : Date.parse(d.firstAttemptAt);
    return Number.isFinite(first) ? first : d.notBefore;
  }

  /** Schedules the next attempt or dead-letters, then acks this message. */
  private async settleFailure(d: WebhookDelivery, r: AttemptResult, ctx: JetStreamContext): Promise<void> {
    const attempts = d.attempts + 1;
    const facts = {
      attempts,
      ...(r.status !== undefined ? { lastStatus: r.status } : {}),
      ...(r.error !== undefined ? { lastError: r.error } : {}),
    };
    const next = afterFailure({
      attemptsMade: attempts,
      delaysMs: this.settings.retryDelaysMs,
      ...(r.retryAfterMs !== undefined ? { retryAfterMs: r.retryAfterMs } : {}),
      ...(r.permanent ? { permanent: true } : {}),
    });
    switch (next.kind) {
      case 'dead-letter':
        await this.deadLetters.record(d, facts);
        break;
      case 'retry': {
        const retry: WebhookDelivery = {
          ...d,
          ...facts,
          notBefore: this.now() + next.delayMs,
          firstAttemptAt: d.firstAttemptAt ?? new Date(this.now()).toISOString(),
        };
        await this.queue.publish(retry, {
          msgID: `${d.webhookId}${d.replayOf ? `.r${d.replayOf}` : ''}.a${attempts}`,
          spanName: 'webhook retry',
        });
        this.metrics.retried();
        this.logger.debug(
          { webhookId: d.webhookId, url: d.url, attempts, retryInMs: next.delayMs, lastError: r.error },
          'webhook attempt failed; retry scheduled',
        );
        break;
      }
    }
    await ctx.ackAck();
  }

  /** One attempt inside a client span; never throws. */
  private attempt(d: WebhookDelivery): Promise<AttemptResult> {
    return inSpan(
      'webhook deliver',
      {
        kind: SpanKind.CLIENT,
        attributes: {
          [ATTR.jobId]: d.jobId,
          [ATTR.eventType]: d.type,
          'gantry.webhook.id': d.webhookId,
          'gantry.webhook.attempt': d.attempts + 1,
          'http.request.method': 'POST',
          'url.full': d.url,
        },
      },
      async (span) => {
        let result: AttemptResult;
        try {
          result = await this.sender.send(d, await renderBody(d.body, this.presign));
        } catch (err) {
          // Rendering failed (it should not): count it as a failed attempt rather than lose the delivery.
          result = { ok: false, error: String(err), reason: 'connection', durationMs: 0 };
        }
        if (result.status !== undefined) span.setAttribute('http.response.status_code', result.status);
        if (!result.ok) recordError(span, new Error(result.error ?? 'failed'));
        this.metrics.attempt(result.ok ? 'success' : 'failure', result.status, result.durationMs / 1000);
        return result;
      },
    );
  }
}
