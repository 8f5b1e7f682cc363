/**
 * The job record repository. A job is one subject of the jobs stream; its last message is the current record and
 * every message is the lifecycle event that produced that revision. Writes are compare-and-set on the subject's last
 * sequence (`Nats-Expected-Last-Subject-Sequence`), so one writer wins each transition, and the winner's message is
 * the only event for it — record update and event are one durable write.
 */
import {
  CHANNELS,
  HEADERS,
  STREAMS,
  isNoCallbackJobId,
  SUBJECTS,
  TransitionRefused,
  expandStored,
  normalizeRecord,
  revisionMsgId,
  toEvent,
  type Clock,
  type StoredJob,
  type Transition,
} from '@gantry/contracts';
import { DeliverPolicy } from '@nats-io/jetstream';
import {
  decodePayload,
  directGet,
  leaderGet,
  isWrongLastSequence,
  mapBounded,
  publishJson,
  type NatsHandle,
} from '@gantry/jetstream';
import { ATTR, hasActiveSpan, type StoredTrace } from '@gantry/telemetry';

export class JobNotFoundError extends Error {
  override readonly name = 'JobNotFoundError';
  readonly code = 'JOB_NOT_FOUND';
  constructor(readonly jobId: string) {
    super(`job ${jobId} not found`);
  }
}

/** A transition kept losing the compare-and-set race (more writers than retries). */
export class JobConflictError extends Error {
  override readonly name = 'JobConflictError';
  readonly code = 'JOB_CONFLICT';
  constructor(
    readonly jobId: string,
    options: { cause?: unknown } = {},
  ) {
    super(`job ${jobId}: too many concurrent writers`, { cause: options.cause });
  }
}

/** The job was created before (same id): `create` is idempotent only through this error. */
export class JobExistsError extends Error {
  override readonly name = 'JobExistsError';
  readonly code = 'JOB_EXISTS';
  constructor(readonly jobId: string) {
    super(`job ${jobId} already exists`);
  }
}

/** Decodes a revision through the jobs channel: a {@link PayloadError} for one that breaks the contract. */
export function decodeStored(msg: { seq: number; data: Uint8Array }): StoredJob {
  const event = decodePayload(CHANNELS.jobs, msg.data);
  const record = normalizeRecord(event.job, msg.seq);
  return { record, revision: msg.seq, event: { ...event, job: record } };
}

export interface ReadOptions {
  /**
   * Read from the stream leader (STREAM.MSG.GET) rather than any replica (DIRECT.GET). Writers use it before a
   * compare-and-set; views use the cheaper direct read.
   */
  consistent?: boolean;
}

export class JobStore {
  constructor(
    private readonly nats: NatsHandle,
    private readonly clock: Clock,
  ) {}

  async get(jobId: string, o: ReadOptions = {}): Promise<StoredJob | undefined> {
    const subject = SUBJECTS.job(jobId);
    // Both reads answer null for "no message" (the client maps the broker's code); any other error (a missing stream,
    // a timeout) propagates: reading it as "no such job" turned NATS trouble into 404s and lost races. The direct read
    // and the leader read go over the connection's reply mux (directGet, leaderGet: nats.js's getMessage without
    // nc.request's per-call cost).
    const msg: { seq: number; data: Uint8Array } | null = o.consistent
      ? await leaderGet(this.nats.jsm, STREAMS.jobs, { last_by_subj: subject })
      : await directGet(this.nats.jsm, STREAMS.jobs, { last_by_subj: subject });
    return msg ? decodeStored(msg) : undefined;
  }

  /** Reads many records concurrently (bounded); missing ids are absent from the map. */
  async getMany(
    ids: readonly string[],
    o: ReadOptions & { concurrency?: number } = {},
  ): Promise<Map<string, StoredJob>> {
    const out = new Map<string, StoredJob>();
    await mapBounded(ids, o.concurrency ?? 64, async (id) => {
      const s = await this.get(id, o);
      if (s) out.set(id, s);
    });
    return out;
  }

  /**
   * The parent for a write's span: the active span if any, else the job's own trace. A job's first revision is always
   * published in the job's own trace (its record's context): a batch's jobs each have their own trace, apart from the
   * request's (`job-trace.ts` in the gateway); for a single submit the record's context is the request's span anyway.
   */
  private parentFor(t: Transition, first: boolean): StoredTrace | undefined {
    if (hasActiveSpan() && !(first && t.record.traceparent)) return undefined;
    return { traceparent: t.record.traceparent, tracestate: t.record.tracestate };
  }

  private async write(t: Transition, expectLastSubjectSequence: number): Promise<StoredJob> {
    const now = this.clock.now();
    // No `Nats-Msg-Id`: the compare-and-set already stores each revision at most once (a second publish of it, by us or
    // by anyone, expects a subject sequence the first one moved), and nothing here ever sends the same publish twice (a
    // retry is a new write, decided again from a fresh read). The id cost the broker ≈ 1–2 µs per revision and ≈ 70
    // bytes in every stored one (docs/performance.md, "Revisions without a de-duplication id"). Spans still name the
    // revision.
    const event = toEvent(t, now);
    const r = t.record;
    const parent = this.parentFor(t, expectLastSubjectSequence === 0);
    const ack = await publishJson(this.nats.js, SUBJECTS.job(r.id), event, {
      expect: { lastSubjectSequence: expectLastSubjectSequence },
      headers: {
        [HEADERS.eventType]: t.type,
        [HEADERS.jobId]: r.id,
        [HEADERS.callback]: r.callbackUrl ? '1' : '0',
        [HEADERS.tenant]: r.tenant,
      },
      attributes: () => ({
        [ATTR.messageId]: revisionMsgId(r.id, r.generation, r.sequence),
        [ATTR.jobId]: r.id,
        [ATTR.generation]: r.generation,
        [ATTR.attempt]: r.attempts,
        [ATTR.eventType]: t.type,
      }),
      spanName: `${t.type} publish`,
      ...(parent ? { parentTrace: parent } : {}),
    });
    const record = normalizeRecord(event.job, ack.seq);
    return { record, revision: ack.seq, event: { ...event, job: record } };
  }

  /** Stores the first revision. Throws {@link JobExistsError} when the id is taken. */
  async create(t: Transition): Promise<StoredJob> {
    // A job with a callback on a no-callback subject would never reach the notifier: its webhooks would be lost.
    if (t.record.callbackUrl && isNoCallbackJobId(t.record.id)) {
      throw new Error(`job ${t.record.id} has a callback URL but an id of the no-callback form (see newJobId)`);
    }
    try {
      return await this.write(t, 0);
    } catch (err) {
      if (isWrongLastSequence(err)) throw new JobExistsError(t.record.id);
      throw err;
    }
  }

  /**
   * Applies `decide` to the current record and stores the result with compare-and-set, re-reading and deciding again
   * when another writer got there first. `decide` throws {@link TransitionRefused} to refuse (propagated as is).
   */
  async transition(
    jobId: string,
    decide: (current: StoredJob) => Transition,
    o: { current?: StoredJob; maxAttempts?: number } = {},
  ): Promise<StoredJob> {
    let lastErr: unknown;
    // A writer that holds the revision it wrote last (a worker during its attempt) tries that first and reads only
    // when someone else wrote in between: one read less per transition on the hot path.
    let hint = o.current?.record.id === jobId ? o.current : undefined;
    for (let attempt = 0; attempt < (o.maxAttempts ?? 16); attempt++) {
      const cur = hint ?? (await this.get(jobId, { consistent: true }));
      hint = undefined;
      if (!cur) throw new JobNotFoundError(jobId);
      const t = decide(cur);
      try {
        return await this.write(t, cur.revision);
      } catch (err) {
        if (!isWrongLastSequence(err)) throw err;
        lastErr = err;
      }
    }
    throw new JobConflictError(jobId, { cause: lastErr });
  }

  /** Like {@link transition} but returns undefined instead of throwing when the transition is refused. */
  async tryTransition(jobId: string, decide: (current: StoredJob) => Transition): Promise<StoredJob | undefined> {
    try {
      return await this.transition(jobId, decide);
    } catch (err) {
      if (err instanceof TransitionRefused) return undefined;
      throw err;
    }
  }

  /**
   * Every lifecycle event of a job, oldest first: each stored revision, and before an outcome that also records its
   * attempt's start the derived `job.started` (same `revision`); `raw`: the stored revisions only.
   */
  async history(jobId: string, o: { raw?: boolean } = {}): Promise<StoredJob[]> {
    const subject = SUBJECTS.job(jobId);
    const last = await this.get(jobId);
    if (!last) return [];
    const consumer = await this.nats.js.consumers.get(STREAMS.jobs, {
      filter_subjects: subject,
      deliver_policy: DeliverPolicy.All,
    });
    const out: StoredJob[] = [];
    const msgs = await consumer.consume();
    for await (const m of msgs) {
      const s = decodeStored(m);
      if (o.raw) out.push(s);
      else out.push(...expandStored(s));
      if (m.seq >= last.revision || m.info.pending === 0) break;
    }
    await msgs.close();
    return out;
  }
}
