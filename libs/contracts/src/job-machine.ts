/**
 * The job state machine as pure functions. Each takes the current record and returns the next revision together with
 * the event that names it, or throws {@link TransitionRefused}. Writers apply them with a compare-and-set on the
 * record's stream revision, so exactly one writer wins each transition and only the winner's event exists.
 *
 *   queued ──start──▶ running ──complete──▶ completed
 *     │ └──start and end (an attempt over before its start was written: one revision)──▶ completed | retrying |
 *     │                                                                                  failed | cancelled
 *     ▲  │              │ ├──fail (retryable, attempts left)──▶ retrying ──delay over──▶ queued
 *     │  │              │ ├──fail (final) / worker lost (final)──▶ failed
 *     │  │              │ ├──cancel requested ⇒ worker kills ──▶ cancelled
 *     │  │              │ └──hand back (worker shutdown)──▶ queued (attempt not counted)
 *     │  └──cancel──▶ cancelled            retrying ──cancel──▶ cancelled
 *     └──admin retry (new generation)── failed | cancelled
 *
 *   (submit with a future runAt) scheduled ──due──▶ queued      scheduled ──cancel──▶ cancelled
 *
 *   (submit with dependsOn) waiting ──every parent completed──▶ queued (or scheduled while runAt is to come)
 *                           waiting ──a parent failed / cancelled──▶ cancelled (DEPENDENCY_FAILED)
 *                           waiting ──cancel──▶ cancelled
 *   admin retry of a job with dependsOn ──▶ waiting (re-evaluated against its parents' current state)
 */
import type {
  CoalescedStart,
  ErrorCode,
  JobError,
  JobEvent,
  JobEventType,
  JobOutput,
  JobProgress,
  JobRecord,
  JobStatus,
  Priority,
} from './job';
import { nextRetryDelayMs } from './retry-policy';

export type TransitionRefusal = 'CONFLICT' | 'NOT_OWNER' | 'NOT_DUE' | 'UNCHANGED';

export class TransitionRefused extends Error {
  override readonly name = 'TransitionRefused';
  constructor(
    readonly reason: TransitionRefusal,
    message: string,
  ) {
    super(message);
  }
}

export interface Transition {
  type: JobEventType;
  record: JobRecord;
  change?: JobEvent['change'];
  /** The start this outcome also records ({@link startAndEnd}). */
  started?: CoalescedStart;
}

/** Identifies one attempt of one generation on one worker: only its owner may move a running job. */
export interface AttemptOwner {
  workerId: string;
  generation: number;
  attempt: number;
}

/** What a submit decides about a job; the state machine adds the rest of the record. */
export type NewJobSpec = Pick<
  JobRecord,
  | 'id'
  | 'tenant'
  | 'type'
  | 'input'
  | 'priority'
  | 'pool'
  | 'timeoutSeconds'
  | 'maxAttempts'
  | 'retryDelaysMs'
  | 'metadata'
> &
  Partial<
    Pick<
      JobRecord,
      | 'callbackUrl'
      | 'callbackToken'
      | 'gpu'
      | 'upload'
      | 'batchId'
      | 'traceparent'
      | 'tracestate'
      | 'runAt'
      | 'dependsOn'
      | 'scheduleId'
    >
  >;

let isoAt = Number.NaN;
let isoText = '';
/**
 * A date as ISO text, the last one kept: a transition stamps the same instant two or three times (`updatedAt` with
 * `startedAt` or `finishedAt`, and an attempt recorded in one revision both). An invalid date throws, as before.
 */
function iso(d: Date): string {
  const t = d.getTime();
  if (t !== isoAt) {
    isoText = d.toISOString();
    isoAt = t;
  }
  return isoText;
}

const hasParents = (r: Pick<JobRecord, 'dependsOn'>): boolean => (r.dependsOn?.length ?? 0) > 0;

/**
 * The first revision of a job, generation 1, sequence 1: `waiting` when it names parents in `dependsOn` (always, even
 * when they have all completed already: the scheduler releases it, one path), else `scheduled` when its `runAt` is
 * still to come, else `queued` (a `runAt` in the past, or `delaySeconds: 0`, queues it at once and keeps `runAt`).
 * An empty `dependsOn` is dropped.
 */
export function newJob(spec: NewJobSpec, now: Date): Transition {
  const waiting = hasParents(spec);
  const scheduled = !waiting && spec.runAt !== undefined && Date.parse(spec.runAt) > now.getTime();
  const status: JobStatus = waiting ? 'waiting' : scheduled ? 'scheduled' : 'queued';
  const at = iso(now);
  const record: JobRecord = {
    ...spec,
    status,
    generation: 1,
    attempts: 0,
    sequence: 1,
    enqueuedAt: at,
    createdAt: at,
    updatedAt: at,
  };
  // Set or removed in its place among the spec's fields (the JSON is the same as before). No `dependsOn: undefined` to
  // delete in the common case: a deleted property turns the record into a slow dictionary-mode object for every later
  // read and JSON encode of it.
  if (waiting) record.dependsOn = [...spec.dependsOn!];
  else if ('dependsOn' in record) delete record.dependsOn;
  return { type: `job.${status}` as 'job.waiting' | 'job.scheduled' | 'job.queued', record: stripUndefined(record) };
}

const hasOwn = Object.prototype.hasOwnProperty;

/**
 * The next revision: `{ ...cur, ...patch, sequence + 1, updatedAt }` without its undefined fields, built in one copy
 * (the spread and then {@link stripUndefined} made two of every record, three times per short attempt in the worker).
 * Keys keep the spread's order — the record's own, then the patch's new ones — so the JSON is the same.
 *
 * When the patch removes nothing the record has (the common case: a start from a fresh `queued` record, an outcome
 * after it), the copy is the engine's object spread and the patch's few fields are set on it; a field-by-field copy
 * of the whole record cost ≈ 1.5 µs against ≈ 0.4.
 */
function next(cur: JobRecord, now: Date, patch: Partial<JobRecord>): JobRecord {
  const from = cur as unknown as Record<string, unknown>;
  const changes = patch as Record<string, unknown>;
  for (const k in changes)
    if (changes[k] === undefined && hasOwn.call(from, k)) return nextRemoving(from, now, changes);
  const out: Record<string, unknown> = { ...from };
  for (const k in changes) {
    const v = changes[k];
    if (v !== undefined) out[k] = v;
  }
  out['sequence'] = cur.sequence + 1;
  out['updatedAt'] = iso(now);
  return out as unknown as JobRecord;
}

/** {@link next} for a patch that removes fields of the record: copied field by field, the removed ones left out. */
function nextRemoving(from: Record<string, unknown>, now: Date, changes: Record<string, unknown>): JobRecord {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(from)) {
    const v = hasOwn.call(changes, k) ? changes[k] : from[k];
    if (v !== undefined) out[k] = v;
  }
  for (const k of Object.keys(changes)) {
    if (hasOwn.call(from, k)) continue;
    const v = changes[k];
    if (v !== undefined) out[k] = v;
  }
  out['sequence'] = (from['sequence'] as number) + 1;
  out['updatedAt'] = iso(now);
  return out as unknown as JobRecord;
}

/**
 * A copy of `o` without its undefined fields, in the same order. A copy, not `delete` in place: deleting turns a record
 * into a dictionary-mode object, slower to spread, read and encode at every later step (measured in the worker's
 * profile, docs/performance.md "Worker and scheduler CPU per job").
 */
export function stripUndefined<T extends object>(o: T): T {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(o)) {
    const v = (o as Record<string, unknown>)[k];
    if (v !== undefined) out[k] = v;
  }
  return out as T;
}

function refuse(reason: TransitionRefusal, message: string): never {
  throw new TransitionRefused(reason, message);
}

export function assertOwner(cur: JobRecord, owner: AttemptOwner): void {
  if (cur.status !== 'running') refuse('NOT_OWNER', `job ${cur.id} is ${cur.status}, not running`);
  if (cur.generation !== owner.generation || cur.attempts !== owner.attempt || cur.workerId !== owner.workerId) {
    refuse(
      'NOT_OWNER',
      `job ${cur.id} runs generation ${cur.generation} attempt ${cur.attempts} on ${cur.workerId ?? '-'}, ` +
        `not generation ${owner.generation} attempt ${owner.attempt} on ${owner.workerId}`,
    );
  }
}

/** A worker takes a dispatched job: `queued` → `running`, counting the attempt. */
export function startAttempt(
  cur: JobRecord,
  owner: AttemptOwner,
  placement: { gpus: string[]; gpuIndices: number[] },
  now: Date,
): Transition {
  if (cur.status !== 'queued') refuse('CONFLICT', `job ${cur.id} is ${cur.status}, not queued`);
  if (cur.generation !== owner.generation) refuse('CONFLICT', `job ${cur.id} is in generation ${cur.generation}`);
  if (cur.attempts !== owner.attempt - 1) {
    refuse('CONFLICT', `job ${cur.id} has ${cur.attempts} attempts; dispatch was for attempt ${owner.attempt}`);
  }
  return {
    type: 'job.started',
    record: next(cur, now, {
      status: 'running',
      attempts: owner.attempt,
      workerId: owner.workerId,
      gpus: placement.gpus,
      gpuIndices: placement.gpuIndices,
      startedAt: iso(now),
      finishedAt: undefined,
      retryAt: undefined,
      progress: undefined,
      error: undefined,
      result: undefined,
      outputs: undefined,
    }),
  };
}

/** The outcomes an attempt may reach straight from `queued` in {@link startAndEnd}. */
const START_AND_END_OUTCOMES: readonly JobEventType[] = [
  'job.completed',
  'job.retrying',
  'job.failed',
  'job.cancelled',
];

/**
 * A worker records an attempt that ended before its `job.started` revision was written (WORKER_STARTED_REVISION_DELAY_MS),
 * in one revision: `queued` → the outcome, as if {@link startAttempt} at `startedAt` had been stored and `end` (the
 * outcome's own transition: {@link completeAttempt}, {@link failAttempt} or {@link cancelAttempt}) applied to it.
 * Refused exactly when the start would be (the record moved since the dispatch: cancelled, another attempt, another
 * generation). The revision's sequence is the outcome's (the current one + 2); `started` carries what the derived
 * `job.started` event needs (its sequence, the current one + 1), so events and webhook ids are those two revisions
 * would have had.
 */
export function startAndEnd(
  cur: JobRecord,
  owner: AttemptOwner,
  placement: { gpus: string[]; gpuIndices: number[] },
  startedAt: Date,
  end: (running: JobRecord) => Transition,
): Transition {
  const start = startAttempt(cur, owner, placement, startedAt);
  const s = start.record;
  const t = end(s);
  if (!START_AND_END_OUTCOMES.includes(t.type) || t.record.attempts !== s.attempts || t.started) {
    throw new Error(`startAndEnd: ${t.type} is not an outcome of attempt ${s.attempts}`);
  }
  const started: CoalescedStart = {
    sequence: s.sequence,
    timestamp: s.startedAt!,
    workerId: owner.workerId,
    ...(s.gpus ? { gpus: s.gpus } : {}),
    ...(s.gpuIndices ? { gpuIndices: s.gpuIndices } : {}),
  };
  if (JSON.stringify(t.record.gpu) !== JSON.stringify(s.gpu)) started.gpu = s.gpu ?? null;
  return { ...t, started };
}

export function reportProgress(cur: JobRecord, owner: AttemptOwner, progress: JobProgress, now: Date): Transition {
  assertOwner(cur, owner);
  if (cur.progress?.percent === progress.percent && cur.progress?.stage === progress.stage) {
    refuse('UNCHANGED', 'progress unchanged');
  }
  return { type: 'job.progress', record: next(cur, now, { progress }) };
}

export function completeAttempt(
  cur: JobRecord,
  owner: AttemptOwner,
  outcome: { result?: unknown; outputs?: JobOutput[] },
  now: Date,
): Transition {
  assertOwner(cur, owner);
  return {
    type: 'job.completed',
    record: next(cur, now, {
      status: 'completed',
      finishedAt: iso(now),
      // The last reported stage may have been throttled away before the end: a completed job is just done.
      progress: { percent: 100, stage: 'done' },
      result: outcome.result,
      outputs: outcome.outputs,
      error: undefined,
    }),
  };
}

/**
 * An attempt ended in error. Retryable errors with attempts left go to `retrying` (the delay comes from the policy
 * stamped on the job at submit); anything else ends the generation `failed`.
 */
function failRunning(cur: JobRecord, error: JobError, now: Date): Transition {
  if (cur.cancelRequestedAt) {
    return cancelled(cur, now, { code: 'CANCELLED', message: 'cancelled by request', retryable: false });
  }
  if (error.retryable && cur.attempts < cur.maxAttempts) {
    const delay = nextRetryDelayMs(cur.retryDelaysMs, cur.attempts);
    return {
      type: 'job.retrying',
      record: next(cur, now, {
        status: 'retrying',
        error,
        retryAt: iso(new Date(now.getTime() + delay)),
        workerId: undefined,
        gpus: undefined,
        gpuIndices: undefined,
      }),
    };
  }
  return {
    type: 'job.failed',
    record: next(cur, now, { status: 'failed', error, finishedAt: iso(now) }),
  };
}

/**
 * The attempt failed. `gpuMemoryMb` (an attempt that died of `GPU_OOM`) raises the job's memory request per GPU for its
 * next attempts when it is above the current one; the declared request is kept in `gpu.declaredMemoryMb`.
 */
export function failAttempt(
  cur: JobRecord,
  owner: AttemptOwner,
  error: JobError,
  now: Date,
  gpuMemoryMb?: number,
): Transition {
  assertOwner(cur, owner);
  const t = failRunning(cur, error, now);
  if (gpuMemoryMb === undefined || t.type === 'job.cancelled' || gpuMemoryMb <= (cur.gpu?.memoryMb ?? 0)) return t;
  const declaredMemoryMb = cur.gpu?.declaredMemoryMb ?? cur.gpu?.memoryMb ?? 0;
  return {
    ...t,
    record: { ...t.record, gpu: { count: Math.max(1, cur.gpu?.count ?? 1), memoryMb: gpuMemoryMb, declaredMemoryMb } },
  };
}

/** The scheduler's safety net: the worker running this attempt stopped heartbeating. Costs the attempt. */
export function workerLost(cur: JobRecord, workerId: string, now: Date): Transition {
  if (cur.status !== 'running' || cur.workerId !== workerId) {
    refuse('CONFLICT', `job ${cur.id} is not running on ${workerId}`);
  }
  return failRunning(
    cur,
    {
      code: 'WORKER_LOST',
      message: `worker ${workerId} stopped heartbeating during attempt ${cur.attempts}`,
      retryable: true,
    },
    now,
  );
}

function cancelled(cur: JobRecord, now: Date, error: JobError): Transition {
  return {
    type: 'job.cancelled',
    record: next(cur, now, { status: 'cancelled', error, finishedAt: iso(now), retryAt: undefined }),
  };
}

/** The worker killed the job process because a cancel was requested. */
export function cancelAttempt(cur: JobRecord, owner: AttemptOwner, now: Date): Transition {
  assertOwner(cur, owner);
  return cancelled(cur, now, { code: 'CANCELLED', message: 'cancelled by request', retryable: false });
}

/**
 * A client or admin cancels. Queued and retrying jobs end at once; a running job is marked, and its worker kills the
 * process and writes `cancelled`.
 */
export function requestCancel(cur: JobRecord, now: Date, reason = 'cancelled by request'): Transition {
  switch (cur.status) {
    case 'scheduled':
    case 'waiting':
    case 'queued':
    case 'retrying':
      return cancelled(cur, now, { code: 'CANCELLED', message: reason, retryable: false });
    case 'running':
      if (cur.cancelRequestedAt) refuse('UNCHANGED', `job ${cur.id} is already being cancelled`);
      return { type: 'job.cancel_requested', record: next(cur, now, { cancelRequestedAt: iso(now) }) };
    case 'completed':
    case 'failed':
    case 'cancelled':
      return refuse('CONFLICT', `job ${cur.id} is already ${cur.status}`);
  }
}

/** A stopping worker gives a running attempt back; the attempt is not counted and the job keeps its place. */
export function handBack(cur: JobRecord, owner: AttemptOwner, now: Date): Transition {
  assertOwner(cur, owner);
  if (cur.cancelRequestedAt)
    return cancelled(cur, now, { code: 'CANCELLED', message: 'cancelled by request', retryable: false });
  return {
    type: 'job.queued',
    record: next(cur, now, {
      status: 'queued',
      attempts: cur.attempts - 1,
      workerId: undefined,
      gpus: undefined,
      gpuIndices: undefined,
      startedAt: undefined,
      progress: undefined,
    }),
  };
}

/** The scheduler moves a job whose retry delay is over back into the queue, at its original place. */
export function requeueAfterDelay(cur: JobRecord, now: Date): Transition {
  if (cur.status !== 'retrying') refuse('CONFLICT', `job ${cur.id} is ${cur.status}, not retrying`);
  if (cur.retryAt && Date.parse(cur.retryAt) > now.getTime())
    refuse('NOT_DUE', `job ${cur.id} retries at ${cur.retryAt}`);
  return { type: 'job.queued', record: next(cur, now, { status: 'queued', retryAt: undefined }) };
}

/**
 * The scheduler moves a `scheduled` job whose `runAt` has come into its priority level. Its FIFO place is taken now
 * (`queueSeq` is this revision's stream sequence: FIFO by the time it became due, and the scheduler writes the jobs due
 * together in acceptance order); the aging clock starts at `runAt`.
 */
export function enqueueDue(cur: JobRecord, now: Date): Transition {
  if (cur.status !== 'scheduled') refuse('CONFLICT', `job ${cur.id} is ${cur.status}, not scheduled`);
  if (cur.runAt && Date.parse(cur.runAt) > now.getTime()) refuse('NOT_DUE', `job ${cur.id} runs at ${cur.runAt}`);
  return {
    type: 'job.queued',
    record: next(cur, now, { status: 'queued', queueSeq: undefined, enqueuedAt: cur.runAt ?? iso(now) }),
  };
}

/**
 * The scheduler releases a `waiting` job whose parents have all `completed` (the caller checked them; the record does
 * not hold their states). It takes its FIFO place now (`queueSeq` = this revision's stream sequence, the aging clock
 * from now: it could not run before); a job whose `runAt` is still to come goes on to `scheduled` and takes its place
 * when due instead.
 */
export function releaseWaiting(cur: JobRecord, now: Date): Transition {
  if (cur.status !== 'waiting') refuse('CONFLICT', `job ${cur.id} is ${cur.status}, not waiting`);
  if (cur.runAt && Date.parse(cur.runAt) > now.getTime()) {
    return { type: 'job.scheduled', record: next(cur, now, { status: 'scheduled' }) };
  }
  return {
    type: 'job.queued',
    record: next(cur, now, { status: 'queued', queueSeq: undefined, enqueuedAt: iso(now) }),
  };
}

/**
 * The scheduler ends a `waiting` job one of whose parents ended `failed` or `cancelled` (or is gone: removed by
 * retention before the child was evaluated): `cancelled` with `DEPENDENCY_FAILED` naming that parent. Its own end cascades to its children the same way.
 */
export function dependencyFailed(
  cur: JobRecord,
  now: Date,
  parentId: string,
  parentStatus: 'failed' | 'cancelled' | 'missing',
): Transition {
  if (cur.status !== 'waiting') refuse('CONFLICT', `job ${cur.id} is ${cur.status}, not waiting`);
  if (!cur.dependsOn?.includes(parentId)) refuse('CONFLICT', `job ${cur.id} does not depend on ${parentId}`);
  return cancelled(cur, now, {
    code: 'DEPENDENCY_FAILED',
    message:
      parentStatus === 'missing'
        ? `dependency ${parentId} does not exist (any more)`
        : `dependency ${parentId} ended ${parentStatus}`,
    retryable: false,
  });
}

/**
 * An admin retries a failed or cancelled job: a new generation, attempts from zero, a new place at the tail. A job
 * with `dependsOn` goes back to `waiting` instead, and the scheduler re-evaluates it against its parents' current
 * state (released if they all completed, ended `DEPENDENCY_FAILED` again if one is failed or cancelled).
 */
export function adminRetry(cur: JobRecord, now: Date): Transition {
  if (cur.status !== 'failed' && cur.status !== 'cancelled') {
    refuse('CONFLICT', `job ${cur.id} is ${cur.status}; only failed or cancelled jobs can be retried`);
  }
  const waiting = hasParents(cur);
  return {
    type: waiting ? 'job.waiting' : 'job.queued',
    record: next(cur, now, {
      status: waiting ? 'waiting' : 'queued',
      generation: cur.generation + 1,
      attempts: 0,
      queueSeq: undefined,
      enqueuedAt: iso(now),
      startedAt: undefined,
      finishedAt: undefined,
      retryAt: undefined,
      workerId: undefined,
      gpus: undefined,
      gpuIndices: undefined,
      progress: undefined,
      result: undefined,
      outputs: undefined,
      error: undefined,
      cancelRequestedAt: undefined,
    }),
  };
}

const REPRIORITIZABLE: readonly JobStatus[] = ['scheduled', 'waiting', 'queued', 'retrying'];

/**
 * Reprioritizes a job that has not started: it keeps its submission order (queueSeq) within the new level; a
 * `scheduled` one enters the new level when it becomes due.
 */
export function reprioritize(cur: JobRecord, priority: Priority, now: Date): Transition {
  if (!REPRIORITIZABLE.includes(cur.status)) {
    refuse(
      'CONFLICT',
      `job ${cur.id} is ${cur.status}; only scheduled, waiting, queued or retrying jobs can be reprioritized`,
    );
  }
  if (cur.priority === priority) refuse('UNCHANGED', `job ${cur.id} already has priority ${priority}`);
  return {
    type: 'job.priority_changed',
    record: next(cur, now, { priority }),
    change: { fromPriority: cur.priority },
  };
}

/** Wraps a transition into the message that is stored. */
export function toEvent(t: Transition, now: Date): JobEvent {
  return {
    type: t.type,
    timestamp: now.toISOString(),
    sequence: t.record.sequence,
    generation: t.record.generation,
    job: t.record,
    ...(t.change ? { change: t.change } : {}),
    ...(t.started ? { started: t.started } : {}),
  };
}

export function jobError(code: ErrorCode, message: string, retryable: boolean, detail?: string): JobError {
  return detail ? { code, message, retryable, detail } : { code, message, retryable };
}
