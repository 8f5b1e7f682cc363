/**
 * Verifying Gantry's webhooks (API.md §5) with the Standard Webhooks reference library: the signature over
 * `{webhook-id}.{webhook-timestamp}.{body}` and the timestamp's freshness (5 minutes). Node only (the dashboard does
 * not load this file).
 */
import { Webhook } from 'standardwebhooks';
import type { JobEventMessage } from './contracts.js';
import { WebhookVerificationError } from './errors.js';

export type WebhookHeaders = Headers | Record<string, string | string[] | undefined>;

function headerRecord(h: WebhookHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  if (typeof (h as Headers).forEach === 'function' && typeof (h as Headers).get === 'function') {
    (h as Headers).forEach((v, k) => (out[k.toLowerCase()] = v));
    return out;
  }
  for (const [k, v] of Object.entries(h as Record<string, string | string[] | undefined>)) {
    if (v !== undefined) out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}

/**
 * Verifies a webhook delivery and returns its parsed event. `body` must be the raw request body exactly as received;
 * `secret` is the `whsec_…` signing secret, or several during a rotation (any one verifying is enough).
 * Throws {@link WebhookVerificationError} when nothing verifies.
 */
export function verifyWebhook(
  body: string | Uint8Array,
  headers: WebhookHeaders,
  secret: string | readonly string[],
): JobEventMessage {
  const payload = typeof body === 'string' ? body : new TextDecoder().decode(body);
  const h = headerRecord(headers);
  const secrets = typeof secret === 'string' ? [secret] : secret;
  if (secrets.length === 0) throw new WebhookVerificationError('no webhook secret given');
  let last: unknown;
  for (const s of secrets) {
    try {
      return new Webhook(s).verify(payload, h) as JobEventMessage;
    } catch (err) {
      last = err;
    }
  }
  throw new WebhookVerificationError(
    `webhook did not verify: ${last instanceof Error ? last.message : String(last)}`,
    last,
  );
}
