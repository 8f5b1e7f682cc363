/**
 * Removes terminal jobs older than JOB_RETENTION_HOURS (leader only): their subject in the jobs stream (the record and
 * its whole event history), their entry in the listing index and their outputs in the object store.
 *
 * It walks the jobs stream in sequence (= time) order from a checkpoint kept in the config bucket, looking only at
 * revisions stored before the cutoff. A terminal revision (`job.completed|failed|cancelled`, read from the message
 * header, no decode) makes its job a candidate; the job is removed only if that revision is still its last one — a job
 * retried by an admin since then ends again later and is judged by that later revision. Jobs that are queued,
 * running or retrying are never removed, however old. Each run handles a bounded batch and persists the checkpoint,
 * so a restart or takeover re-checks at most one batch (removal is idempotent).
 */
import {
  BUCKETS,
  CONFIG_KEYS,
  HEADERS,
  STREAMS,
  SUBJECTS,
  type Clock,
  type JobOutput,
  type StoredJob,
} from '@gantry/contracts';
import type { NatsHandle } from '@gantry/jetstream';
import type { JobStore } from '@gantry/job-store';
import type { Logger } from '@gantry/telemetry';
import { DeliverPolicy } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';

const TERMINAL_EVENTS = new Set(['job.completed', 'job.failed', 'job.cancelled']);
const BATCH = 1_000;

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
    this.timer = setInterval(() => void this.sweep().catch(() => undefined), this.o.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
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

    const candidates: { jobId: string; seq: number }[] = [];
    let last = from;
    let scanned = 0;
    const consumer = await this.nats.js.consumers.get(STREAMS.jobs, {
      filter_subjects: SUBJECTS.jobsAll,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: from + 1,
    });
    const batch = await consumer.fetch({ max_messages: Math.min(BATCH, upTo - from), expires: 5_000 });
    for await (const m of batch) {
      if (m.seq > upTo || m.info.timestampNanos > cutoffNs) break;
      scanned++;
      last = m.seq;
      const type = m.headers?.get(HEADERS.eventType) ?? '';
      const jobId = m.headers?.get(HEADERS.jobId) ?? SUBJECTS.jobIdFromSubject(m.subject);
      if (TERMINAL_EVENTS.has(type)) candidates.push({ jobId, seq: m.seq });
      if (m.seq >= upTo || m.info.pending === 0) break;
    }
    await batch.close().catch(() => undefined);

    let removed = 0;
    for (const c of candidates) {
      const cur = await this.jobs.get(c.jobId, { consistent: true });
      // Gone already, or changed since (an admin retry): its later revision decides.
      if (!cur || cur.revision !== c.seq) continue;
      await this.remove(cur, listing);
      removed++;
    }
    if (last > from) await kv.put(CONFIG_KEYS.sweepCheckpoint, String(last));
    if (removed > 0) {
      this.o.removed?.(removed);
      this.logger.info({ removed, scanned, checkpoint: last }, 'retention: removed expired jobs');
    }
    return { scanned, removed, checkpoint: last };
  }

  /** Outputs first (a failure leaves the job to be tried again next run), then the listing entry, then the record. */
  private async remove(s: StoredJob, listing: ListingPort | undefined): Promise<void> {
    const r = s.record;
    if (this.o.outputs && r.outputs?.length) await this.o.outputs.deleteOutputs(r.outputs);
    await listing?.remove(r.tenant, r.createSeq ?? s.revision);
    await this.nats.jsm.streams.purge(STREAMS.jobs, { filter: SUBJECTS.job(r.id) });
  }
}
