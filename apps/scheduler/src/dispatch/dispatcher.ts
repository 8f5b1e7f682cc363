/**
 * The leader's dispatch loop. It puts a job into a worker's dispatch subject only when a token and a slot (and the GPU
 * memory it asks for) are free to run it now, so no job ever waits in a dispatch queue in front of a later urgent one.
 *
 * Fencing: every dispatch is published with `Nats-Expected-Last-Sequence` = the last sequence this leader saw on the
 * dispatch stream. A new leader first publishes a fence message, so a deposed leader's next dispatch fails and it
 * steps down; nothing it decided after losing the lease can reach a worker.
 *
 * Batched dispatch (docs/architecture.md, "Batched dispatch"): a round's decisions for one worker travel in one message
 * (up to `attemptsPerMessage` attempts — never more than the worker advertises in its heartbeat — and
 * {@link MESSAGE_RECORD_BYTES} of records); a group of one is sent in the single-attempt form. Fencing stays per
 * message. Tokens stay held until the terminal record frees them, never an ack.
 *
 * Record hint (docs/architecture.md, "Dispatch record hint", "Trusted dispatch records"): each attempt carries the
 * job's record and revision, which the worker checks its start against and tries its first compare-and-set on —
 * unless the worker's heartbeat says it does not use them (`dispatchRecordHint: false`: it reads the record before
 * every start), then the attempt goes without both.
 */
import {
  CHANNELS,
  DISPATCH_BATCH_LIMIT,
  HEADERS,
  STREAMS,
  SUBJECTS,
  dispatchAttempts,
  priorityLevel,
  type Clock,
  type DispatchAttempt,
  type DispatchBatch,
  type DispatchMessage,
  type DispatchPayload,
  type StoredJob,
} from '@gantry/contracts';
import {
  Backoff,
  decodePayload,
  isNotFound,
  isWrongLastSequence,
  publishJson,
  type NatsHandle,
} from '@gantry/jetstream';
import type { JobStore } from '@gantry/job-store';
import { ATTR, spansRecorded, type Logger } from '@gantry/telemetry';
import { outranked, planDispatch, type Decision } from '../domain/dispatch-plan';
import { entryOf, type SchedulerState } from '../domain/scheduler-state';
import type { SchedulerMetrics } from '../stats/metrics';
import { RecordCache, storedJobBytes } from './record-cache';

/**
 * Estimated heap bytes of the job records one dispatch round holds at once (issue 15). A round decides up to `batch`
 * jobs, and each dispatch carries the job's whole record (up to MAX_JOB_BYTES): 256 records of 1 MiB were 256 MB in
 * one round. Records are read in chunks sized from what the earlier ones weighed; once this much is held, the
 * remaining decisions go back to the queue and the next round (at once) takes them.
 */
const ROUND_RECORD_BYTES = 8 * 1024 * 1024;
/** Most record reads in flight at once. */
const READ_CONCURRENCY = 64;
/** Reads of a round's first chunk while no record size is known yet (the process's first round). */
const FIRST_CHUNK = 8;

/**
 * Estimated bytes of the records one batch message carries (well under nats-server's default 1 MiB max_payload): a
 * batch closes once its records reach this; a record larger than this alone travels alone, as before batches.
 */
const MESSAGE_RECORD_BYTES = 256 * 1024;

/** After a failed round: 0.5 s doubling up to 10 s (jittered) until a round succeeds, so a broker that is down is not hammered. */
const retryAfterError = (): Backoff => new Backoff({ initialMs: 500, maxMs: 10_000 });

export interface DispatchSettings {
  agingMs: number;
  /** At most this many dispatches decided per round (bounded batches, published pipelined). */
  batch: number;
  /** Byte budget of the cache of recently queued records (0 = no cache; default 16 MiB). */
  recordCacheBytes?: number;
  /** Estimated bytes of the records one dispatch round may hold (default 8 MiB). */
  roundRecordBytes?: number;
  /**
   * Most attempts one dispatch message carries for one worker (default 1: one message per attempt); never more than
   * the worker advertises in its heartbeat (`dispatchBatchMax`, absent = 1).
   */
  attemptsPerMessage?: number;
  /** Estimated bytes of the records one batch message carries (default 256 KiB). */
  messageRecordBytes?: number;
  /**
   * Read the record of a decision the cache does not hold before dispatching it (default: only while spans are
   * recorded, i.e. exported — the dispatch span's parent is the job's trace, which only the record holds). Without a
   * read the attempt goes without its record: the index entry is trusted, and the worker reads and checks the record
   * itself, as it must to run the job (docs/architecture.md, "Records at depth").
   */
  readUncachedRecords?: boolean;
}

/** The attempts of one dispatch message: one worker's, in decision order. */
interface Outgoing {
  workerId: string;
  decisions: Decision[];
  /** The attempts carry their records and revisions, those the round has (the worker uses them as its start's hint). */
  withRecords: boolean;
}

export class Dispatcher {
  private running = false;
  private again = false;
  private readonly errorBackoff = retryAfterError();
  private lastSeq = 0;
  private epoch = 0;
  private counter = 0;
  paused = false;
  /** Jobs no live worker of their pool can ever fit; skipped (not blocking) until the workers change. */
  private readonly unplaceable = new Set<string>();

  constructor(
    private readonly nats: NatsHandle,
    private readonly jobs: JobStore,
    private readonly state: SchedulerState,
    private readonly clock: Clock,
    private readonly settings: DispatchSettings,
    private readonly metrics: SchedulerMetrics,
    private readonly logger: Logger,
    private readonly fenced: (reason: string) => void,
  ) {
    this.recent = new RecordCache(settings.recordCacheBytes ?? 16 * 1024 * 1024);
  }

  get active(): boolean {
    return this.epoch > 0;
  }

  /** Whether a decision the cache has no record for is read before its dispatch (`readUncachedRecords`). */
  private get readsUncached(): boolean {
    return this.settings.readUncachedRecords ?? spansRecorded();
  }

  /**
   * The latest queued revisions the projection saw, newest kept, bounded by bytes (`RecordCache`): in steady state the
   * job dispatched next was queued a moment ago, and its record is taken from here instead of being read again.
   */
  private readonly recent: RecordCache;

  remember(s: StoredJob): void {
    const r = s.record;
    // Its own tenant's jobs filed at its level or above go first (itself counted once it is queued): a lower bound of
    // the dispatches before it. Beyond what the cache holds, the record would be evicted before use (RecordCache.put).
    const ahead = Math.max(0, this.state.index.tenantQueued(r.pool, r.tenant, priorityLevel(r.priority)) - 1);
    this.recent.put(s, ahead);
  }

  /** Estimated bytes of the cached records (never above the configured budget). */
  get cachedRecordBytes(): number {
    return this.recent.bytes;
  }

  /** Average estimated bytes of the records of the last round that read any (0: none yet); sizes first chunks. */
  private recordBytes = 0;

  /**
   * Records for the decided jobs: recent revisions where they match the index entry, reads for the rest (when
   * {@link readsUncached}), until the records held reach the round's byte budget (default {@link ROUND_RECORD_BYTES});
   * the decisions left over are returned as `deferred`, and so are those that a job of a higher priority queued during
   * the reads outranks ({@link outranked}).
   */
  private async recordsFor(
    decisions: readonly Decision[],
  ): Promise<{ records: Map<string, StoredJob>; sizes: Map<string, number>; deferred: Decision[] }> {
    const out = new Map<string, StoredJob>();
    // Each record's estimated size, for the messages' byte bound (group): estimated once, by the cache or here.
    const sizes = new Map<string, number>();
    const missing: Decision[] = [];
    let bytes = 0;
    let counted = 0;
    for (const d of decisions) {
      const e = d.candidate.entry;
      // The size the cache estimated when it took the record in: walking a record to estimate it was ≈ 2 % of the
      // scheduler's CPU, done once per put and once more here.
      const hit = this.recent.takeSized(e.id);
      const s = hit?.s;
      if (s && s.record.generation === e.generation && s.record.attempts === e.attempts) {
        out.set(e.id, s);
        sizes.set(e.id, hit.bytes);
        bytes += hit.bytes;
        counted++;
      } else missing.push(d);
    }
    // Not read: these attempts go without their records (the index entry trusted, the worker reads).
    if (!this.readsUncached) return { records: out, sizes, deferred: [] };
    const budget = this.settings.roundRecordBytes ?? ROUND_RECORD_BYTES;
    let next = 0;
    while (next < missing.length && bytes < budget) {
      // As many reads as the budget left holds at the records' average size so far (at least one).
      const average = counted > 0 ? bytes / counted : this.recordBytes;
      const fit = average > 0 ? Math.floor((budget - bytes) / average) : FIRST_CHUNK;
      const chunk = missing.slice(next, next + Math.max(1, Math.min(READ_CONCURRENCY, fit)));
      next += chunk.length;
      const got = await this.jobs.getMany(
        chunk.map((d) => d.candidate.entry.id),
        { concurrency: READ_CONCURRENCY },
      );
      for (const [id, s] of got) {
        const size = storedJobBytes(s);
        out.set(id, s);
        sizes.set(id, size);
        bytes += size;
        counted++;
      }
    }
    if (counted > 0) this.recordBytes = bytes / counted;
    const deferred = missing.slice(next);
    if (next > 0) {
      // The reads let the projection apply revisions meanwhile: a job of a higher priority queued since the round was
      // planned takes the token of one of the round's worst decisions (which goes back to its place, its record kept),
      // instead of waiting for a token until this round's dispatches finish.
      const unread = new Set(deferred);
      for (const d of outranked(
        this.state,
        decisions.filter((x) => !unread.has(x)),
        this.unplaceable,
      )) {
        const s = out.get(d.candidate.entry.id);
        if (s) this.recent.put(s);
        out.delete(d.candidate.entry.id);
        deferred.push(d);
      }
    }
    return { records: out, sizes, deferred };
  }

  /**
   * Takes over dispatching: fences the stream, adopts the dispatches already in it (made by a predecessor and not
   * yet finished) as held tokens, then lets the projection catch up with attempts that those dispatches started
   * meanwhile — only then are the tokens counted right and dispatching may begin.
   */
  async activate(epoch: number, catchUp: () => Promise<void>): Promise<void> {
    const fence = await publishJson(
      this.nats.js,
      SUBJECTS.dispatchFence,
      { epoch, at: this.clock.now().toISOString() },
      {
        headers: { [HEADERS.epoch]: String(epoch) },
      },
    );
    this.lastSeq = fence.seq;
    // Deleting a message never lowers the stream's last sequence, so the fence holds after the delete. The delete is
    // tidiness only (workers skip the fence subject): a failure leaves one stray fence message.
    await this.nats.jsm.streams.deleteMessage(STREAMS.dispatch, fence.seq, false).catch(() => undefined);
    await this.adoptOutstanding(fence.seq);
    await catchUp();
    this.epoch = epoch;
    this.unplaceable.clear();
    this.kick();
  }

  /**
   * Stops dispatching. Dispatches this replica made stay in the stream (a successor adopts them); in this replica's
   * state they become queued jobs again, as a standby sees them.
   */
  deactivate(): void {
    this.epoch = 0;
    for (const [id, h] of [...this.state.holdings]) if (h.state === 'dispatched') this.state.requeue(id);
  }

  /** The dispatch stream sequence this leader expects to be the last one (for tests of fencing). */
  get expectedLastSequence(): number {
    return this.lastSeq;
  }

  /**
   * The round's dispatches as messages: grouped per worker in decision order, each message closed at
   * min(`attemptsPerMessage`, the worker's advertised `dispatchBatchMax`) attempts or once its records reach
   * `messageRecordBytes`. A worker that advertises nothing (an older release) gets one message per attempt. A worker
   * that takes no record hint gets messages without records, which only the attempt count closes.
   */
  private group(
    valid: readonly Decision[],
    records: ReadonlyMap<string, StoredJob>,
    sizes: ReadonlyMap<string, number>,
  ): Outgoing[] {
    const configured = Math.max(1, Math.min(DISPATCH_BATCH_LIMIT, this.settings.attemptsPerMessage ?? 1));
    const byteBound = this.settings.messageRecordBytes ?? MESSAGE_RECORD_BYTES;
    const out: Outgoing[] = [];
    const open = new Map<string, { o: Outgoing; bytes: number; most: number }>();
    for (const d of valid) {
      // What the worker advertised: the attempts it reads in one message (an older worker, or one no longer known:
      // 1, the single form) and whether it uses the records (absent, or not known: yes, as before).
      const w = this.state.capacity.worker(d.workerId);
      const withRecords = w?.dispatchRecordHint ?? true;
      const stored = withRecords ? records.get(d.candidate.entry.id) : undefined;
      const bytes = stored ? (sizes.get(d.candidate.entry.id) ?? storedJobBytes(stored)) : 0;
      let cur = open.get(d.workerId);
      if (cur && (cur.o.decisions.length >= cur.most || cur.bytes + bytes > byteBound)) cur = undefined;
      if (!cur) {
        const most = Math.min(configured, w?.dispatchBatchMax ?? 1);
        cur = { o: { workerId: d.workerId, decisions: [], withRecords }, bytes: 0, most };
        open.set(d.workerId, cur);
        out.push(cur.o);
      }
      cur.o.decisions.push(d);
      cur.bytes += bytes;
    }
    return out;
  }

  /** Reads every unfinished dispatch (direct gets, no consumer: the work queue allows one consumer per subject). */
  private async adoptOutstanding(upTo: number): Promise<void> {
    const outstanding: { seq: number; d: DispatchMessage }[] = [];
    let seq = 1;
    for (;;) {
      let msg;
      try {
        msg = await this.nats.jsm.direct.getMessage(STREAMS.dispatch, { next_by_subj: SUBJECTS.dispatchAll, seq });
      } catch (err) {
        // Only "nothing further" ends the scan: a takeover that missed a dispatch would count its tokens short.
        if (!isNotFound(err)) throw err;
        msg = null;
      }
      if (!msg || msg.seq > upTo) break;
      seq = msg.seq + 1;
      if (msg.subject === SUBJECTS.dispatchFence) continue;
      try {
        // A batch holds several attempts; each is adopted on its own (de-duplicated below by job and attempt).
        for (const d of dispatchAttempts(decodePayload(CHANNELS.dispatch, msg.data)))
          outstanding.push({ seq: msg.seq, d });
      } catch (err) {
        // The worker it was for will terminate it as poison; it holds no tokens here.
        this.logger.warn(
          { seq: msg.seq, subject: msg.subject, reason: String(err) },
          'malformed dispatch; not adopted',
        );
      }
    }
    const records = await this.jobs.getMany([...new Set(outstanding.map((o) => o.d.jobId))]);
    let adopted = 0;
    for (const { seq: dispatchSeq, d } of outstanding) {
      const stored = records.get(d.jobId);
      const r = stored?.record;
      // Gone, already running per its record, or already adopted (the same attempt in two messages: held once).
      if (!stored || !r || this.state.holdings.has(d.jobId)) continue;
      if (r.status !== 'queued' || r.generation !== d.generation || r.attempts !== d.attempt - 1) continue; // stale
      const candidate = {
        pool: r.pool,
        tenant: r.tenant,
        level: priorityLevel(r.priority),
        effective: 0,
        entry: entryOf(stored),
      };
      const h = this.state.hold(
        candidate,
        { workerId: d.workerId, gpuIndices: d.gpuIndices, memoryMb: d.memoryMb },
        this.clock.now().getTime(),
      );
      h.dispatchSeq = dispatchSeq;
      adopted++;
    }
    if (adopted > 0) this.logger.info({ adopted }, 'adopted dispatches of the previous leader');
  }

  /** Asks for a dispatch round soon (coalesced). */
  kick(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    setImmediate(() => void this.loop());
  }

  /** Workers changed: jobs that never fitted may fit now. */
  workersChanged(): void {
    this.unplaceable.clear();
    this.kick();
  }

  private async loop(): Promise<void> {
    try {
      do {
        this.again = false;
        await this.round();
      } while (this.again && this.active);
      this.errorBackoff.reset();
    } catch (err) {
      const waitMs = this.errorBackoff.next();
      this.logger.error({ err, failures: this.errorBackoff.attempts, retryInMs: waitMs }, 'dispatch round failed');
      // The jobs of the failed round are back in the queue; look again once NATS had a moment.
      setTimeout(() => this.kick(), waitMs).unref();
    } finally {
      this.running = false;
    }
  }

  private async round(): Promise<void> {
    if (!this.active || this.paused) return;
    const now = this.clock.now();
    const decisions = planDispatch(this.state, {
      now: now.getTime(),
      agingMs: this.settings.agingMs,
      limit: this.settings.batch,
      unplaceable: this.unplaceable,
    });
    if (decisions.length === 0) return;
    const settled = new Set<string>();
    try {
      await this.publish(decisions, now, settled);
    } catch (err) {
      // Nothing decided in this round may keep a token without a dispatch: the jobs get their place back.
      for (const d of decisions) if (!settled.has(d.candidate.entry.id)) this.state.requeue(d.candidate.entry.id);
      throw err;
    }
  }

  private async publish(decisions: Decision[], now: Date, settled: Set<string>): Promise<void> {
    // Check each record (the index is a cache of it) and pick up its trace context. A revision the projection just
    // applied is as good as a read: the worker's compare-and-set catches anything written since.
    const { records, sizes, deferred } = await this.recordsFor(decisions);
    for (const d of deferred) {
      // Not read this round (the round's record bytes are spent): back in the queue, taken by the next round.
      this.state.requeue(d.candidate.entry.id);
      settled.add(d.candidate.entry.id);
    }
    if (deferred.length > 0) this.again = true;
    const valid: Decision[] = [];
    const unread = !this.readsUncached;
    for (const d of decisions) {
      const e = d.candidate.entry;
      if (settled.has(e.id)) continue;
      const r = records.get(e.id)?.record;
      if (!r && unread) {
        // Not read (records at depth): the index entry stands for the record; the worker checks the real one.
        valid.push(d);
        continue;
      }
      if (
        !r ||
        r.status !== 'queued' ||
        r.generation !== e.generation ||
        r.attempts !== e.attempts ||
        r.cancelRequestedAt
      ) {
        // Stale index entry: the projection will deliver the newer revision; drop the token now.
        this.state.releaseHolding(e.id);
        settled.add(e.id);
        continue;
      }
      valid.push(d);
    }

    const epoch = this.epoch;
    let expected = this.lastSeq;
    const publishes = this.group(valid, records, sizes).map((out) => {
      const attempts = out.decisions.map((d): DispatchAttempt => {
        const e = d.candidate.entry;
        const stored = out.withRecords ? records.get(e.id) : undefined;
        return {
          jobId: e.id,
          generation: e.generation,
          attempt: e.attempts + 1,
          gpuIndices: d.gpuIndices,
          memoryMb: d.memoryMb,
          ...(stored ? { record: stored.record, revision: stored.revision } : {}),
        };
      });
      const envelope = { v: 1 as const, workerId: out.workerId, epoch, dispatchedAt: now.toISOString() };
      const first = attempts[0]!;
      const msg: DispatchPayload =
        attempts.length === 1
          ? ({ ...envelope, ...first } satisfies DispatchMessage)
          : ({ ...envelope, attempts } satisfies DispatchBatch);
      // The first job's record the round has (whether or not the message carries it): the publish span's trace. A
      // message none of whose records was read (records at depth, nothing exported) is a trace of its own (a root:
      // contextFromTraceparent without one).
      const r = attempts.map((a) => records.get(a.jobId)?.record).find((x) => x !== undefined);
      // Pipelined on one connection, so the broker sees them in this order: each expects its predecessor's seq.
      const expect = expected++;
      return publishJson(this.nats.js, SUBJECTS.dispatch(out.workerId), msg, {
        msgID: `dispatch.${epoch}.${++this.counter}`,
        expect: { lastSequence: expect },
        headers: { [HEADERS.epoch]: String(epoch), [HEADERS.jobId]: first.jobId },
        // A batch's publish span sits in its first job's trace; each attempt's run span joins its own job's trace.
        parentTrace: { traceparent: r?.traceparent, tracestate: r?.tracestate },
        spanName: 'job dispatch',
        attributes: () => ({
          [ATTR.jobId]: first.jobId,
          [ATTR.attempt]: first.attempt,
          [ATTR.generation]: first.generation,
          [ATTR.workerId]: out.workerId,
          ...(attempts.length > 1 ? { 'gantry.dispatch.attempts': attempts.length } : {}),
        }),
      }).then(
        (ack) => ({ out, ok: true as const, seq: ack.seq }),
        (err: unknown) => ({ out, ok: false as const, err }),
      );
    });
    const results = await Promise.all(publishes);
    let fencedReason: string | undefined;
    for (const res of results) {
      for (const d of res.out.decisions) settled.add(d.candidate.entry.id);
      if (res.ok) {
        this.lastSeq = Math.max(this.lastSeq, res.seq);
        for (const d of res.out.decisions) {
          const h = this.state.holdings.get(d.candidate.entry.id);
          if (h) h.dispatchSeq = res.seq;
          this.metrics.dispatched(d.candidate.pool, now.getTime() - d.candidate.entry.enqueuedAt);
        }
      } else {
        for (const d of res.out.decisions) this.state.requeue(d.candidate.entry.id);
        // A publish that timed out may still have been stored: stepping down makes the next leader (maybe this
        // replica again, after a fresh fence) adopt whatever the stream really holds.
        fencedReason ??= isWrongLastSequence(res.err)
          ? 'dispatch fenced: another leader wrote to the dispatch stream'
          : `dispatch publish failed: ${String(res.err)}`;
      }
    }
    if (fencedReason) {
      this.epoch = 0;
      this.fenced(fencedReason);
      return;
    }
    if (valid.length > 0) this.again = true;
  }
}
