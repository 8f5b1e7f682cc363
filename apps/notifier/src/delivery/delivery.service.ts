/**
 * One delivery attempt per message of the deliveries stream.
 *
 * - A message not yet due (`notBefore`) is nak'ed for the remaining time (re-checked on every delivery).
 * - Work per endpoint is bounded: at most WEBHOOK_ENDPOINT_CONCURRENCY attempts in flight per endpoint, and an
 *   endpoint that keeps failing is "parked" (its messages wait, without an attempt, until the endpoint's next probe),
 *   so a dead or hanging endpoint costs a few timeouts, never the other endpoints' turn.
 * - Each attempt is signed afresh (new `webhook-timestamp`, same `webhook-id`).
 * - A failed attempt with attempts left is re-published as a new message (attempts + 1, not before now + delay with
 *   ±20 % jitter, or the endpoint's `Retry-After` when longer) and the old one acked; the last failure goes to the
 *   dead-letter stream. Retries therefore live in the stream: they survive notifier restarts and `kill -9`.
 */
import { SUBJECTS, withJitter, type FailedWebhook, type WebhookDelivery } from '@gantry/contracts';
import { publishJson, type JetStreamContext, type NatsHandle } from '@gantry/jetstream';
import { readText, safeRequest } from '@gantry/net';
import { ATTR, inSpan, recordError, SpanKind, type Logger } from '@gantry/telemetry';
import type { NotifierMetrics } from '../notifier-metrics';
import { endpointHash, endpointKey, retryAfterMs } from './endpoint';
import type { WebhookSigner } from './signer';

export interface DeliverySettings {
  timeoutMs: number;
  retryDelaysMs: number[];
  endpointConcurrency: number;
  allowPrivate: boolean;
}

interface EndpointState {
  inFlight: number;
  failures: number;
  /** Epoch ms before which new attempts wait (after repeated failures). */
  openUntil: number;
  probing: boolean;
}

export interface AttemptResult {
  ok: boolean;
  status?: number;
  error?: string;
  retryAfterMs?: number;
}

export class DeliveryService {
  private readonly endpoints = new Map<string, EndpointState>();

  constructor(
    private readonly nats: NatsHandle,
    private readonly signer: WebhookSigner,
    private readonly settings: DeliverySettings,
    private readonly metrics: NotifierMetrics,
    private readonly logger: Logger,
    private readonly presign: (body: WebhookDelivery['body']) => Promise<WebhookDelivery['body']> = async (b) => b,
  ) {}

  get maxAttempts(): number {
    return this.settings.retryDelaysMs.length + 1;
  }

  private endpoint(key: string): EndpointState {
    let s = this.endpoints.get(key);
    if (!s) {
      s = { inFlight: 0, failures: 0, openUntil: 0, probing: false };
      this.endpoints.set(key, s);
    }
    return s;
  }

  async handle(d: WebhookDelivery, ctx: JetStreamContext): Promise<void> {
    const now = Date.now();
    if (d.notBefore > now + 20) {
      ctx.nak(d.notBefore - now);
      return;
    }
    const key = endpointKey(d.url);
    const ep = this.endpoint(key);
    if (ep.openUntil > now) {
      // The endpoint is failing: wait for its next probe (spread out so the wake-ups do not come in one burst).
      ctx.nak(withJitter(ep.openUntil - now + 250, 0.2));
      this.metrics.parked();
      return;
    }
    if (ep.inFlight >= this.settings.endpointConcurrency || (ep.failures > 0 && ep.probing)) {
      ctx.nak(withJitter(Math.min(this.settings.timeoutMs, 1_000), 0.5));
      this.metrics.parked();
      return;
    }
    ep.inFlight++;
    if (ep.failures > 0) ep.probing = true;
    let result: AttemptResult;
    try {
      result = await this.attempt(d);
    } finally {
      ep.inFlight--;
      ep.probing = false;
    }
    if (result.ok) {
      ep.failures = 0;
      ep.openUntil = 0;
      await ctx.ackAck();
      return;
    }
    ep.failures++;
    if (ep.failures >= 3) {
      const delays = this.settings.retryDelaysMs;
      const pause = delays[Math.min(ep.failures - 3, delays.length - 1)] ?? 1_000;
      ep.openUntil = Date.now() + Math.min(pause, 60_000);
    }
    await this.afterFailure(d, result);
    await ctx.ackAck();
  }

  private async afterFailure(d: WebhookDelivery, r: AttemptResult): Promise<void> {
    const attempts = d.attempts + 1;
    const common = {
      ...(r.status !== undefined ? { lastStatus: r.status } : {}),
      ...(r.error !== undefined ? { lastError: r.error } : {}),
    };
    if (attempts >= this.maxAttempts) {
      const failed: FailedWebhook = {
        v: 1,
        delivery: { ...d, attempts, ...common },
        attempts,
        ...common,
        failedAt: new Date().toISOString(),
      };
      await publishJson(this.nats.js, SUBJECTS.webhookDlq(d.tenant), failed, {
        msgID: `${d.webhookId}.dlq.${d.replayOf ?? ''}${attempts}`,
      });
      this.metrics.deadLettered();
      this.logger.warn(
        { webhookId: d.webhookId, jobId: d.jobId, url: d.url, attempts, ...common },
        'webhook dead-lettered',
      );
      return;
    }
    const base = this.settings.retryDelaysMs[attempts - 1] ?? 0;
    const delay = Math.max(withJitter(base, 0.2), r.retryAfterMs ?? 0);
    const next: WebhookDelivery = {
      ...d,
      attempts,
      notBefore: Date.now() + delay,
      ...common,
      firstAttemptAt: d.firstAttemptAt ?? new Date().toISOString(),
    };
    await publishJson(this.nats.js, SUBJECTS.webhook(endpointHash(d.url)), next, {
      msgID: `${d.webhookId}.${d.replayOf ?? ''}a${attempts}`,
    });
    this.metrics.retried();
  }

  /** One signed POST; never throws. */
  async attempt(d: WebhookDelivery): Promise<AttemptResult> {
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
        const started = Date.now();
        let result: AttemptResult;
        try {
          const body = JSON.stringify(await this.presign(d.body));
          const timestamp = new Date();
          const headers: Record<string, string> = {
            'content-type': 'application/json',
            'user-agent': 'gantry-notifier/1',
            'webhook-id': d.webhookId,
            'webhook-timestamp': String(Math.floor(timestamp.getTime() / 1000)),
            'webhook-signature': this.signer.sign(d.tenant, d.webhookId, timestamp, body),
            'content-length': String(Buffer.byteLength(body)),
          };
          if (d.callbackToken) headers['authorization'] = `Bearer ${d.callbackToken}`;
          const res = await safeRequest({
            method: 'POST',
            url: d.url,
            headers,
            body,
            timeoutMs: this.settings.timeoutMs,
            allowPrivate: this.settings.allowPrivate,
          });
          await readText(res, 4_096).catch(() => '');
          span.setAttribute('http.response.status_code', res.status);
          const ok = res.status >= 200 && res.status < 300;
          result = ok
            ? { ok, status: res.status }
            : { ok, status: res.status, error: `HTTP ${res.status}`, ...this.retryAfter(res.headers['retry-after']) };
          if (!ok) recordError(span, new Error(`HTTP ${res.status}`));
        } catch (err) {
          recordError(span, err);
          result = { ok: false, error: err instanceof Error ? err.message : String(err) };
        }
        this.metrics.attempt(result.ok ? 'success' : 'failure', result.status, (Date.now() - started) / 1000);
        return result;
      },
    );
  }

  private retryAfter(v: string | string[] | undefined): { retryAfterMs?: number } {
    const ms = retryAfterMs(v, Date.now());
    return ms !== undefined ? { retryAfterMs: ms } : {};
  }
}
