/**
 * Estimated wait from measured durations: an exponentially weighted mean of attempt run times per pool, and the
 * pool's concurrency. `null` until a duration has been measured.
 */
export class DurationStats {
  private readonly means = new Map<string, number>();

  constructor(private readonly alpha = 0.2) {}

  observe(pool: string, seconds: number): void {
    if (!Number.isFinite(seconds) || seconds < 0) return;
    const cur = this.means.get(pool);
    this.means.set(pool, cur === undefined ? seconds : cur + this.alpha * (seconds - cur));
  }

  mean(pool: string): number | undefined {
    return this.means.get(pool);
  }

  /**
   * Seconds until a job with `position` jobs ahead starts, given `capacity` parallel runners of which `free` are
   * idle now. Jobs ahead first fill the free runners; the rest wait for `ceil(n / capacity)` mean durations.
   */
  estimate(pool: string, position: number, capacity: number, free: number): number | null {
    const mean = this.means.get(pool);
    if (mean === undefined || capacity <= 0) return null;
    const waiting = position + 1 - Math.max(0, free);
    if (waiting <= 0) return 0;
    return Math.round(Math.ceil(waiting / capacity) * mean * 100) / 100;
  }
}
