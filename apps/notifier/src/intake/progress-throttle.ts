/**
 * At most one `job.progress` webhook per job per WEBHOOK_PROGRESS_INTERVAL_MS, across every notifier replica: the
 * last sent progress of each job is a key of a KV bucket, claimed with compare-and-set, so two replicas handling two
 * progress events of one job cannot both win a window. The interval must have passed both in event time (the
 * `timestamp` of the events) and in wall time (when they are sent), so a backlog is not sent in a burst either.
 */
import type { KV, KvEntry } from '@nats-io/kv';
import { CHANNELS, type ProgressMark } from '@gantry/contracts';
import { decodePayload, encodeJson, isWrongLastSequence } from '@gantry/jetstream';

export type { ProgressMark };

export type ProgressVerdict = 'send' | 'throttle' | 'resend';

/** Pure decision for one progress event given the last claimed mark. */
export function progressVerdict(
  last: ProgressMark | undefined,
  next: ProgressMark,
  intervalMs: number,
): ProgressVerdict {
  if (!last) return 'send';
  // The same event again (a redelivery after a crash): publish again, the broker's de-duplication drops a repeat.
  if (last.event === next.event) return 'resend';
  if (next.at - last.at < intervalMs) return 'throttle';
  if (next.eventAt - last.eventAt < intervalMs) return 'throttle';
  return 'send';
}

function isCasConflict(err: unknown): boolean {
  return isWrongLastSequence(err);
}

export class ProgressThrottle {
  constructor(
    private readonly kv: KV,
    private readonly intervalMs: number,
  ) {}

  /** True when this event may be sent. Throws on NATS trouble (the event is then redelivered). */
  async allow(jobId: string, mark: ProgressMark): Promise<boolean> {
    if (this.intervalMs <= 0) return true;
    for (let round = 0; round < 5; round++) {
      const cur: KvEntry | null = await this.kv.get(jobId);
      const last = cur && cur.operation === 'PUT' ? this.read(cur) : undefined;
      const verdict = progressVerdict(last, mark, this.intervalMs);
      switch (verdict) {
        case 'throttle':
          return false;
        case 'resend':
          return true;
        case 'send':
          try {
            if (cur) await this.kv.update(jobId, encodeJson(mark), cur.revision);
            else await this.kv.create(jobId, encodeJson(mark));
            return true;
          } catch (err) {
            // Another replica claimed a window first: decide again against its mark.
            if (!isCasConflict(err)) throw err;
          }
          break;
      }
    }
    return false;
  }

  private read(e: KvEntry): ProgressMark | undefined {
    try {
      return decodePayload(CHANNELS.progressThrottle, e.value);
    } catch {
      // A mark this version cannot read claims nothing: the event is sent (at most one extra progress webhook).
      return undefined;
    }
  }
}
