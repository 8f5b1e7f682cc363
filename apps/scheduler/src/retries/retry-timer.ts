/**
 * Retries wait in their record (status `retrying`, `retryAt`), not in a broker timer: durable across any restart of
 * the scheduler or nats-server and holding no token. The leader re-queues each one when its delay is over (a
 * compare-and-set `retrying → queued`); every replica keeps the timers so a new leader picks them up at once.
 *
 * A re-queue that fails (the broker is down or slow) is tried again after an exponential backoff with jitter shared
 * by the whole timer (one outage, one backoff): until v1.1 it was tried again every second whatever happened, so
 * while NATS was down the leader sent one write per due job per second. A success resets the backoff. The timing
 * itself is {@link DueTimer}'s, shared with the delayed jobs' timer.
 */
import { requeueAfterDelay, type Clock } from '@gantry/contracts';
import type { BackoffOptions } from '@gantry/jetstream';
import type { JobStore } from '@gantry/job-store';
import type { Logger } from '@gantry/telemetry';
import type { SchedulerState } from '../domain/scheduler-state';
import { DUE_TIMER_BACKOFF, DueTimer, MapDueQueue, type ReleaseOutcome } from '../timers/due-timer';

/** Waits after a failed re-queue: 1 s doubling to 30 s, each drawn from [½, 1] of its ceiling. */
export const RETRY_TIMER_BACKOFF: BackoffOptions = DUE_TIMER_BACKOFF;

export interface RetryTimerOptions {
  backoff?: BackoffOptions;
  /** A pass could not re-queue these jobs; they are tried again in `retryInMs` (metrics, tests). */
  onRequeueError?: (jobIds: readonly string[], err: unknown, retryInMs: number) => void;
}

export class RetryTimer extends DueTimer {
  constructor(
    private readonly jobs: JobStore,
    state: SchedulerState,
    clock: Clock,
    logger: Logger,
    options: RetryTimerOptions = {},
  ) {
    super(new MapDueQueue(state.retrying), clock, logger, 're-queue retries', {
      ...(options.backoff ? { backoff: options.backoff } : {}),
      ...(options.onRequeueError ? { onReleaseError: options.onRequeueError } : {}),
    });
  }

  protected async release(due: string[], now: Date): Promise<ReleaseOutcome> {
    const out: ReleaseOutcome = { refused: [], failed: [], succeeded: false };
    await Promise.all(
      due.map(async (id) => {
        try {
          if (!(await this.jobs.tryTransition(id, (cur) => requeueAfterDelay(cur.record, now)))) out.refused.push(id);
          out.succeeded = true;
        } catch (err) {
          out.failed.push(id);
          out.lastError = err;
        }
      }),
    );
    return out;
  }
}
