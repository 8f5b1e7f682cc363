/**
 * A timer over jobs that wait in their record for a due time (retries in `retrying`, delayed jobs in `scheduled`):
 * the state holds each job's due time ordered by time (a {@link DueQueue}), and the leader releases what is due
 * with a compare-and-set on each record. Every replica keeps the due times warm (the projection feeds them), so a new leader
 * picks the waits up at once on takeover; nothing lives in a broker timer, so the waits survive any restart.
 *
 * A release that fails (the broker is down or slow) is tried again after an exponential backoff with jitter shared by
 * the whole timer (one outage, one backoff); a success resets it. A release refused as not yet due (another replica's
 * clock) is looked at again a second later.
 */
import type { Clock } from '@gantry/contracts';
import { Backoff, type BackoffOptions } from '@gantry/jetstream';
import type { Logger } from '@gantry/telemetry';
import { TimerHeap } from '../domain/timer-heap';
import type { DueSet } from '../domain/due-set';

/** Waits after a failed release: 1 s doubling to 30 s, each drawn from [½, 1] of its ceiling. */
export const DUE_TIMER_BACKOFF: BackoffOptions = { initialMs: 1_000, maxMs: 30_000 };
/** Look again after a refused (not failed) release: another replica's clock says it is not due yet. */
const REFUSED_RECHECK_MS = 1_000;
/**
 * A job handed out for release is not handed out again for this long: its release normally lands (and the projection
 * ends the wait) within milliseconds; one that did not (a lost write) is looked at again then, against its record.
 */
const HANDED_OUT_MS = 10_000;

/** What one pass did with the jobs it found due. */
export interface ReleaseOutcome {
  /** Still waiting: the record says it is not due yet. */
  refused: string[];
  /** The write failed (not refused): tried again after the backoff. */
  failed: string[];
  lastError?: unknown;
  /** At least one write reached the broker (resets the backoff). */
  succeeded: boolean;
}

/** Where the waits are kept: the state's structure for them, seen by the timer. */
export interface DueQueue {
  /** The earliest due time of a waiting job. */
  peek(): number | undefined;
  /** The jobs due at or before `now`, taken out of the way until `until` (or until they stop waiting). */
  takeDue(now: number, until: number): string[];
  /** A job that still waits is looked at again at `at` (or at its own due time, if later). */
  lookAgain(id: string, at: number): void;
  /** The job is (now) waiting until `at` (the projection saw the revision). */
  scheduled(id: string, at: number): void;
}

/**
 * Waits in a `Map` of due times plus a {@link TimerHeap} with lazy deletion (retries: few at a time). Entries handed
 * out stay in the map until the projection removes them; the heap forgets them.
 */
export class MapDueQueue implements DueQueue {
  private readonly heap: TimerHeap;

  constructor(private readonly due: Map<string, number>) {
    this.heap = new TimerHeap(due);
  }

  peek(): number | undefined {
    return this.heap.peek();
  }

  takeDue(now: number): string[] {
    return this.heap.takeDue(now);
  }

  lookAgain(id: string, at: number): void {
    if (!this.due.has(id)) return;
    const next = Math.max(at, this.due.get(id) ?? 0);
    this.due.set(id, next);
    this.heap.push(next, id);
  }

  scheduled(id: string, at: number): void {
    this.heap.push(at, id);
    // Entries of jobs that stopped waiting are dropped lazily when they reach the top; a heap of mostly such entries
    // (many waits cancelled long before their time) is rebuilt from the live map so it stays O(waiting jobs).
    if (this.heap.length > 2 * this.due.size + 1_024) this.heap.rebuild();
  }
}

/**
 * Waits in a {@link DueSet} (delayed jobs: possibly millions): exact removal, so nothing stale; entries handed out move
 * to `until` and are deleted by the projection when their release lands.
 */
export class SetDueQueue implements DueQueue {
  constructor(private readonly due: DueSet) {}

  peek(): number | undefined {
    return this.due.peek();
  }

  takeDue(now: number, until: number): string[] {
    return this.due.takeDue(now, until);
  }

  lookAgain(id: string, at: number): void {
    // Its entry holds the hand-out placeholder, not its due time: `at` it is.
    if (this.due.has(id)) this.due.set(id, at);
  }

  scheduled(): void {
    // The state's set already holds it.
  }
}

export interface DueTimerOptions {
  backoff?: BackoffOptions;
  /** A pass could not release these jobs; they are tried again in `retryInMs` (metrics, tests). */
  onReleaseError?: (jobIds: readonly string[], err: unknown, retryInMs: number) => void;
}

export abstract class DueTimer {
  private timer: NodeJS.Timeout | undefined;
  private armedFor: number | undefined;
  private active = false;
  private firing = false;
  private readonly backoff: Backoff;

  protected constructor(
    /** The jobs waiting and their due times (epoch ms), kept by the scheduler state. */
    private readonly due: DueQueue,
    protected readonly clock: Clock,
    protected readonly logger: Logger,
    /** For log lines: what is released ("re-queue retries", "queue delayed jobs"). */
    private readonly what: string,
    private readonly options: DueTimerOptions = {},
  ) {
    this.backoff = new Backoff(options.backoff ?? DUE_TIMER_BACKOFF);
  }

  /** Releases `ids` (all due at `now` by this clock), reporting what stays waiting. */
  protected abstract release(ids: string[], now: Date): Promise<ReleaseOutcome>;

  /** A job now waits until `at` (epoch ms). */
  scheduled(jobId: string, at: number): void {
    this.due.scheduled(jobId, at);
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
    const next = this.due.peek();
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
      const ids = this.due.takeDue(now.getTime(), now.getTime() + HANDED_OUT_MS);
      if (ids.length === 0) return;
      const out = await this.release(ids, now);
      // Counted after the calls, not from the start of the pass: a slow refusal does not shorten the wait.
      const refusedAt = this.clock.now().getTime() + REFUSED_RECHECK_MS;
      for (const id of out.refused) this.due.lookAgain(id, refusedAt);
      if (out.succeeded) this.backoff.reset();
      if (out.failed.length > 0) {
        // One wait for the whole pass: the failures share a cause (the broker), not one each.
        const waitMs = this.backoff.next();
        this.options.onReleaseError?.(out.failed, out.lastError, waitMs);
        this.logger.warn(
          { err: out.lastError, jobs: out.failed.length, retryInMs: waitMs, failures: this.backoff.attempts },
          `could not ${this.what}; backing off`,
        );
        // One instant for all of them: reading the clock per job spread them over a few milliseconds on a loaded
        // machine, the timer then woke for the first one only and the pass split in two, each advancing the backoff.
        const lookAgainAt = this.clock.now().getTime() + waitMs;
        for (const id of out.failed) this.due.lookAgain(id, lookAgainAt);
      }
    } finally {
      this.firing = false;
      this.arm(true);
    }
  }
}
