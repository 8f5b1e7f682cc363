/**
 * Feeds the jobs stream into the scheduler state. It starts with the last revision of every job (DeliverLastPerSubject
 * — the current records, which is the rebuild after a restart or takeover) and then follows every new revision.
 * An ordered consumer: ephemeral, flow-controlled, recreated by the client after a gap or a reconnect.
 *
 * Creating it is slow with many jobs (the server walks every subject: ~4.5 s at 1M on nats-server 2.9), so it is
 * created on a connection of its own — the process's main connection (leader lease, dispatches, RPC) does not wait
 * behind it — with a long API timeout and retries that delete what a timed-out create left behind
 * (`openSlowOrderedConsumer`). The consumer then lives on that connection.
 */
import { STREAMS, SUBJECTS, type StoredJob } from '@gantry/contracts';
import { openSlowOrderedConsumer, Watermark, type NatsHandle, type SlowConsumerOptions } from '@gantry/jetstream';
import { decodeStored } from '@gantry/job-store';
import type { Logger } from '@gantry/telemetry';
import { DeliverPolicy, type ConsumerMessages } from '@nats-io/jetstream';
import type { SchedulerState } from '../domain/scheduler-state';

/**
 * The projection did not apply the jobs stream up to the sequence asked for within the time allowed. A takeover that
 * meets it must not dispatch (its token counts would be short): the leader steps down instead.
 */
export class ProjectionBehindError extends Error {
  override readonly name = 'ProjectionBehindError';
  readonly code = 'PROJECTION_BEHIND';
  constructor(
    readonly applied: number,
    readonly target: number,
    readonly waitedMs: number,
  ) {
    super(`the projection applied the jobs stream up to ${applied} of ${target} within ${waitedMs} ms`);
  }
}

/** Most bytes one pull of the rebuild may bring (well under nats-server's 64 MB per-client pending limit). */
const REBUILD_PULL_BYTES = 8 * 1024 * 1024;

export class JobProjection {
  private messages: ConsumerMessages | undefined;
  private caughtUpAt: number | undefined;
  private target = 0;
  private readonly waiters: (() => void)[] = [];
  private done: Promise<void> | undefined;
  private readonly listeners = new Set<(s: StoredJob) => void>();
  private conn: NatsHandle | undefined;
  /** `state.lastApplied`, for `sync()` to wait on without polling. */
  private readonly applied = new Watermark();

  constructor(
    private readonly nats: NatsHandle,
    private readonly state: SchedulerState,
    private readonly logger: Logger,
    /** Timeouts and retries of the rebuild consumer's creation (defaults: 60 s, 120 s, 240 s; 5 attempts). */
    private readonly create: Omit<SlowConsumerOptions, 'logger' | 'what'> = {},
  ) {}

  /** Stream sequence of the last revision applied. */
  get lastApplied(): number {
    return this.state.lastApplied;
  }

  /**
   * Hands every decoded revision to `fn` as well (after the state applied it), so the leader's listing writer does
   * not decode the stream a second time. Returns the unsubscribe function.
   */
  subscribe(fn: (s: StoredJob) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** True once the snapshot up to the stream's last sequence at start has been applied. */
  get caughtUp(): boolean {
    return this.caughtUpAt !== undefined;
  }

  async start(): Promise<void> {
    const info = await this.nats.jsm.streams.info(STREAMS.jobs);
    this.target = info.state.last_seq;
    this.conn = await this.nats.sibling('rebuild');
    const consumer = await openSlowOrderedConsumer(
      this.conn,
      STREAMS.jobs,
      { filter_subjects: SUBJECTS.jobsAll, deliver_policy: DeliverPolicy.LastPerSubject },
      { ...this.create, logger: this.logger, what: 'scheduler state rebuild' },
    );
    // Bounded in bytes, not messages: a job record can be up to MAX_JOB_BYTES, and 2,048 records of 200 KB in one pull
    // (400 MB) overran the server's per-client pending limit on a loaded machine (slow consumer, disconnect, reset).
    this.messages = await consumer.consume({ max_bytes: REBUILD_PULL_BYTES });
    if (this.target === 0) this.markCaughtUp();
    const started = Date.now();
    this.done = (async () => {
      for await (const m of this.messages!) {
        let live = this.caughtUp;
        try {
          const s = decodeStored(m);
          this.state.apply(s, live);
          for (const l of this.listeners) l(s);
        } catch (err) {
          const reason = err instanceof Error ? err.message : String(err);
          this.logger.error({ reason, seq: m.seq, subject: m.subject }, 'cannot apply a job revision; skipping it');
          // Seen, if not applied: a revision that breaks the jobs channel's contract (or that the state refuses) must
          // not hold sync() below it forever — a takeover would then step down at every election.
          this.state.lastApplied = Math.max(this.state.lastApplied, m.seq);
        }
        this.applied.advance(this.state.lastApplied);
        if (!live && (m.seq >= this.target || m.info.pending === 0)) {
          live = true;
          this.markCaughtUp();
          this.logger.info(
            { seq: m.seq, ms: Date.now() - started, queued: this.state.index.size },
            'scheduler state rebuilt',
          );
        }
      }
    })();
  }

  private markCaughtUp(): void {
    this.caughtUpAt = Date.now();
    for (const w of this.waiters.splice(0)) w();
  }

  /** Resolves when the snapshot has been applied. */
  whenCaughtUp(): Promise<void> {
    if (this.caughtUp) return Promise.resolve();
    return new Promise((r) => this.waiters.push(r));
  }

  /**
   * Resolves once every revision up to the stream's current last sequence has been applied; rejects with
   * {@link ProjectionBehindError} after `timeoutMs` (until v1.1 it returned silently, and a takeover then dispatched
   * with too few running jobs counted).
   */
  async sync(timeoutMs = 10_000): Promise<void> {
    const last = (await this.nats.jsm.streams.info(STREAMS.jobs)).state.last_seq;
    this.applied.advance(this.state.lastApplied);
    if (!(await this.applied.reached(last, timeoutMs)))
      throw new ProjectionBehindError(this.state.lastApplied, last, timeoutMs);
  }

  async stop(): Promise<void> {
    // Stopping: a consumer that fails to close goes with the connection drained below; the loop's errors were
    // logged as they happened.
    await this.messages?.close().catch(() => undefined);
    await this.done?.catch(() => undefined);
    await this.conn?.drain();
  }
}
