/**
 * Retries wait in their record (status `retrying`, `retryAt`), not in a broker timer: durable across any restart of
 * the scheduler or nats-server and holding no token. The leader re-queues each one when its delay is over (a
 * compare-and-set `retrying → queued`); every replica keeps the timers so a new leader picks them up at once.
 *
 * A re-queue that fails (the broker is down or slow) is tried again after an exponential backoff with jitter shared
 * by the whole timer (one outage, one backoff): until v1.1 it was tried again every second whatever happened, so
 * while NATS was down the leader sent one write per due job per second. A success resets the backoff.
 */
import { requeueAfterDelay, type Clock } from '@gantry/contracts';
import { Backoff, type BackoffOptions } from '@gantry/jetstream';
import type { JobStore } from '@gantry/job-store';
import type { Logger } from '@gantry/telemetry';
import { TimerHeap } from '../domain/timer-heap';
import type { SchedulerState } from '../domain/scheduler-state';

/** Waits after a failed re-queue: 1 s doubling to 30 s, each drawn from [½, 1] of its ceiling. */
export const RETRY_TIMER_BACKOFF: BackoffOptions = { initialMs: 1_000, maxMs: 30_000 };
/** Look again after a refused (not failed) re-queue: another replica's clock says it is not due yet. */
const REFUSED_RECHECK_MS = 1_000;

export interface RetryTimerOptions {
  backoff?: BackoffOptions;
  /** A pass could not re-queue these jobs; they are tried again in `retryInMs` (metrics, tests). */
  onRequeueError?: (jobIds: readonly string[], err: unknown, retryInMs: number) => void;
}

export class RetryTimer {
  private readonly heap: TimerHeap;
  private timer: NodeJS.Timeout | undefined;
  private armedFor: number | undefined;
  private active = false;
  private firing = false;
  private readonly backoff: Backoff;

  constructor(
    private readonly jobs: JobStore,
    private readonly state: SchedulerState,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly options: RetryTimerOptions = {},
  ) {
    this.heap = new TimerHeap(state.retrying);
    this.backoff = new Backoff(options.backoff ?? RETRY_TIMER_BACKOFF);
  }

  scheduled(jobId: string, retryAt: number): void {
    this.heap.push(retryAt, jobId);
    this.arm();
  }

  activate(): void {
    this.active = true;
    this.arm(true);
  }

  deactivate(): void {
    this.active = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.armedFor = undefined;
  }

  private arm(force = false): void {
    if (!this.active) return;
    const next = this.heap.peek();
    if (next === undefined) return;
    if (!force && this.armedFor !== undefined && this.armedFor <= next) return;
    if (this.timer) clearTimeout(this.timer);
    this.armedFor = next;
    const delay = Math.min(2 ** 31 - 1, Math.max(0, next - this.clock.now().getTime()));
    this.timer = setTimeout(() => void this.fire(), delay);
  }

  private async fire(): Promise<void> {
    this.timer = undefined;
    this.armedFor = undefined;
    if (!this.active || this.firing) return;
    this.firing = true;
    try {
      const now = this.clock.now();
      const due = this.heap.takeDue(now.getTime());
      const later = (id: string, lookAgainAt: number) => {
        // Still retrying (refused as not yet due by another clock, or the write failed): look again at `lookAgainAt`
        // (counted after the failed call, not from the start of the pass: a slow failure does not shorten the wait).
        if (!this.state.retrying.has(id)) return;
        const at = Math.max(lookAgainAt, this.state.retrying.get(id) ?? 0);
        this.state.retrying.set(id, at);
        this.heap.push(at, id);
      };
      const failed: string[] = [];
      let lastError: unknown;
      let succeeded = false;
      await Promise.all(
        due.map(async (id) => {
          try {
            if (!(await this.jobs.tryTransition(id, (cur) => requeueAfterDelay(cur.record, now))))
              later(id, this.clock.now().getTime() + REFUSED_RECHECK_MS);
            succeeded = true;
          } catch (err) {
            failed.push(id);
            lastError = err;
          }
        }),
      );
      if (succeeded) this.backoff.reset();
      if (failed.length > 0) {
        // One wait for the whole pass: the failures share a cause (the broker), not one each.
        const waitMs = this.backoff.next();
        this.options.onRequeueError?.(failed, lastError, waitMs);
        this.logger.warn(
          { err: lastError, jobs: failed.length, retryInMs: waitMs, failures: this.backoff.attempts },
          'could not re-queue retries; backing off',
        );
        // One instant for all of them: reading the clock per job spread them over a few milliseconds on a loaded
        // machine, the timer then woke for the first one only and the pass split in two, each advancing the backoff.
        const lookAgainAt = this.clock.now().getTime() + waitMs;
        for (const id of failed) later(id, lookAgainAt);
      }
    } finally {
      this.firing = false;
      this.arm(true);
    }
  }
}
