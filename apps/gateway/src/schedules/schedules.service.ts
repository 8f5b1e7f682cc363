/**
 * Cron schedules (`/v1/schedules`, API.md §3): validation and the schedule records in the `gantry_schedules_v1`
 * bucket. The gateway only writes what clients ask (create, pause, resume, delete); the leading scheduler fires the
 * due times (apps/scheduler/src/schedules). Every write after the create is a compare-and-set on the key's revision,
 * so a pause never overwrites a fire the scheduler recorded in between (and vice versa). docs/schedules.md.
 */
import { Inject, Injectable } from '@nestjs/common';
import {
  BUCKETS,
  CHANNELS,
  SCHEDULE_OVERLAPS,
  SUBJECT_TOKEN,
  cronProblem,
  isPlainObject,
  isTimeZone,
  newId,
  nextDueAfter,
  scheduleKey,
  type Clock,
  type FieldError,
  type JobRequest,
  type ScheduleJobSpec,
  type ScheduleOverlap,
  type ScheduleRecord,
} from '@gantry/contracts';
import { decodePayload, isWrongLastSequence } from '@gantry/jetstream';
import { currentTraceparent } from '@gantry/telemetry';
import type { KV, KvEntry } from '@nats-io/kv';
import type { Principal } from '../auth/auth';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config';
import { problems } from '../http/problem';
import { JobRequestValidator } from '../jobs/job-request.validator';
import { JobsService } from '../jobs/jobs.service';
import { GatewayNats } from '../nats/gateway-nats';
import { CLOCK } from '../tokens';

/** Fields of a schedule's job that a schedule sets itself (the due time) or that it cannot have. */
const REFUSED_JOB_FIELDS: Record<string, string> = {
  runAt: 'is set by the schedule (each job runs at its due time); remove it',
  delaySeconds: 'is not allowed in a schedule (each job runs at its due time); remove it',
  dependsOn: 'is not allowed in a schedule (a scheduled job has no parents); remove it',
};

const MAX_NAME_LENGTH = 200;
/** Compare-and-set rounds before a write gives up with a 503 (the scheduler writes a schedule at most once per due time). */
const CAS_ROUNDS = 8;

export interface ListSchedulesQuery {
  /** Undefined: every tenant (admin keys). */
  tenant?: string;
  limit: number;
  cursor?: string;
}

@Injectable()
export class SchedulesService {
  private kv: Promise<KV> | undefined;

  constructor(
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
    @Inject(GatewayNats) private readonly nats: GatewayNats,
    @Inject(JobRequestValidator) private readonly validator: JobRequestValidator,
    @Inject(JobsService) private readonly jobs: JobsService,
    @Inject(CLOCK) private readonly clock: Clock,
  ) {}

  private bucket(): Promise<KV> {
    this.kv ??= this.nats
      .handle()
      .kvm.open(BUCKETS.schedules)
      .catch((err: unknown) => {
        this.kv = undefined;
        throw err;
      });
    return this.kv;
  }

  /** A `POST /v1/schedules` body: every error at once (the job's named `job.…`), or the schedule to store. */
  async validate(p: Principal, body: unknown): Promise<ScheduleRecord> {
    if (!isPlainObject(body)) throw problems.validation([{ field: 'body', message: 'must be a JSON object' }]);
    const allowed = ['name', 'cron', 'timezone', 'job', 'overlap'];
    const errors: FieldError[] = Object.keys(body)
      .filter((k) => !allowed.includes(k))
      .map((k) => ({ field: k, message: 'is not a known field' }));
    const { name, cron, timezone = 'UTC', overlap = 'skip', job } = body;
    if (typeof name !== 'string' || name.trim().length === 0 || name.length > MAX_NAME_LENGTH)
      errors.push({ field: 'name', message: `must be a non-empty string of at most ${MAX_NAME_LENGTH} characters` });
    let cronOk = false;
    if (typeof cron !== 'string' || cron.length > 256)
      errors.push({ field: 'cron', message: 'must be a cron expression (a string of at most 256 characters)' });
    else {
      const problem = cronProblem(cron);
      if (problem) errors.push({ field: 'cron', message: problem });
      else cronOk = true;
    }
    let tzOk = false;
    if (typeof timezone !== 'string' || !isTimeZone(timezone))
      errors.push({ field: 'timezone', message: 'must be an IANA time zone name such as UTC or Europe/Paris' });
    else tzOk = true;
    if (typeof overlap !== 'string' || !(SCHEDULE_OVERLAPS as readonly string[]).includes(overlap))
      errors.push({ field: 'overlap', message: `must be one of ${SCHEDULE_OVERLAPS.join(', ')}` });
    let spec: ScheduleJobSpec | undefined;
    if (job === undefined)
      errors.push({ field: 'job', message: 'is required (the job request each due time creates)' });
    else if (!isPlainObject(job)) errors.push({ field: 'job', message: 'must be a job request object' });
    else {
      const refused = Object.keys(REFUSED_JOB_FIELDS).filter((k) => k in job);
      for (const k of refused) errors.push({ field: `job.${k}`, message: REFUSED_JOB_FIELDS[k]! });
      if (refused.length === 0) {
        const r = await this.validator.scheduleJob(job, p.tenant);
        errors.push(...r.errors);
        if (r.dto) {
          const { id: _id, traceparent: _tp, tracestate: _ts, ...rest } = this.jobs.prepare(p, r.dto);
          spec = rest;
        }
      }
    }
    const now = this.clock.now();
    let next: number | undefined;
    if (cronOk && tzOk) {
      next = nextDueAfter(cron as string, timezone as string, now.getTime());
      if (next === undefined) errors.push({ field: 'cron', message: 'has no due time after now' });
    }
    if (errors.length > 0 || !spec || next === undefined)
      throw problems.validation(errors, `the schedule is not valid (${errors.length} error(s))`);
    return {
      v: 1,
      id: newId(),
      tenant: p.tenant,
      name: (name as string).trim(),
      cron: (cron as string).trim(),
      timezone: timezone as string,
      job: job as unknown as JobRequest,
      spec,
      overlap: overlap as ScheduleOverlap,
      paused: false,
      nextRunAt: new Date(next).toISOString(),
      lastDueAt: null,
      lastJobId: null,
      createdAt: now.toISOString(),
      updatedAt: now.toISOString(),
      // The creating request's trace: each due time's `schedule.fire` span links to it.
      ...currentTraceparent(),
    };
  }

  /** Stores a new schedule unless its tenant holds MAX_SCHEDULES_PER_TENANT already (429). */
  async create(record: ScheduleRecord): Promise<ScheduleRecord> {
    const kv = await this.bucket();
    const cap = this.config.MAX_SCHEDULES_PER_TENANT;
    const held = (await this.keysOf(kv, record.tenant)).length;
    if (held >= cap) {
      throw problems.tooMany(
        `tenant ${record.tenant} holds ${held} schedules; at most ${cap} (MAX_SCHEDULES_PER_TENANT): delete one first`,
        60,
        'too-many-schedules',
      );
    }
    await kv.create(scheduleKey(record.tenant, record.id), JSON.stringify(record));
    return record;
  }

  /** The schedule if this principal may see it: 404 for unknown ids and for other tenants' schedules (client keys). */
  async get(p: Principal, id: string): Promise<{ record: ScheduleRecord; revision: number; key: string }> {
    const notFound = problems.notFound(`schedule ${id} not found`);
    if (!SUBJECT_TOKEN.test(id)) throw notFound;
    const kv = await this.bucket();
    let key: string | undefined;
    if (p.role === 'admin') {
      // Admin keys see every tenant's: find the key by its id part.
      const keys = await collect(await kv.keys(`*.${id}`));
      key = keys[0];
    } else {
      key = scheduleKey(p.tenant, id);
    }
    const e = key ? await kv.get(key) : null;
    if (!key || !e || e.operation !== 'PUT') throw notFound;
    const record = decode(e);
    if (p.role !== 'admin' && record.tenant !== p.tenant) throw notFound;
    return { record, revision: e.revision, key };
  }

  /** One page of schedules, ordered by id (creation order); the cursor is the last id of the previous page. */
  async list(q: ListSchedulesQuery): Promise<{ items: ScheduleRecord[]; nextCursor: string | null }> {
    const kv = await this.bucket();
    const keys = q.tenant !== undefined ? await this.keysOf(kv, q.tenant) : await collect(await kv.keys('>'));
    const idOf = (k: string) => k.slice(k.indexOf('.') + 1);
    const sorted = keys
      .map((k) => ({ k, id: idOf(k) }))
      .filter((x) => q.cursor === undefined || x.id > q.cursor)
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const items: ScheduleRecord[] = [];
    let last: string | undefined;
    let more = false;
    for (const x of sorted) {
      if (items.length >= q.limit) {
        more = true;
        break;
      }
      const e = await kv.get(x.k);
      last = x.id;
      if (e && e.operation === 'PUT') items.push(decode(e));
    }
    return { items, nextCursor: more && last ? last : null };
  }

  /** Deletes (a delete marker: the scheduler stops at once; its due time's job, if being created, still is). */
  async delete(p: Principal, id: string): Promise<void> {
    const kv = await this.bucket();
    for (let round = 0; round < CAS_ROUNDS; round++) {
      const cur = await this.get(p, id);
      try {
        await kv.delete(cur.key, { previousSeq: cur.revision });
        return;
      } catch (err) {
        if (!isWrongLastSequence(err)) throw err;
      }
    }
    throw problems.unavailable('the schedule is being changed; try again', 1);
  }

  /** Pauses: no job is created while paused; due times that pass meanwhile are skipped. */
  pause(p: Principal, id: string): Promise<ScheduleRecord> {
    return this.change(p, id, (r, now) => (r.paused ? r : { ...r, paused: true, updatedAt: now.toISOString() }));
  }

  /** Resumes: the next due time is computed from now (those that passed while paused are not run). */
  resume(p: Principal, id: string): Promise<ScheduleRecord> {
    return this.change(p, id, (r, now) => {
      if (!r.paused) return r;
      const next = nextDueAfter(r.cron, r.timezone, now.getTime());
      return {
        ...r,
        paused: false,
        nextRunAt: next === undefined ? null : new Date(next).toISOString(),
        updatedAt: now.toISOString(),
      };
    });
  }

  private async change(
    p: Principal,
    id: string,
    decide: (r: ScheduleRecord, now: Date) => ScheduleRecord,
  ): Promise<ScheduleRecord> {
    const kv = await this.bucket();
    for (let round = 0; round < CAS_ROUNDS; round++) {
      const cur = await this.get(p, id);
      const next = decide(cur.record, this.clock.now());
      if (next === cur.record) return next;
      try {
        await kv.update(cur.key, JSON.stringify(next), cur.revision);
        return next;
      } catch (err) {
        if (!isWrongLastSequence(err)) throw err;
      }
    }
    throw problems.unavailable('the schedule is being changed; try again', 1);
  }

  private async keysOf(kv: KV, tenant: string): Promise<string[]> {
    return collect(await kv.keys(`${tenant}.*`));
  }
}

function decode(e: KvEntry): ScheduleRecord {
  return decodePayload(CHANNELS.schedules, e.value);
}

async function collect(it: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const k of it) out.push(k);
  return out;
}
