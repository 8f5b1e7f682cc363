/**
 * Exponential backoff with jitter for loops that retry broker calls (leader lease renewals, reconciliations,
 * catch-up reads): while NATS is down they must not spin, and several replicas must not retry in lockstep.
 * Each delay is drawn from [½, 1] × min(maxMs, initialMs × 2^(failures − 1)) ("equal jitter": bounded below, so the
 * retry rate has a hard ceiling, and spread above, so replicas drift apart).
 */
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** `false`: every delay is the ceiling itself (for a single caller whose retry schedule is part of its contract). */
  jitter?: boolean;
  random?: () => number;
}

export class Backoff {
  private failures = 0;
  private readonly random: () => number;

  constructor(private readonly o: BackoffOptions) {
    this.random = o.jitter === false ? () => 1 : (o.random ?? Math.random);
  }

  /** Consecutive failures recorded since the last success. */
  get attempts(): number {
    return this.failures;
  }

  /** Records a failure and returns how long to wait before the next try. */
  next(): number {
    this.failures++;
    const ceiling = Math.min(this.o.maxMs, this.o.initialMs * 2 ** Math.min(30, this.failures - 1));
    return Math.round(ceiling / 2 + (this.random() * ceiling) / 2);
  }

  /** A success: the next failure starts from `initialMs` again. */
  reset(): void {
    this.failures = 0;
  }
}
