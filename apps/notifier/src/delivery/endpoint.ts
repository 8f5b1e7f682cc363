import { createHash } from 'node:crypto';

/**
 * Deliveries are isolated per endpoint: the URL's origin (scheme, host, port). A dead host slows only its own
 * subject of the deliveries stream and its own in-flight budget.
 */
export function endpointKey(url: string): string {
  try {
    return new URL(url).origin.toLowerCase();
  } catch {
    return url;
  }
}

export function endpointHash(url: string): string {
  return createHash('sha256').update(endpointKey(url)).digest('hex').slice(0, 32);
}

/** Parses `Retry-After` (seconds or an HTTP date) into milliseconds from now. */
export function retryAfterMs(value: string | string[] | undefined, now: number): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const t = Date.parse(v);
  return Number.isFinite(t) ? Math.max(0, t - now) : undefined;
}
