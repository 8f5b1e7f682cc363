/**
 * Removes terminal jobs older than JOB_RETENTION_HOURS (leader only): their subject in the jobs stream (the record and
 * its whole event history), their entry in the listing index and their outputs in the object store.
 *
 * It walks the jobs stream in sequence (= time) order from a checkpoint kept in the config bucket, looking only at
 * revisions stored before the cutoff. A terminal revision (`job.completed|failed|cancelled`, read from the message
 * header, no decode) makes its job a candidate; the job is removed only if that revision is still its last one — a job
 * retried by an admin since then ends again later and is judged by that later revision. Jobs that are queued,
 * running or retrying are never removed, however old.
 *
 * The removal is conditional on the revision judged: the purge removes the job's revisions up to and including that
 * one only. An admin retry that re-queued the job between the check and the purge stored a later revision, which the
 * purge leaves in place: the retry wins, and the job keeps its listing entry and outputs. A retry that comes after
 * the purge finds its compare-and-set on the judged revision refused and then no job (404). The listing entry and the
 * outputs go after the purge, from the judged revision itself, so a crash in between is finished by the next run. Each run handles a bounded batch and persists the checkpoint,
 * so a restart or takeover re-checks at most one batch (removal is idempotent).
 */
import { BUCKETS, CONFIG_KEYS, HEADERS, STREAMS, SUBJECTS, type Clock, type JobOutput } from '@gantry/contracts';
import { isNotFound, type NatsHandle } from '@gantry/jetstream';
import { decodeStored, type JobStore } from '@gantry/job-store';
import type { Logger } from '@gantry/telemetry';
import { DeliverPolicy } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';

const TERMINAL_EVENTS = new Set(['job.completed', 'job.failed', 'job.cancelled']);
const BATCH = 1_000;
/**
 * Bytes one run's fetch may bring (issue 15): revisions are whole job records (up to MAX_JOB_BYTES each), and the
 * client holds everything the server sent for the fetch even when the run stops at the first revision younger than
 * the cutoff — 1,000 records of 200 KB were ~200 MB of buffers every minute. Never below the largest message the
 * server accepts (a fetch whose first message is larger than its byte limit gets nothing).
 */
const FETCH_BYTES = 4 * 1024 * 1024;

/** The object-store side of retention (an OutputStore in production). */
export interface OutputsPort {
  /** Deletes the outputs Gantry stored itself (`s3://`); others belong to the client. */
  deleteOutputs(outputs: readonly JobOutput[]): Promise<number>;
}

/** The listing side of retention (the leader's ListIndexWriter). */
export interface ListingPort {
  /** Stream sequence up to which the listing has applied revisions (nothing later may be removed before it). */
  readonly appliedSeq: number;
  remove(tenant: string, createSeq: number): Promise<void>;
}

/** A terminal revision old enough to remove, and what its removal must clean up besides the subject. */
interface Candidate {
  jobId: string;
  seq: number;
  tenant: string;
  createSeq: number;
  outputs: readonly JobOutput[];
}

export interface SweepResult {
  scanned: number;
  removed: number;
  /** The checkpoint after this run. */
  checkpoint: number;
}

export class RetentionSweeper {
  private kv: KV | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<SweepResult> | undefined;

  constructor(
    private readonly nats: NatsHandle,
    private readonly jobs: JobStore,
    private readonly clock: Clock,
    private readonly o: {
      retentionMs: number;
      intervalMs: number;
      outputs?: OutputsPort;
      listing: () => ListingPort | undefined;
      removed?: (n: number) => void;
    },
    private readonly logger: Logger,
  ) {}

  start(): void {
    // A failed run is logged by run() and retried at the next tick.
    this.timer = setInterval(() => void this.sweep().catch(() => undefined), this.o.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    // Stopping waits for a run in progress to end, not for it to succeed (its failure was logged).
    await this.running?.catch(() => undefined);
  }

  /** One run: up to BATCH revisions past the checkpoint. Concurrent calls share the run in progress. */
  sweep(): Promise<SweepResult> {
    this.running ??= this.run().finally(() => (this.running = undefined));
    return this.running;
  }

  private async checkpoint(): Promise<{ kv: KV; seq: number }> {
    this.kv ??= await this.nats.kvm.open(BUCKETS.config);
    const e = await this.kv.get(CONFIG_KEYS.sweepCheckpoint);
    return { kv: this.kv, seq: e?.operation === 'PUT' ? Number(e.string()) || 0 : 0 };
  }

  private async run(): Promise<SweepResult> {
    const listing = this.o.listing();
    const { kv, seq: from } = await this.checkpoint();
    const cutoffNs = BigInt(this.clock.now().getTime() - this.o.retentionMs) * 1_000_000n;
    // Never past what the listing has applied: its entry for a job must exist before it can be dropped.
    const upTo = Math.min(listing?.appliedSeq ?? 0, (await this.nats.jsm.streams.info(STREAMS.jobs)).state.last_seq);
    if (upTo <= from) return { scanned: 0, removed: 0, checkpoint: from };

    // Usually nothing past the checkpoint is old enough yet: one direct get of the next revision tells, without
    // creating a consumer over every job subject (seconds at 1M jobs) or fetching records (up to MAX_JOB_BYTES each).
    const cutoffMs = Number(cutoffNs / 1_000_000n);
    let first;
    try {
      first = await this.nats.jsm.direct.getMessage(STREAMS.jobs, { seq: from + 1, next_by_subj: SUBJECTS.jobsAll });
    } catch (err) {
      if (!isNotFound(err)) throw err;
      first = null;
    }
    if (!first || first.seq > upTo || first.time.getTime() > cutoffMs)
      return { scanned: 0, removed: 0, checkpoint: from };

    const candidates: Candidate[] = [];
    let last = from;
    let scanned = 0;
    const consumer = await this.nats.js.consumers.get(STREAMS.jobs, {
      filter_subjects: SUBJECTS.jobsAll,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: from + 1,
    });
    // Fetches of at most FETCH_BYTES each (up to 100 revisions: the client's message cap on a byte-bounded fetch)
    // until BATCH revisions were scanned, the cutoff or `upTo` was met, or the stream had nothing more.
    const maxBytes = Math.max(FETCH_BYTES, (this.nats.nc.info?.max_payload ?? 0) + 64 * 1024);
    let done = false;
    while (!done && scanned < BATCH) {
      // A fetch that brings nothing (expired) also ends the run.
      done = true;
      const batch = await consumer.fetch({ max_bytes: maxBytes, expires: 5_000 });
      for await (const m of batch) {
        done = true;
        if (m.seq > upTo || m.info.timestampNanos > cutoffNs) break;
        scanned++;
        last = m.seq;
        const type = m.headers?.get(HEADERS.eventType) ?? '';
        const jobId = m.headers?.get(HEADERS.jobId) ?? SUBJECTS.jobIdFromSubject(m.subject);
        if (TERMINAL_EVENTS.has(type)) {
          const r = decodeStored(m).record;
          candidates.push({
            jobId,
            seq: m.seq,
            tenant: r.tenant,
            createSeq: r.createSeq ?? m.seq,
            outputs: r.outputs ?? [],
          });
        }
        if (m.seq >= upTo || m.info.pending === 0 || scanned >= BATCH) break;
        done = false;
      }
      await batch.close().catch(() => undefined);
    }

    let removed = 0;
    for (const c of candidates) {
      const cur = await this.jobs.get(c.jobId, { consistent: true });
      // Gone already: a run that crashed after the purge may have left the listing entry or outputs; finish it.
      if (!cur) {
        await this.cleanUp(c, listing);
        continue;
      }
      // Changed since (an admin retry): its later revision decides.
      if (cur.revision !== c.seq) continue;
      if (await this.remove(c, listing)) removed++;
    }
    if (last > from) await kv.put(CONFIG_KEYS.sweepCheckpoint, String(last));
    if (removed > 0) {
      this.o.removed?.(removed);
      this.logger.info({ removed, scanned, checkpoint: last }, 'retention: removed expired jobs');
    }
    return { scanned, removed, checkpoint: last };
  }

  /**
   * Purges the job's revisions up to and including the judged one, never a later one; then, if the job is gone, its
   * listing entry and outputs. Returns false when a later revision (an admin retry that won the race) kept the job.
   */
  private async remove(c: Candidate, listing: ListingPort | undefined): Promise<boolean> {
    await this.nats.jsm.streams.purge(STREAMS.jobs, { filter: SUBJECTS.job(c.jobId), seq: c.seq + 1 });
    const after = await this.jobs.get(c.jobId, { consistent: true });
    if (after) {
      this.logger.info(
        { jobId: c.jobId, judged: c.seq, revision: after.revision, status: after.record.status },
        'retention: the job changed while it was being removed (an admin retry); its later revision is kept',
      );
      return false;
    }
    await this.cleanUp(c, listing);
    return true;
  }

  /** The listing entry, then the outputs (idempotent; a failure leaves them for the next run, which re-checks). */
  private async cleanUp(c: Candidate, listing: ListingPort | undefined): Promise<void> {
    await listing?.remove(c.tenant, c.createSeq);
    if (this.o.outputs && c.outputs.length) await this.o.outputs.deleteOutputs(c.outputs);
  }
}
