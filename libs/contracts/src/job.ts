/** The job record, its statuses and lifecycle events. The record (its last revision in the jobs stream) is the truth. */

export const PRIORITIES = ['urgent', 'high', 'normal', 'low'] as const;
export type Priority = (typeof PRIORITIES)[number];

/** 0 = urgent … 3 = low. Lower runs first. */
export function priorityLevel(p: Priority): number {
  return PRIORITIES.indexOf(p);
}

/**
 * `scheduled`: accepted with a `runAt` in the future, holding no token and outside `depth` until then (v1.1).
 * `waiting`: accepted with a non-empty `dependsOn`, holding no token and outside `depth` until every parent is
 * `completed` (then `queued`, or `scheduled` when its `runAt` is still to come); ends `cancelled` with
 * `DEPENDENCY_FAILED` when a parent ends `failed` or `cancelled` (v1.1, docs/pipelines.md).
 */
export const JOB_STATUSES = [
  'scheduled',
  'waiting',
  'queued',
  'running',
  'retrying',
  'completed',
  'failed',
  'cancelled',
] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

/** The most parents one job may name in `dependsOn` (API.md §3). */
export const MAX_DEPENDS_ON = 100;

export const TERMINAL_STATUSES: readonly JobStatus[] = ['completed', 'failed', 'cancelled'];
export function isTerminal(status: JobStatus): boolean {
  return TERMINAL_STATUSES.includes(status);
}

/** Lifecycle events that clients see (webhooks, SSE). */
export const PUBLIC_EVENT_TYPES = [
  'job.scheduled',
  'job.waiting',
  'job.queued',
  'job.started',
  'job.progress',
  'job.retrying',
  'job.completed',
  'job.failed',
  'job.cancelled',
] as const;
export type PublicEventType = (typeof PUBLIC_EVENT_TYPES)[number];

/** Revisions of the record that are not lifecycle events for clients. */
export const INTERNAL_EVENT_TYPES = ['job.cancel_requested', 'job.priority_changed'] as const;
export type InternalEventType = (typeof INTERNAL_EVENT_TYPES)[number];
export type JobEventType = PublicEventType | InternalEventType;

export function isPublicEvent(type: string): type is PublicEventType {
  return (PUBLIC_EVENT_TYPES as readonly string[]).includes(type);
}

export const ERROR_CODES = [
  'TIMEOUT',
  'EXIT_CODE',
  'SIGNAL',
  'CANCELLED',
  'UPLOAD_FAILED',
  'DOWNLOAD_FAILED',
  'WORKER_LOST',
  'INVALID_INPUT',
  'SPAWN_FAILED',
  'JOB_FAILED',
  'INTERNAL',
  'DISK_LIMIT',
  'SANDBOX_FAILED',
  'GPU_OOM',
  /** A parent named in `dependsOn` ended `failed` or `cancelled` (never retryable; an admin retry re-evaluates). */
  'DEPENDENCY_FAILED',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export interface JobError {
  code: ErrorCode;
  message: string;
  retryable: boolean;
  /** Last lines the job process wrote, when it failed. */
  detail?: string;
}

export interface GpuRequest {
  /** GPUs the job needs. 0 = none; absent `gpu` = runs anywhere, on one GPU of a GPU worker. */
  count: number;
  /** Memory to reserve on each assigned GPU. */
  memoryMb: number;
  /**
   * Present once an attempt died of GPU out-of-memory (`GPU_OOM`): the memory the job was submitted with (0 = none
   * declared), while `memoryMb` holds the raised request for the next attempts (docs/gpu.md).
   */
  declaredMemoryMb?: number;
}

export interface JobOutput {
  name: string;
  url: string;
  sizeBytes: number;
  /** Filled at read/delivery time (presigned), never stored. */
  downloadUrl?: string;
}

export interface JobProgress {
  percent: number;
  stage?: string;
}

export interface JobRecord {
  id: string;
  tenant: string;
  type: string;
  input: Record<string, unknown>;
  /** Base priority. Aging is computed by the scheduler and never written back. */
  priority: Priority;
  pool: string;
  callbackUrl?: string;
  /** Sent as `authorization: Bearer …` with webhooks. Never shown in a view. */
  callbackToken?: string;
  timeoutSeconds: number;
  maxAttempts: number;
  /** The retry policy in force when the job was accepted (RETRY_DELAYS_MS). */
  retryDelaysMs: number[];
  gpu?: GpuRequest;
  upload?: { url: string };
  metadata: Record<string, unknown>;
  batchId?: string;
  /** The cron schedule that created the job (v1.1); its `runAt` is the due time. */
  scheduleId?: string;

  status: JobStatus;
  generation: number;
  /** Attempts started in this generation. */
  attempts: number;
  /** Per-job event sequence, monotonic across generations and services. */
  sequence: number;
  /** Stream sequence of the first revision. Absent in that revision itself (see {@link normalizeRecord}). */
  createSeq?: number;
  /** FIFO order key within a priority level: the stream sequence of the revision that placed the job in the queue. */
  queueSeq?: number;
  /** When the job took its queue order (the aging clock). */
  enqueuedAt: string;
  createdAt: string;
  updatedAt: string;
  startedAt?: string;
  finishedAt?: string;
  retryAt?: string;
  /**
   * When the job was asked to run (`runAt`, or acceptance + `delaySeconds`), millisecond precision; kept after it became
   * due, so the view echoes it. A job with a `runAt` in the future is `scheduled` until then.
   */
  runAt?: string;
  /**
   * Job ids (same tenant, ≤ {@link MAX_DEPENDS_ON}) that must all be `completed` before this job is released from
   * `waiting` (v1.1). The durable dependency edges: the scheduler rebuilds its parent → children index from them.
   */
  dependsOn?: string[];
  workerId?: string;
  gpus?: string[];
  gpuIndices?: number[];
  progress?: JobProgress;
  result?: unknown;
  outputs?: JobOutput[];
  error?: JobError;
  cancelRequestedAt?: string;
  /** W3C trace context of the submission, so that every later span joins the job's trace. */
  traceparent?: string;
  tracestate?: string;
}

/** One message of the jobs stream: a revision of the record and the lifecycle event that made it. */
export interface JobEvent {
  type: JobEventType;
  timestamp: string;
  sequence: number;
  generation: number;
  job: JobRecord;
  /** Details of internal revisions. */
  change?: { fromPriority?: Priority };
  /**
   * Present on an attempt's outcome revision when the attempt ended before its worker wrote a separate `job.started`
   * revision (WORKER_STARTED_REVISION_DELAY_MS): the one revision records both, and its `job.started` event is
   * derived from it ({@link expandEvent}), in order, with the sequence (`sequence - 1`) it would have had.
   */
  started?: CoalescedStart;
}

/**
 * The start an outcome revision stands for (see {@link JobEvent.started}): what the `job.started` revision would have
 * held where the outcome changed it. `gpu` is present only when the outcome changed the job's GPU request (a
 * `GPU_OOM` raises it; `null`: the job had none).
 */
export interface CoalescedStart {
  /** Of the derived `job.started` event: the outcome's sequence − 1. */
  sequence: number;
  /** When the attempt started (its `startedAt`), the derived event's timestamp. */
  timestamp: string;
  workerId: string;
  gpus?: string[];
  gpuIndices?: number[];
  gpu?: GpuRequest | null;
}

/**
 * The lifecycle events one stored revision stands for, in order: the revision's own event, preceded by the derived
 * `job.started` event when it records an attempt that never had a `job.started` revision of its own. The derived
 * record is exactly the one that `startAttempt` would have stored (status `running`, no outcome fields).
 */
export function expandEvent(e: JobEvent): JobEvent[] {
  const s = e.started;
  if (!s) return [e];
  const { started: _started, ...outcome } = e;
  const { finishedAt: _f, retryAt: _r, progress: _p, result: _res, outputs: _o, error: _e, ...rest } = e.job;
  const job: JobRecord = {
    ...rest,
    status: 'running',
    sequence: s.sequence,
    updatedAt: s.timestamp,
    startedAt: s.timestamp,
    workerId: s.workerId,
  };
  if (s.gpus) job.gpus = s.gpus;
  else delete job.gpus;
  if (s.gpuIndices) job.gpuIndices = s.gpuIndices;
  else delete job.gpuIndices;
  if (s.gpu === null) delete job.gpu;
  else if (s.gpu) job.gpu = s.gpu;
  const startedEvent: JobEvent = {
    type: 'job.started',
    timestamp: s.timestamp,
    sequence: s.sequence,
    generation: e.generation,
    job,
  };
  return [startedEvent, outcome];
}

/** {@link expandEvent} for a stored revision: a derived event shares the revision it was derived from. */
export function expandStored(s: StoredJob): StoredJob[] {
  if (!s.event.started) return [s];
  return expandEvent(s.event).map((event) => ({ record: event.job, revision: s.revision, event }));
}

/** A record as read from the stream, with the stream revision used for compare-and-set. */
export interface StoredJob {
  record: JobRecord;
  revision: number;
  event: JobEvent;
}

/**
 * Fills `createSeq` and `queueSeq`, which the revision that set them could not know (a message does not know its own
 * stream sequence). Every later writer copies the normalized values forward.
 */
export function normalizeRecord(record: JobRecord, revision: number): JobRecord {
  if (record.createSeq !== undefined && record.queueSeq !== undefined) return record;
  return {
    ...record,
    createSeq: record.createSeq ?? revision,
    queueSeq: record.queueSeq ?? revision,
  };
}

/** The deterministic Standard Webhooks id of an event: the same on every retry and replay. */
export function webhookId(jobId: string, generation: number, sequence: number): string {
  return `msg_${jobId}_${generation}_${sequence}`;
}

/** The de-duplication id of a record revision in the jobs stream. */
export function revisionMsgId(jobId: string, generation: number, sequence: number): string {
  return `${jobId}.${generation}.${sequence}`;
}
