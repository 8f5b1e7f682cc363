/**
 * Cron schedules, fired by the leader (docs/schedules.md). The schedules live in the `gantry_schedules_v1` bucket;
 * on takeover the leader watches it (every current value, then every change) and keeps each active schedule's next
 * due time in a {@link MapDueQueue} (a heap), so the waits are rebuilt from durable state on every takeover and
 * nothing lives in a broker timer.
 *
 * At a due time the leader, for the ONE latest due time T at or before now (due times missed while no scheduler ran
 * collapse into it):
 * 1. reads the schedule (deleted or paused: nothing; T already handled, `lastDueAt ≥ T`: only moves `nextRunAt`);
 * 2. if the job of (schedule, T) exists — a predecessor created it and died before step 4 — T is done;
 * 3. else skips T when `overlap: skip` and the previous job is unfinished, or the tenant/queue bounds a submit obeys
 *    would refuse it; else creates the job with the deterministic id `<schedule id>_<T ms>` (lower case when the job
 *    has no callback: `scheduleJobId`, the no-callback subject the notifier never reads), as a first revision
 *    written with Expected-Last-Subject-Sequence 0 (refused when it exists: two leaders never create it twice, even
 *    long after the dedupe window);
 * 4. records T (`lastDueAt`, `lastJobId`, `nextRunAt` = the first due time after now) with compare-and-set on the
 *    schedule's revision (a pause or delete in between wins; the write is merged again or dropped).
 * Each created job is the root of its own trace (span `schedule.fire`, attributes schedule id and due time): the fire
 * span is the job's parent, not a link, because one due time creates one job and both belong in one trace; the fire
 * span LINKS to the trace of the request that created the schedule (docs/observability.md).
 */
import {
  BUCKETS,
  CHANNELS,
  PayloadError,
  dueNow,
  isTerminal,
  newJob,
  nextDueAfter,
  scheduleJobId,
  type Clock,
  type ScheduleRecord,
} from '@gantry/contracts';
import { decodePayload, isWrongLastSequence, mapBounded, type NatsHandle } from '@gantry/jetstream';
import { JobExistsError, type JobStore } from '@gantry/job-store';
import {
  contextFromTraceparent,
  currentTraceparent,
  inSpan,
  linkToTraceparent,
  Counter,
  Gauge,
  type Logger,
  type Registry,
} from '@gantry/telemetry';
import type { KV, KvEntry } from '@nats-io/kv';
import { DueTimer, MapDueQueue, type DueTimerOptions, type ReleaseOutcome } from '../timers/due-timer';

/** Why a due time created no job. */
export type ScheduleSkip = 'overlap' | 'draining' | 'queue_full' | 'tenant_queue_full';

export interface ScheduleAdmission {
  /** A reason to skip a due time of `tenant` now (the bounds a submit obeys), or undefined to create its job. */
  refusal(tenant: string): ScheduleSkip | undefined;
}

/** Compare-and-set rounds when recording a due time (a concurrent pause/resume/delete is the only other writer). */
const RECORD_ROUNDS = 8;
/** Schedules handled at once in one pass. */
const CONCURRENCY = 16;

export type FireOutcome = 'fired' | 'exists' | 'handled' | 'gone' | 'not_due' | ScheduleSkip;

export class ScheduleMetrics {
  readonly fired: Counter;
  readonly skipped: Counter<'reason'>;

  constructor(registry: Registry, count: () => number) {
    const registers = [registry];
    new Gauge({
      name: 'gantry_schedules',
      help: 'Cron schedules known to the leading scheduler (paused included; 0 on standbys)',
      registers,
      collect() {
        this.set(count());
      },
    });
    this.fired = new Counter({
      name: 'gantry_schedule_jobs_created_total',
      help: 'Jobs created by cron schedules (one per due time)',
      registers,
    });
    this.skipped = new Counter({
      name: 'gantry_schedule_due_skipped_total',
      help: 'Due times of cron schedules that created no job, by reason (overlap, draining, queue_full, tenant_queue_full)',
      labelNames: ['reason'],
      registers,
    });
  }
}

export class ScheduleTimer extends DueTimer {
  private readonly dueTimes: Map<string, number>;
  /** Every schedule in the bucket (paused included), by key. */
  private readonly known = new Map<string, ScheduleRecord>();
  private kv: KV | undefined;
  private watch: { stop(): void } | undefined;
  private running = false;

  constructor(
    private readonly nats: NatsHandle,
    private readonly jobs: JobStore,
    private readonly admission: ScheduleAdmission,
    private readonly metrics: ScheduleMetrics | undefined,
    clock: Clock,
    logger: Logger,
    options: DueTimerOptions = {},
    due: Map<string, number> = new Map(),
  ) {
    super(new MapDueQueue(due), clock, logger, 'fire cron schedules', options);
    this.dueTimes = due;
  }

  get size(): number {
    return this.known.size;
  }

  /** Leader: watch the bucket (its current values first) and fire what is due. */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    const iter = await (await this.bucket()).watch({ key: '>' });
    this.watch = iter;
    void (async () => {
      try {
        for await (const e of iter) this.apply(e);
      } catch (err) {
        if (this.running) this.logger.error({ err }, 'schedules watch ended');
      }
    })();
    this.activate();
  }

  private async bucket(): Promise<KV> {
    this.kv ??= await this.nats.kvm.open(BUCKETS.schedules);
    return this.kv;
  }

  /** Standing down: stop firing and forget the schedules (the next leader rebuilds them from the bucket). */
  stop(): void {
    this.running = false;
    this.deactivate();
    this.watch?.stop();
    this.watch = undefined;
    this.known.clear();
    this.dueTimes.clear();
  }

  private apply(e: KvEntry): void {
    if (!this.running) return;
    if (e.operation !== 'PUT') {
      this.forget(e.key);
      return;
    }
    let r: ScheduleRecord;
    try {
      r = decodePayload(CHANNELS.schedules, e.value);
    } catch (err) {
      if (!(err instanceof PayloadError)) throw err;
      this.logger.error({ err, key: e.key }, 'schedule record breaks the contract; ignoring it');
      this.forget(e.key);
      return;
    }
    this.known.set(e.key, r);
    if (r.paused || r.nextRunAt === null) {
      this.dueTimes.delete(e.key);
      return;
    }
    const at = Date.parse(r.nextRunAt);
    if (this.dueTimes.get(e.key) === at) return;
    this.dueTimes.set(e.key, at);
    this.scheduled(e.key, at);
  }

  private forget(key: string): void {
    this.known.delete(key);
    this.dueTimes.delete(key);
  }

  protected async release(keys: string[], now: Date): Promise<ReleaseOutcome> {
    const out: ReleaseOutcome = { refused: [], failed: [], succeeded: false };
    await mapBounded(keys, CONCURRENCY, async (key) => {
      try {
        const r = await this.handle(key, now);
        out.succeeded = true;
        if (r === 'not_due') out.refused.push(key);
      } catch (err) {
        out.failed.push(key);
        out.lastError = err;
      }
    });
    return out;
  }

  /** Handles the due time of one schedule at `now` (see the file's comment). */
  async handle(key: string, now: Date): Promise<FireOutcome> {
    const kv = await this.bucket();
    const e = await kv.get(key);
    if (!e || e.operation !== 'PUT') {
      this.forget(key);
      return 'gone';
    }
    const rec = decodePayload(CHANNELS.schedules, e.value);
    if (rec.paused || rec.nextRunAt === null) return 'gone';
    const { due, next } = dueNow(rec.cron, rec.timezone, Date.parse(rec.nextRunAt), now.getTime());
    if (due === undefined) return 'not_due';
    if (rec.lastDueAt !== null && Date.parse(rec.lastDueAt) >= due) {
      const after = nextDueAfter(rec.cron, rec.timezone, Math.max(Date.parse(rec.lastDueAt), now.getTime()));
      await this.record(kv, key, e, rec, { nextRunAt: after });
      return 'handled';
    }
    const jobId = scheduleJobId(rec.id, due, !!rec.spec.callbackUrl);
    let outcome: FireOutcome;
    let lastJobId = rec.lastJobId;
    const existing = await this.existingJob(rec.id, due, jobId);
    if (existing) {
      outcome = 'exists';
      lastJobId = existing;
    } else {
      const skip = await this.skipReason(rec);
      if (skip) {
        outcome = skip;
        this.metrics?.skipped.inc({ reason: skip });
        this.logger.warn(
          { scheduleId: rec.id, tenant: rec.tenant, dueAt: new Date(due).toISOString(), reason: skip },
          'schedule due time skipped: no job created',
        );
      } else {
        outcome = await this.create(rec, jobId, due, now);
        lastJobId = jobId;
      }
    }
    await this.record(kv, key, e, rec, { dueAt: due, lastJobId, nextRunAt: next });
    return outcome;
  }

  /**
   * The job of (schedule, due time) if one exists: under its id, or — for a schedule without a callback — under the
   * plain form a scheduler of an earlier release gave it (a takeover during a rolling upgrade creates no second job).
   */
  private async existingJob(scheduleId: string, due: number, jobId: string): Promise<string | undefined> {
    if (await this.jobs.get(jobId, { consistent: true })) return jobId;
    const plain = scheduleJobId(scheduleId, due);
    if (plain !== jobId && (await this.jobs.get(plain, { consistent: true }))) return plain;
    return undefined;
  }

  private async skipReason(rec: ScheduleRecord): Promise<ScheduleSkip | undefined> {
    if (rec.overlap === 'skip' && rec.lastJobId !== null) {
      const last = await this.jobs.get(rec.lastJobId, { consistent: true });
      if (last && !isTerminal(last.record.status)) return 'overlap';
    }
    return this.admission.refusal(rec.tenant);
  }

  /** The job of one due time, the root of its own trace. */
  private async create(rec: ScheduleRecord, jobId: string, due: number, now: Date): Promise<FireOutcome> {
    const dueAt = new Date(due).toISOString();
    return inSpan(
      'schedule.fire',
      {
        parent: contextFromTraceparent(undefined),
        // The request that created the schedule (its trace is not the job's: a schedule runs for months).
        links: [linkToTraceparent(rec.traceparent, rec.tracestate, { 'gantry.link.kind': 'schedule' })].flatMap((l) =>
          l ? [l] : [],
        ),
        attributes: {
          'gantry.schedule.id': rec.id,
          'gantry.schedule.due_at': dueAt,
          'gantry.job.id': jobId,
          'gantry.tenant': rec.tenant,
        },
      },
      async () => {
        try {
          await this.jobs.create(
            newJob(
              { ...rec.spec, tenant: rec.tenant, id: jobId, runAt: dueAt, scheduleId: rec.id, ...currentTraceparent() },
              now,
            ),
          );
        } catch (err) {
          if (err instanceof JobExistsError) return 'exists';
          throw err;
        }
        this.metrics?.fired.inc();
        this.logger.info({ scheduleId: rec.id, tenant: rec.tenant, jobId, dueAt }, 'schedule fired');
        return 'fired';
      },
    );
  }

  /** Records a handled due time (or only a new `nextRunAt`) with compare-and-set, merging a concurrent change. */
  private async record(
    kv: KV,
    key: string,
    entry: KvEntry,
    rec: ScheduleRecord,
    change: { dueAt?: number; lastJobId?: string | null; nextRunAt: number | undefined },
  ): Promise<void> {
    let cur = rec;
    let revision = entry.revision;
    for (let round = 0; round < RECORD_ROUNDS; round++) {
      const handled = cur.lastDueAt === null ? -Infinity : Date.parse(cur.lastDueAt);
      const dueAt = change.dueAt !== undefined && change.dueAt > handled ? change.dueAt : undefined;
      const wanted = change.nextRunAt === undefined ? null : new Date(change.nextRunAt).toISOString();
      // A resume in between computed its own next due time from its now: keep the later one.
      const nextRunAt =
        cur.nextRunAt !== null && wanted !== null && Date.parse(cur.nextRunAt) > Date.parse(wanted)
          ? cur.nextRunAt
          : wanted;
      const updated: ScheduleRecord = {
        ...cur,
        ...(dueAt !== undefined
          ? { lastDueAt: new Date(dueAt).toISOString(), lastJobId: change.lastJobId ?? cur.lastJobId }
          : {}),
        nextRunAt,
        updatedAt: this.clock.now().toISOString(),
      };
      try {
        await kv.update(key, JSON.stringify(updated), revision);
        return;
      } catch (err) {
        if (!isWrongLastSequence(err)) throw err;
      }
      const e = await kv.get(key);
      if (!e || e.operation !== 'PUT') return;
      cur = decodePayload(CHANNELS.schedules, e.value);
      revision = e.revision;
    }
    throw new Error(`schedule ${rec.id}: too many concurrent writers`);
  }
}
