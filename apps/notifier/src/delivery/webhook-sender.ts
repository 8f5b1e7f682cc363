/**
 * One signed POST of a webhook (Standard Webhooks). Every attempt is signed afresh: a new `webhook-timestamp` (receivers
 * refuse timestamps older than five minutes) under the delivery's stable `webhook-id`. The whole attempt (connect,
 * headers and reading the response) runs under one deadline; the address policy is enforced at connect time by
 * `@gantry/net` (DNS rebinding) and redirects are never followed (a 3xx is a failed attempt).
 */
import type { WebhookDelivery } from '@gantry/contracts';
import { BlockedAddressError, readText, safeRequest, type SafeResponse } from '@gantry/net';
import { currentTraceparent } from '@gantry/telemetry';
import { retryAfterMs } from './endpoint';
import type { WebhookSigner } from './signer';

export interface AttemptResult {
  ok: boolean;
  status?: number;
  /** Why it failed, for the failed list. */
  error?: string;
  /** `timeout`, `connection`, `blocked`, `http`: the failure's class (metrics). */
  reason?: FailureReason;
  retryAfterMs?: number;
  /** No retry can change the outcome (a blocked address). */
  permanent?: boolean;
  durationMs: number;
}

export type FailureReason = 'http' | 'timeout' | 'connection' | 'blocked';

export interface SenderSettings {
  timeoutMs: number;
  allowPrivate: boolean;
  userAgent?: string;
}

/** Bytes of a response body kept for the failed list's `lastError`. */
const ERROR_BODY_BYTES = 200;

export class WebhookSender {
  constructor(
    private readonly signer: WebhookSigner,
    private readonly settings: SenderSettings,
    private readonly now: () => number = Date.now,
  ) {}

  /** The request headers of one attempt, signed now. */
  headers(d: WebhookDelivery, body: string, at: Date): Record<string, string> {
    const h: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': this.settings.userAgent ?? 'gantry-notifier/1',
      'webhook-id': d.webhookId,
      'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
      'webhook-signature': this.signer.sign(d.tenant, d.webhookId, at, body),
      'content-length': String(Buffer.byteLength(body)),
    };
    if (d.callbackToken) h['authorization'] = `Bearer ${d.callbackToken}`;
    // The subscriber can join the job's trace (W3C trace context of the delivery span).
    const trace = currentTraceparent();
    if (trace.traceparent) h['traceparent'] = trace.traceparent;
    if (trace.tracestate) h['tracestate'] = trace.tracestate;
    return h;
  }

  /** Sends one attempt; never throws. */
  async send(d: WebhookDelivery, body: string): Promise<AttemptResult> {
    const started = this.now();
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), this.settings.timeoutMs);
    const elapsed = () => Math.max(0, this.now() - started);
    let res: SafeResponse | undefined;
    try {
      res = await safeRequest({
        method: 'POST',
        url: d.url,
        headers: this.headers(d, body, new Date(this.now())),
        body,
        timeoutMs: this.settings.timeoutMs,
        allowPrivate: this.settings.allowPrivate,
        signal: deadline.signal,
      });
      const status = res.status;
      // Read (a little of) the body under the same deadline, so the connection can be reused; a receiver that
      // sends headers and then stalls is cut off by the deadline.
      const text = await readText(res, ERROR_BODY_BYTES).catch(() => '');
      if (status >= 200 && status < 300) return { ok: true, status, durationMs: elapsed() };
      const retryAfter = retryAfterMs(res.headers['retry-after'], this.now());
      const snippet = text.trim().replace(/\s+/g, ' ').slice(0, ERROR_BODY_BYTES);
      const location = status >= 300 && status < 400 ? res.headers['location'] : undefined;
      const error =
        `HTTP ${status}` +
        (location ? ` (redirect to ${String(location).slice(0, 200)} not followed)` : '') +
        (snippet && snippet !== '{}' ? `: ${snippet}` : '');
      return {
        ok: false,
        status,
        error,
        reason: 'http',
        ...(retryAfter !== undefined ? { retryAfterMs: retryAfter } : {}),
        durationMs: elapsed(),
      };
    } catch (err) {
      res?.body.destroy();
      return { ok: false, ...this.classify(err, deadline.signal.aborted), durationMs: elapsed() };
    } finally {
      clearTimeout(timer);
    }
  }

  private classify(err: unknown, timedOut: boolean): Pick<AttemptResult, 'error' | 'reason' | 'permanent'> {
    if (err instanceof BlockedAddressError)
      return { error: `refused: ${err.message} (ALLOW_PRIVATE_URLS is off)`, reason: 'blocked', permanent: true };
    if (timedOut || (err instanceof Error && err.name === 'HttpTimeoutError'))
      return { error: `timeout: no complete response within ${this.settings.timeoutMs} ms`, reason: 'timeout' };
    const code = (err as { code?: string } | undefined)?.code;
    const message = err instanceof Error ? err.message : String(err);
    return { error: `connection failed: ${code ? `${code} ` : ''}${message}`.trim(), reason: 'connection' };
  }
}
