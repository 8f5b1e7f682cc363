/**
 * Backoff before retry k (k = 1 after the first failed attempt): `delays[k-1]`, the last value repeating.
 * An empty list means retry at once.
 */
export function nextRetryDelayMs(delaysMs: readonly number[], failedAttempts: number): number {
  if (delaysMs.length === 0) return 0;
  const i = Math.min(Math.max(failedAttempts, 1), delaysMs.length) - 1;
  return delaysMs[i] ?? 0;
}

/** Full jitter within ±fraction of a delay, for webhook retries (job retries are exact). */
export function withJitter(delayMs: number, fraction: number, random: () => number = Math.random): number {
  const spread = delayMs * fraction;
  return Math.max(0, Math.round(delayMs - spread + random() * 2 * spread));
}
