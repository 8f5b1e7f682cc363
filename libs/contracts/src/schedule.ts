/**
 * Cron schedules (API.md §3 "Schedules", since v1.1): the durable record kept in the `gantry_schedules_v1` bucket (one
 * key per schedule, `<tenant>.<id>`, compare-and-set on its revision), its client view, and the deterministic id of the
 * job a schedule creates for one due time (docs/schedules.md).
 */
import type { JobRequest } from './api';
import { bool, nullable, object, oneOf, optional, recordOf, anyJson, str, literal, type Guard } from './guards';
import type { NewJobSpec } from './job-machine';
import { assertToken, isNoCallbackJobId } from './names';
import { newJobSpec } from './payload-guards';

export const SCHEDULE_OVERLAPS = ['skip', 'allow'] as const;
export type ScheduleOverlap = (typeof SCHEDULE_OVERLAPS)[number];

/** The job a schedule creates, as prepared at the schedule's creation (defaults in force then), less what each run sets. */
export type ScheduleJobSpec = Omit<
  NewJobSpec,
  'id' | 'runAt' | 'traceparent' | 'tracestate' | 'batchId' | 'scheduleId'
>;

/** One schedule, the value of its key in the schedules bucket. A deleted schedule is the key's delete marker. */
export interface ScheduleRecord {
  v: 1;
  id: string;
  tenant: string;
  name: string;
  /** 5 fields, or 6 with seconds first. */
  cron: string;
  /** IANA time zone the cron is read in. */
  timezone: string;
  /** The job request as the client gave it (validated like `POST /v1/jobs`); echoed in the view. */
  job: JobRequest;
  /** What each run creates: the request with the gateway's defaults applied at creation. */
  spec: ScheduleJobSpec;
  overlap: ScheduleOverlap;
  paused: boolean;
  /** The next due time still to handle (ISO, ms), or null when the cron has no further time. */
  nextRunAt: string | null;
  /** The last due time handled, fired or skipped: never handled twice (survives the job's retention). */
  lastDueAt: string | null;
  /** The job of the last fired due time. */
  lastJobId: string | null;
  createdAt: string;
  updatedAt: string;
  /** The W3C trace context of the request that created it: each due time's `schedule.fire` span links to it. */
  traceparent?: string;
  tracestate?: string;
}

/** `POST /v1/schedules` body. */
export interface ScheduleRequest {
  name: string;
  cron: string;
  timezone?: string;
  job: JobRequest;
  overlap?: ScheduleOverlap;
}

/** A schedule as clients see it (`callbackToken` of its job is never shown). */
export interface ScheduleView {
  id: string;
  name: string;
  cron: string;
  timezone: string;
  job: JobRequest;
  overlap: ScheduleOverlap;
  paused: boolean;
  nextRunAt: string | null;
  lastJobId: string | null;
  /** Extras beyond API.md's list: the owner, the last handled due time, and the record's times. */
  tenant: string;
  lastDueAt: string | null;
  createdAt: string;
  updatedAt: string;
}

/** `GET /v1/schedules`. */
export interface SchedulePage {
  items: ScheduleView[];
  nextCursor: string | null;
}

export function toScheduleView(r: ScheduleRecord): ScheduleView {
  const job: JobRequest = { ...r.job };
  delete job.callbackToken;
  return {
    id: r.id,
    name: r.name,
    cron: r.cron,
    timezone: r.timezone,
    job,
    overlap: r.overlap,
    paused: r.paused,
    nextRunAt: r.nextRunAt,
    lastJobId: r.lastJobId,
    tenant: r.tenant,
    lastDueAt: r.lastDueAt,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
  };
}

/** The key of a schedule in the bucket: the tenant first, so a tenant's schedules are one key filter (`<tenant>.*`). */
export function scheduleKey(tenant: string, id: string): string {
  return `${assertToken('tenant', tenant)}.${assertToken('schedule id', id)}`;
}

/**
 * The job id of one due time of a schedule: the same on every scheduler, so a second create of it is refused. Its form
 * follows the callback rule of every job id (`newJobId`, docs/architecture.md "Job subjects"): a schedule whose job
 * has no callback URL creates `<schedule id in lower case>_<due ms>`, whose revisions the notifier never reads. A
 * schedule id whose lower case is not of the no-callback form (not a ULID, or one without a letter) keeps the plain
 * form: still deterministic, only read by the notifier's intake.
 */
export function scheduleJobId(scheduleId: string, dueMs: number, hasCallback = true): string {
  if (!hasCallback) {
    const quiet = `${scheduleId.toLowerCase()}_${dueMs}`;
    if (isNoCallbackJobId(quiet)) return quiet;
  }
  return assertToken('job id', `${scheduleId}_${dueMs}`);
}

const jobSpecGuard: Guard<ScheduleJobSpec> = (v, p) => {
  // The stored spec has every field of a new job but its id; check it with the new-job guard and a placeholder id.
  const withId = newJobSpec({ ...(v as object), id: '-' }, p);
  const { id: _id, ...spec } = withId;
  return spec;
};

export const scheduleRecordGuard: Guard<ScheduleRecord> = object<ScheduleRecord>({
  v: literal(1),
  id: str,
  tenant: str,
  name: str,
  cron: str,
  timezone: str,
  job: object<JobRequest>({ type: str, input: optional(recordOf(anyJson)) }),
  spec: jobSpecGuard,
  overlap: oneOf(SCHEDULE_OVERLAPS),
  paused: bool,
  nextRunAt: nullable(str),
  lastDueAt: nullable(str),
  lastJobId: nullable(str),
  createdAt: str,
  updatedAt: str,
  traceparent: optional(str),
  tracestate: optional(str),
});
