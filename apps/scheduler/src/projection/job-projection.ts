/**
 * Feeds the jobs stream into the scheduler state. It starts with the last revision of every job (DeliverLastPerSubject
 * — the current records, which is the rebuild after a restart or takeover) and then follows every new revision.
 * An ordered consumer: ephemeral, flow-controlled, recreated by the client after a gap or a reconnect.
 *
 * Creating it is slow with many jobs (the server walks every subject: ~4.5 s at 1M on nats-server 2.9), so it is
 * created on a connection of its own — the process's main connection (leader lease, dispatches, RPC) does not wait
 * behind it — with a long API timeout and retries that delete what a timed-out create left behind
 * (`openSlowOrderedConsumer`). The consumer then lives on that connection.
 *
 * A watchdog re-creates the consumer when the projection is behind the stream and makes no progress (issue #19: after
 * the node holding the jobs stream was lost, the client's own recovery of the ordered consumer trickled about one
 * revision per 30 s, and every takeover stepped down). The live tail is re-created from `lastApplied + 1`; a stalled
 * rebuild is restarted as a rebuild. Both are safe because revisions at or below `lastApplied` are skipped: see
 * {@link JobProjection.recreate} and docs/reliability.md.
 */
import { STREAMS, SUBJECTS, type StoredJob } from '@gantry/contracts';
import {
  isNotFound,
  openSlowOrderedConsumer,
  Watermark,
  type NatsHandle,
  type SlowConsumerOptions,
} from '@gantry/jetstream';
import { decodeStored } from '@gantry/job-store';
import type { Logger } from '@gantry/telemetry';
import { DeliverPolicy, type Consumer, type ConsumerMessages, type OrderedConsumerOptions } from '@nats-io/jetstream';
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

/**
 * Most revisions one pull may bring. By count, not bytes: with a byte limit the client (nats.js 3.4) never gives back
 * the unused bytes of a pull the server ended at its message count, so its next pulls ask for fewer and fewer bytes
 * until one is smaller than a record (409 "message size exceeds maxbytes") and it stops pulling until heartbeats are
 * missed (docs/reliability.md, "projection stall"). 50 records of at most MAX_JOB_BYTES (1 MiB at most, 64 KiB by
 * default) stay under nats-server's 64 MB per-client pending limit, which a 2,048-message pull of 200 KB records overran.
 */
const PULL_MESSAGES = 50;

/**
 * Idle heartbeat asked of the server on each pull (the client's default is half the 30 s pull expiry). The client
 * re-syncs its pull accounting only after missing heartbeats (about three intervals), and after the server-side
 * consumer was lost that is the only thing that gets it pulling again (see docs/reliability.md, "projection stall"):
 * 2 s makes that about 6 s instead of 45 s, for one tiny heartbeat per 2 s while the stream is idle.
 */
const PULL_IDLE_HEARTBEAT_MS = 2_000;
/**
 * Pull request expiry. The client also waits this long between its checks that the consumer still exists after
 * missed heartbeats (the default 30 s made each of them wait half a minute); one idle pull per 5 s costs nothing.
 */
const PULL_EXPIRES_MS = 5_000;

export interface ProjectionWatchdogOptions {
  /** How often the watchdog looks at the projection. Default 1 s. */
  checkMs?: number;
  /**
   * The live tail has applied nothing for this long while the stream is ahead: its consumer is re-created from
   * `lastApplied + 1`. Default 5 s.
   */
  liveStallMs?: number;
  /**
   * The rebuild has applied nothing for this long while the stream is ahead: the rebuild is restarted. Longer than
   * the live one, since creating a rebuild consumer walks every subject (seconds at 1M jobs). Default 20 s.
   */
  rebuildStallMs?: number;
  /** API timeout of one attempt to re-create the live tail (a StartSequence create is quick). Default 10 s. */
  recreateTimeoutMs?: number;
}

/** One re-creation of the projection's consumer by the watchdog. */
export interface ProjectionRecreated {
  /** What was re-created: the live tail (from `lastApplied + 1`) or the rebuild (restarted). */
  phase: 'live' | 'rebuild';
  /** The stream's last sequence minus `lastApplied` when the stall was noticed. */
  gap: number;
  /** How long nothing had been applied. */
  stalledMs: number;
}

export class JobProjection {
  private messages: ConsumerMessages | undefined;
  private consumer: Consumer | undefined;
  private caughtUpAt: number | undefined;
  private started = 0;
  /** When a revision last arrived (or the consumer was opened): the watchdog's measure of progress. */
  private progressAt = 0;
  private watchdog: NodeJS.Timeout | undefined;
  /** A watchdog check (and re-creation) in progress: checks never overlap. */
  private checking: Promise<void> | undefined;
  private stopped = false;
  private readonly watch: Required<ProjectionWatchdogOptions>;
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
    watchdog: ProjectionWatchdogOptions = {},
    /** Called after each re-creation by the watchdog (the scheduler counts them in a metric). */
    private readonly onRecreated: (r: ProjectionRecreated) => void = () => undefined,
  ) {
    this.watch = {
      checkMs: watchdog.checkMs ?? 1_000,
      liveStallMs: watchdog.liveStallMs ?? 5_000,
      rebuildStallMs: watchdog.rebuildStallMs ?? 20_000,
      recreateTimeoutMs: watchdog.recreateTimeoutMs ?? 10_000,
    };
  }

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
    this.started = Date.now();
    await this.open('rebuild');
    if (this.target === 0) this.markCaughtUp();
    this.watchdog = setInterval(() => void this.check(), this.watch.checkMs);
    this.watchdog.unref();
  }

  /**
   * Opens a consumer and starts applying what it delivers: the rebuild (the last revision of every job, then every new
   * one) or the live tail from a stream sequence.
   */
  private async open(from: 'rebuild' | { startSeq: number }): Promise<void> {
    const opts: Partial<OrderedConsumerOptions> =
      from === 'rebuild'
        ? { filter_subjects: SUBJECTS.jobsAll, deliver_policy: DeliverPolicy.LastPerSubject }
        : {
            filter_subjects: SUBJECTS.jobsAll,
            deliver_policy: DeliverPolicy.StartSequence,
            opt_start_seq: from.startSeq,
          };
    const consumer = await openSlowOrderedConsumer(
      this.conn!,
      STREAMS.jobs,
      opts,
      from === 'rebuild'
        ? { ...this.create, logger: this.logger, what: 'scheduler state rebuild' }
        : {
            timeoutsMs: [this.watch.recreateTimeoutMs],
            attempts: 1,
            logger: this.logger,
            what: 'scheduler state live tail',
          },
    );
    const messages = await consumer.consume({
      max_messages: PULL_MESSAGES,
      expires: PULL_EXPIRES_MS,
      idle_heartbeat: PULL_IDLE_HEARTBEAT_MS,
    });
    this.consumer = consumer;
    this.messages = messages;
    this.progressAt = Date.now();
    void this.logStatus(messages);
    this.done = this.run(messages);
  }

  private async run(messages: ConsumerMessages): Promise<void> {
    for await (const m of messages) {
      this.progressAt = Date.now();
      let live = this.caughtUp;
      // Already applied: a re-created consumer starts at or below what the state holds (a restarted rebuild delivers
      // the last revision of every job again). Neither the state nor the listeners see a revision twice.
      if (m.seq > this.state.lastApplied) {
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
      }
      if (!live && (m.seq >= this.target || (m.info.pending === 0 && (await this.nothingLeftAfter(m.seq))))) {
        live = true;
        this.markCaughtUp();
        this.logger.info(
          { seq: m.seq, ms: Date.now() - this.started, queued: this.state.index.size },
          'scheduler state rebuilt',
        );
      }
    }
  }

  /**
   * The rebuild's end by the server's pending count (the stream's last revision at start may have been removed since:
   * retention purges whole jobs, so `m.seq` may never reach the target) is checked against the stream itself: a
   * revision still stored between `seq` and the target means revisions are still to come, whatever the count said
   * (issue 15: a rebuilt scheduler that declared itself ready too early answered with a short queue). A failed check
   * says "not yet": the next revision, or the watchdog, decides again.
   */
  private async nothingLeftAfter(seq: number): Promise<boolean> {
    try {
      const next = await this.nats.jsm.direct.getMessage(STREAMS.jobs, {
        seq: seq + 1,
        next_by_subj: SUBJECTS.jobsAll,
      });
      return !next || next.seq > this.target;
    } catch (err) {
      if (isNotFound(err)) return true;
      this.logger.warn({ err, seq }, 'could not check whether the rebuild is complete; waiting for the next revision');
      return false;
    }
  }

  /** The client's own handling of the consumer (resets, missed heartbeats), in the log. */
  private async logStatus(messages: ConsumerMessages): Promise<void> {
    for await (const st of messages.status()) {
      if (st.type === 'heartbeat' || st.type === 'next' || st.type === 'debug') continue;
      this.logger.debug({ status: st, lastApplied: this.state.lastApplied }, 'projection consumer status');
    }
  }

  /** The watchdog: re-creates the consumer when the projection is behind the stream and has not moved for a while. */
  private check(): Promise<void> {
    if (this.checking || this.stopped) return this.checking ?? Promise.resolve();
    const run = this.checkOnce().finally(() => {
      if (this.checking === run) this.checking = undefined;
    });
    this.checking = run;
    return run;
  }

  private async checkOnce(): Promise<void> {
    try {
      const stalledMs = Date.now() - this.progressAt;
      const rebuilding = !this.caughtUp;
      const closed = this.messages === undefined;
      if (!closed && stalledMs < (rebuilding ? this.watch.rebuildStallMs : this.watch.liveStallMs)) return;
      const last = (await this.nats.jsm.streams.info(STREAMS.jobs)).state.last_seq;
      const gap = last - this.state.lastApplied;
      if (gap <= 0 && !closed) {
        // Idle, not stalled: nothing to apply. Measured again from now.
        this.progressAt = Date.now();
        return;
      }
      await this.recreate(rebuilding ? 'rebuild' : 'live', gap, stalledMs);
    } catch (err) {
      // The stream out of reach (its node down), a create that failed: the next check tries again.
      this.logger.warn({ err }, 'projection watchdog: could not check or re-create the consumer; retrying');
    }
  }

  /**
   * Closes the current consumer (waiting until its last delivered revision has been handled, so two consumers never
   * feed the state at once) and opens a new one:
   *
   * - live tail: from `lastApplied + 1` (DeliverPolicy.StartSequence). The state already holds everything up to
   *   `lastApplied`, so no rebuild is needed.
   * - rebuild (the stall came before the snapshot was applied): the rebuild restarts (LastPerSubject), because a
   *   StartSequence consumer would replay every superseded revision written since `lastApplied` (the whole history on
   *   a long-lived stream) where the rebuild delivers one per job. It is safe without clearing the state: the rebuild
   *   delivered in stream order every job's last revision up to `lastApplied`, a revision that is the last of its job
   *   now was the last one then too, so the new rebuild's revisions at or below `lastApplied` are already applied and
   *   are skipped, and the rest are applied as usual.
   */
  private async recreate(phase: 'live' | 'rebuild', gap: number, stalledMs: number): Promise<void> {
    const began = Date.now();
    const old = this.messages;
    this.messages = undefined;
    await old?.close().catch(() => undefined);
    await this.done?.catch(() => undefined);
    // The server-side consumer is deleted in the background (it may sit on a node that is still away; the server
    // removes an ordered consumer inactive for 5 minutes anyway).
    void this.consumer?.delete().catch(() => undefined);
    if (this.stopped) return;
    const from = phase === 'live' ? { startSeq: this.state.lastApplied + 1 } : 'rebuild';
    await this.open(from);
    this.logger.warn(
      { phase, gap, stalledMs, lastApplied: this.state.lastApplied, ms: Date.now() - began },
      phase === 'live'
        ? 'the projection made no progress behind the jobs stream; its consumer was re-created from the last applied revision'
        : 'the projection rebuild made no progress; the rebuild was restarted',
    );
    this.onRecreated({ phase, gap, stalledMs });
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
    // A stalled consumer is re-created by the watchdog meanwhile (well within the takeover's default 30 s).
    if (!(await this.applied.reached(last, timeoutMs)))
      throw new ProjectionBehindError(this.state.lastApplied, last, timeoutMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.watchdog);
    await this.checking?.catch(() => undefined);
    // Stopping: a consumer that fails to close goes with the connection drained below; the loop's errors were
    // logged as they happened.
    await this.messages?.close().catch(() => undefined);
    await this.done?.catch(() => undefined);
    await this.conn?.drain();
  }
}
