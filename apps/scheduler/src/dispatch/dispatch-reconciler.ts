/**
 * Gives back to the queue a dispatched job whose worker neither started it nor still holds its dispatch message (the
 * worker dropped it, e.g. a stale dispatch it could not report).
 *
 * Only a definite "not found" for the dispatch message means it is gone. Any other read error (a timeout, NATS down,
 * no responders) says nothing about the dispatch: treating it as "gone" re-queued a job whose attempt was still on
 * its way to the worker, so the same attempt was dispatched twice and its tokens counted twice. On such an error the
 * run stops, changes nothing, and the next run waits out an exponential backoff with jitter.
 */
import { Backoff } from '@gantry/jetstream';
import type { Logger } from '@gantry/telemetry';
import type { SchedulerState } from '../domain/scheduler-state';

export interface DispatchReconcilerPorts {
  state: SchedulerState;
  /**
   * Reads the dispatch message at `seq`: something when it is still in the dispatch stream, null when it is not
   * found (acked, purged); throws on any other error.
   */
  readDispatch(seq: number): Promise<unknown>;
  /** Whether the worker's last heartbeat lists the job in flight. */
  inFlightOn(workerId: string, jobId: string): boolean;
  /** A dispatched job older than this without a start is checked. */
  lostAfterMs: number;
  now: () => number;
  logger: Logger;
  random?: () => number;
  /** Called for each read error (a metric). */
  onReadError?: (err: unknown) => void;
}

export interface ReconcileResult {
  requeued: string[];
  /** The run was skipped (backing off) or stopped at a read error. */
  deferred: boolean;
}

export class DispatchReconciler {
  private readonly backoff: Backoff;
  private notBefore = 0;
  private running: Promise<ReconcileResult> | undefined;

  constructor(private readonly p: DispatchReconcilerPorts) {
    this.backoff = new Backoff({
      initialMs: 500,
      maxMs: Math.max(1_000, p.lostAfterMs),
      ...(p.random ? { random: p.random } : {}),
    });
  }

  /** One pass; concurrent calls share the pass in progress. */
  run(): Promise<ReconcileResult> {
    this.running ??= this.pass().finally(() => (this.running = undefined));
    return this.running;
  }

  private async pass(): Promise<ReconcileResult> {
    const requeued: string[] = [];
    if (this.p.now() < this.notBefore) return { requeued, deferred: true };
    const { state } = this.p;
    for (const [jobId, h] of [...state.holdings]) {
      if (h.state !== 'dispatched' || h.dispatchSeq === undefined || this.p.now() - h.since < this.p.lostAfterMs)
        continue;
      if (this.p.inFlightOn(h.workerId, jobId)) continue;
      let msg: unknown;
      try {
        msg = await this.p.readDispatch(h.dispatchSeq);
      } catch (err) {
        const waitMs = this.backoff.next();
        this.notBefore = this.p.now() + waitMs;
        this.p.onReadError?.(err);
        this.p.logger.warn(
          { err, jobId, dispatchSeq: h.dispatchSeq, failures: this.backoff.attempts, retryInMs: waitMs },
          'reconcile: could not read a dispatch message; nothing re-queued, retrying after a backoff',
        );
        return { requeued, deferred: true };
      }
      // Re-check after the await: the holding may have started, ended or been re-queued meanwhile.
      const now = state.holdings.get(jobId);
      if (msg === null && now === h && now.state === 'dispatched' && state.requeue(jobId)) requeued.push(jobId);
    }
    this.backoff.reset();
    this.notBefore = 0;
    return { requeued, deferred: false };
  }
}
