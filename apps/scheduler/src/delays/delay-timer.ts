/**
 * Delayed jobs (`runAt` / `delaySeconds`) wait in their record (status `scheduled`, `runAt`), like retries: durable
 * across a kill -9 of every service and a nats-server restart, holding no token and outside the queue depth. Every
 * replica keeps the due times (one compact `DueSet` entry per job, fed by the projection, rebuilt from the records
 * on start), and the leader moves each job into its priority level when its time comes (`scheduled → queued`,
 * compare-and-set on the record, so a deposed leader racing the new one writes nothing twice).
 *
 * Order: the jobs due in one pass are written in the order (runAt, acceptance) — read first, then published in that
 * order on one connection, which gives them stream sequences (their FIFO key within a level) in that order.
 */
import { TransitionRefused, enqueueDue, type Clock, type StoredJob } from '@gantry/contracts';
import type { JobStore } from '@gantry/job-store';
import type { Logger } from '@gantry/telemetry';
import type { SchedulerState } from '../domain/scheduler-state';
import { DueTimer, SetDueQueue, type DueTimerOptions, type ReleaseOutcome } from '../timers/due-timer';

export class DelayTimer extends DueTimer {
  constructor(
    private readonly jobs: JobStore,
    state: SchedulerState,
    clock: Clock,
    logger: Logger,
    options: DueTimerOptions = {},
  ) {
    super(new SetDueQueue(state.scheduled), clock, logger, 'queue delayed jobs', options);
  }

  protected async release(due: string[], now: Date): Promise<ReleaseOutcome> {
    const out: ReleaseOutcome = { refused: [], failed: [], succeeded: false };
    let current: Map<string, StoredJob>;
    try {
      current = await this.jobs.getMany(due, { consistent: true });
    } catch (err) {
      return { ...out, failed: due, lastError: err };
    }
    out.succeeded = true;
    // Jobs no longer scheduled (cancelled, or queued by another leader) are done with; the rest in (runAt, acceptance).
    const ready = [...current.values()]
      .filter((s) => s.record.status === 'scheduled')
      .sort((a, b) => key(a) - key(b) || (a.record.createSeq ?? 0) - (b.record.createSeq ?? 0));
    // Started in this order, each publishing before the next one starts (the record read above is the hint, so no
    // read comes first): the broker receives them in this order.
    await Promise.all(
      ready.map(async (s) => {
        try {
          await this.jobs.transition(s.record.id, (cur) => enqueueDue(cur.record, now), { current: s });
        } catch (err) {
          if (err instanceof TransitionRefused) {
            if (err.reason === 'NOT_DUE') out.refused.push(s.record.id);
            return;
          }
          out.failed.push(s.record.id);
          out.lastError = err;
        }
      }),
    );
    return out;
  }
}

function key(s: StoredJob): number {
  return s.record.runAt ? Date.parse(s.record.runAt) : 0;
}
