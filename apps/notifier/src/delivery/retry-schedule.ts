/**
 * What happens after a failed attempt (API.md §5): another attempt after `WEBHOOK_RETRY_DELAYS_MS[n-1]` ±20 %
 * (n = attempts made so far), or later when the endpoint asked for it with `Retry-After`; after the last attempt, or
 * at once for a permanent refusal (a blocked address), the delivery is dead-lettered.
 */
import { withJitter } from '@gantry/contracts';

export type AfterFailure = { kind: 'retry'; delayMs: number } | { kind: 'dead-letter' };

export interface FailureFacts {
  /** Attempts made, the failed one included. */
  attemptsMade: number;
  delaysMs: readonly number[];
  /** The endpoint's `Retry-After`, in ms from now. */
  retryAfterMs?: number;
  /** A refusal that no retry can change. */
  permanent?: boolean;
  random?: () => number;
}

/** Attempts a delivery gets in all: one per delay, plus the first. */
export function maxAttempts(delaysMs: readonly number[]): number {
  return delaysMs.length + 1;
}

/**
 * The longest `Retry-After` honoured: the longest configured delay (at least a minute), so an endpoint cannot park a
 * delivery beyond the schedule the operator chose.
 */
export function retryAfterCapMs(delaysMs: readonly number[]): number {
  return Math.max(60_000, ...delaysMs);
}

export function afterFailure(f: FailureFacts): AfterFailure {
  if (f.permanent || f.attemptsMade >= maxAttempts(f.delaysMs)) return { kind: 'dead-letter' };
  const base = f.delaysMs[f.attemptsMade - 1] ?? 0;
  const jittered = withJitter(base, 0.2, f.random);
  const asked = f.retryAfterMs === undefined ? 0 : Math.min(f.retryAfterMs, retryAfterCapMs(f.delaysMs));
  return { kind: 'retry', delayMs: Math.max(jittered, asked) };
}

/**
 * How long a delivery's schedule may take from its first due time: every delay at its longest (+20 % jitter) plus a
 * full timeout per attempt. A delivery held back by an open circuit (no request sent, so no attempt counted) is
 * dead-lettered once this has passed: an endpoint that stays down is not owed deliveries forever, and one that comes
 * back within it receives everything still owed.
 */
export function timeBudgetMs(delaysMs: readonly number[], timeoutMs: number): number {
  const delays = delaysMs.reduce((a, b) => a + b, 0);
  return Math.ceil(delays * 1.2) + maxAttempts(delaysMs) * timeoutMs;
}
