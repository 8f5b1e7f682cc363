/** Payloads of every message that is not a job record revision. All are JSON; every one carries W3C trace headers. */
import type { JobRecord, JobStatus, PublicEventType, Priority } from './job';
import type { NewJobSpec } from './job-machine';

/** Leader → one worker (`gantry.v1.dispatch.<workerId>`): run this attempt on these GPUs. A hint checked against the record. */
/** One attempt a dispatch gives a worker: the job, the generation and attempt to start, and its resources. */
export interface DispatchAttempt {
  jobId: string;
  generation: number;
  /** The attempt number to start (the record's `attempts` + 1). */
  attempt: number;
  /** Indices (on that worker) of the GPUs given to the job; empty for CPU-only work. */
  gpuIndices: number[];
  /** Memory reserved on each of those GPUs. */
  memoryMb: number;
  /**
   * The record as the leader read it just before dispatching, and its revision: the worker checks its start against it
   * and tries its first compare-and-set on it, reading only if someone wrote in between (one read less per job;
   * docs/architecture.md, "Trusted dispatch records"). Absent for a worker whose heartbeat says it does not use them
   * (`WorkerHeartbeat.dispatchRecordHint: false`).
   */
  record?: JobRecord;
  revision?: number;
}

/** The fields a dispatch message names once, whatever the number of attempts it carries. */
export interface DispatchEnvelope {
  v: 1;
  workerId: string;
  /** The leader's epoch (its lease revision). */
  epoch: number;
  dispatchedAt: string;
}

/** Leader → worker (dispatch stream): one attempt — the only form before batched dispatch, and still a batch of one. */
export interface DispatchMessage extends DispatchAttempt, DispatchEnvelope {}

/**
 * Leader → worker (dispatch stream): several attempts for one worker in one message (docs/architecture.md, "Batched
 * dispatch"). 1 to `DISPATCH_BATCH_LIMIT` (32) attempts; the worker acks the message once every attempt in it settled.
 */
export interface DispatchBatch extends DispatchEnvelope {
  attempts: DispatchAttempt[];
}

/** What the dispatch stream carries: the single-attempt form or a batch. */
export type DispatchPayload = DispatchMessage | DispatchBatch;

/**
 * A schedulable GPU as discovered: a whole GPU, or a MIG instance (`mig: true`, `uuid` `MIG-…`, its own memory). `index`
 * is unique on its worker: a whole GPU keeps nvidia-smi's index; MIG device `d` of GPU `g` gets `100 × (g + 1) + d`.
 */
export interface GpuInfo {
  index: number;
  uuid: string;
  name: string;
  memoryTotalMb: number;
  /** A MIG instance (absent = a whole GPU). */
  mig?: boolean;
  /** The physical GPU of a MIG instance. */
  parentUuid?: string;
}

/** Live figures of one GPU from the worker's last sample; `null` where the driver gave none ([N/A], MIG, no sample). */
export interface GpuTelemetry {
  memoryUsedMb: number | null;
  memoryFreeMb: number | null;
  utilizationPercent: number | null;
  temperatureC: number | null;
  /** Uncorrected volatile ECC errors since the driver loaded (null where ECC is off or unsupported). */
  eccErrors: number | null;
  /** XID errors (any code) the worker read from the kernel log since it started. */
  xidErrors: number;
  sampledAt: string | null;
}

export type GpuHealth = 'ok' | 'cordoned';

/** A GPU as a worker reports it in its heartbeats (since v1.1: live figures and health; older workers send GpuInfo). */
export interface GpuStatus extends GpuInfo, Partial<GpuTelemetry> {
  health?: GpuHealth;
  cordonReason?: string;
}

/** A GPU on `GET /v1/workers` (v1.1). */
export interface GpuView extends GpuInfo, GpuTelemetry {
  mig: boolean;
  health: GpuHealth;
  cordonReason?: string;
}

/** A worker's registration and heartbeat, the value of its key in the workers bucket. */
export interface WorkerHeartbeat {
  v: 1;
  id: string;
  pool: string;
  slots: number;
  /** Jobs one GPU may run at once (SLOTS_PER_GPU). */
  slotsPerGpu: number;
  gpus: GpuStatus[];
  /** Jobs started on this worker and not finished. */
  runningJobs: string[];
  /** Dispatches received and not yet acked (started or about to start). */
  inflight: { jobId: string; attempt: number }[];
  /** Job types this worker can run. */
  jobTypes: string[];
  /**
   * Since v1.1: per job type, the largest GPU memory (MiB, per GPU) its recent attempts on this worker were measured
   * to hold — the scheduler's default request for jobs of the type that declare none.
   */
  learnedPeaksMb?: Record<string, number>;
  /**
   * Since v1.1: the most attempts this worker accepts in one dispatch message (docs/architecture.md, "Batched
   * dispatch"). Absent = 1: a worker of an older release, which reads only the single-attempt form. The scheduler
   * sends it at most min(DISPATCH_BATCH_MAX, this) attempts per message.
   */
  dispatchBatchMax?: number;
  /**
   * Since v1.1: whether this worker uses the record a dispatch carries (`DispatchAttempt.record`, its start's
   * compare-and-set hint). False for a worker that reads the record from the stream leader before every start
   * (WORKER_STARTED_REVISION_DELAY_MS > 0, the default): the scheduler sends it dispatches without `record` and
   * `revision`. Absent = true: a worker of an older release gets the record, as it always did (docs/architecture.md,
   * "Dispatch record hint").
   */
  dispatchRecordHint?: boolean;
  draining: boolean;
  startedAt: string;
  heartbeatAt: string;
  version: string;
}

/** Worker → leader, core NATS: a dispatch was dropped without starting (stale, cancelled, or refused). */
export interface DispatchReleased {
  v: 1;
  jobId: string;
  generation: number;
  attempt: number;
  workerId: string;
  reason: string;
}

/** Gateway → worker, core NATS: a running job was cancelled; kill it now (the worker also polls). */
export type WorkerControl = WorkerCancel | GpuCordonControl;

export interface WorkerCancel {
  v: 1;
  type: 'cancel';
  jobId: string;
  generation: number;
}

/**
 * Gateway → worker, core NATS request/reply: cordon or uncordon one of its GPUs (admin route). The worker answers an
 * {@link RpcReply} of the GPU's {@link GpuView} (404 for a GPU it does not have).
 */
export interface GpuCordonControl {
  v: 1;
  type: 'cordon' | 'uncordon';
  uuid: string;
  reason?: string;
}

export interface PriorityDepth {
  urgent: number;
  high: number;
  normal: number;
  low: number;
  total: number;
}

/** `GET /v1/queue`. */
export interface QueueState {
  paused: boolean;
  draining: boolean;
  depth: PriorityDepth;
  running: number;
  retrying: number;
  maxConcurrentJobs: number;
  availableTokens: number;
  maxQueueSize: number;
  workers: number;
  /**
   * Jobs `scheduled` now (a `runAt` / `delaySeconds` not reached yet): not in `depth`, holding no token. A Gantry
   * extension (docs/api.md); absent from schedulers older than v1.1.
   */
  scheduled?: number;
  /**
   * Jobs `waiting` for their parents (`dependsOn`): not in `depth`, holding no token. A Gantry extension (docs/api.md);
   * absent from schedulers older than v1.1.
   */
  waiting?: number;
  /**
   * Queued jobs per pool and priority (dispatched-not-started included), with each pool's scheduled jobs: every pool a
   * live worker serves or a job names, sorted by name. O(pools) from the leader's counters. A Gantry extension
   * (docs/api.md); absent from schedulers older than v1.1.
   */
  pools?: PoolQueueState[];
}

/** One pool on `GET /v1/queue` (`pools`). */
export interface PoolQueueState {
  pool: string;
  depth: PriorityDepth;
  scheduled: number;
  /** The pool's `waiting` jobs. Absent from schedulers older than this field. */
  waiting?: number;
}

/** Broadcast by the leader about twice a second (core NATS); gateways use it for backpressure without a round trip. */
export interface QueueStatsBroadcast extends QueueState {
  v: 1;
  epoch: number;
  at: string;
  /**
   * Queued (dispatched-not-started included) + retrying jobs per tenant, tenants with none left out; gateways enforce
   * TENANT_MAX_QUEUED_JOBS with it. Absent from schedulers older than v1.1.
   */
  tenants?: Record<string, number>;
  /** Highest jobs-stream sequence the counts above include (gateways drop their own accepts up to it). */
  appliedSeq?: number;
}

/** `GET /v1/queue/metrics`. */
export interface QueueMetrics {
  queueLength: number;
  activeJobs: number;
  activeWorkers: number;
  utilizationPercent: number;
  queueUtilizationPercent: number;
  performance: {
    totalJobsProcessed: number;
    totalJobsFailed: number;
    totalJobsRetried: number;
    averageProcessingSeconds: number;
    averageWaitSeconds: number;
    uptimeSeconds: number;
  };
}

/** `GET /v1/concurrency/stats`. */
export interface ConcurrencyStats {
  maxParallelJobs: number;
  queueSize: number;
  activeJobs: number;
  availableTokens: number;
  workers: number;
}

/** `GET /v1/tenants` item and `GET /v1/tenants/me` (since v1.1). */
export interface TenantView {
  tenant: string;
  weight: number;
  /** Jobs `queued` now (dispatched-not-started included). */
  queued: number;
  /** Jobs running now (holding a token on a worker). */
  running: number;
  /** GPU-slot-seconds decayed with half-life FAIR_SHARE_HALF_LIFE_SECONDS, running attempts included up to now. */
  usedSlotSeconds: number;
  /** Its part of every tenant's usedSlotSeconds, in percent. */
  sharePercent: number;
  /** weight / the weights of every tenant with queued or running work now, in percent (0 without any). */
  entitledPercent: number;
}

/** Payload of the scheduler's `tenants` RPC: one tenant, or every tenant with work, usage or a configured weight. */
export interface TenantsRequest {
  tenant?: string;
}

/** `GET /v1/workers` item. */
export interface WorkerView {
  id: string;
  pool: string;
  slots: number;
  busy: number;
  gpus: GpuView[];
  runningJobs: string[];
  lastHeartbeatAt: string;
  draining: boolean;
}

/** Runtime queue configuration kept in the config bucket (survives restarts; env values are the initial ones). */
export interface QueueConfigRecord {
  paused: boolean;
  draining: boolean;
  maxConcurrentJobs?: number;
  maxQueueSize?: number;
  updatedAt: string;
}

export interface PositionsRequest {
  ids: { id: string; pool: string; priority: Priority; tenant: string; queueSeq: number; enqueuedAt: string }[];
}
export interface PositionsReply {
  positions: Record<string, { queuePosition: number; estimatedWaitSeconds: number | null } | undefined>;
}

/**
 * Answer of the `list-sync` RPC: the listing index holds every job revision stored before the request (up to this
 * stream sequence), so a `GET /v1/jobs` that reads the index after it sees its own writes.
 */
export interface ListSyncReply {
  seq: number;
}

export interface QueueConfigUpdate {
  maxConcurrentJobs?: number;
  maxQueueSize?: number;
}

/** The reply envelope of every request/reply call. */
export type RpcReply<T> =
  { ok: true; data: T } | { ok: false; error: { status: number; title: string; detail: string } };

/**
 * Manifest of a batch submit (`gantry.v1.batch.<id>`). The gateway writes it with `state: 'accepted'` and the job specs
 * (inline, or in `parts` written just before it) **before** any job record, so a gateway that dies half-way leaves a
 * batch that another gateway finishes (the repair consumer); a second message with `state: 'committed'` (no specs)
 * marks that every record exists. The last message of the subject is therefore always a manifest.
 */
export interface BatchManifest {
  v: 1;
  id: string;
  tenant: string;
  jobIds: string[];
  createdAt: string;
  state?: 'accepted' | 'committed';
  /** The specs of a small batch, in job order. */
  specs?: NewJobSpec[];
  /** How many {@link BatchPart}s hold the specs of a large batch. */
  parts?: number;
  /**
   * The stream sequences of this manifest's own parts, in order (since v1.1). Two submits of one batch id (a retry
   * with the same Idempotency-Key) each write their own parts; the winning manifest names exactly its own, so parts
   * and manifest always agree. Manifests without it are read by subject (last part per subject).
   */
  partSeqs?: number[];
  /** The submit attempt that wrote the manifest and its parts (random). */
  attempt?: string;
}

/** Part of a large batch's specs (`gantry.v1.batch_part.<batchId>.<part>`), in job order across parts. */
export interface BatchPart {
  v: 1;
  batchId: string;
  part: number;
  specs: NewJobSpec[];
  /** The submit attempt that wrote it (the manifest's `attempt`). */
  attempt?: string;
}

/** Value of an `Idempotency-Key` entry (bucket `gantry_idempotency_v1`, 24 h). */
export interface IdempotencyEntry {
  v: 1;
  /** What the key created: a job (`POST /v1/jobs`) or a batch (`POST /v1/batches`). */
  kind: 'job' | 'batch';
  /** The id it created (reserved before the write, so a retry after a crash creates the same one). */
  id: string;
  /** SHA-256 of the canonical JSON of the request body. */
  bodyHash: string;
  createdAt: string;
}

/** Value of a rate-limit window (bucket `gantry_ratelimit_v1`, key `<subject>.<window>`): quota reserved by gateways. */
export interface RateLimitWindow {
  v: 1;
  reserved: number;
}

/** One entry of a listing page: [createSeq, id, status, type, priority, createdAtMs]. */
export type ListEntry = [number, string, JobStatus, string, Priority, number];

/** A page of the newest-first listing index (`gantry.v1.list.<tenant>.p<bucket>`). */
export interface ListPage {
  v: 1;
  tenant: string;
  bucket: number;
  /** The tenant's previous non-empty bucket, or null for its first. */
  prev: number | null;
  /** Newest first (descending createSeq). */
  entries: ListEntry[];
}

export interface ListHead {
  v: 1;
  bucket: number;
}

/** A pending webhook delivery (`gantry.v1.webhook.<endpointHash>`). */
export interface WebhookDelivery {
  v: 1;
  webhookId: string;
  jobId: string;
  tenant: string;
  type: PublicEventType;
  url: string;
  /** Sent as `authorization: Bearer …` when the job has one. */
  callbackToken?: string;
  /** Number of attempts made before this message (0 for the first). */
  attempts: number;
  /** Epoch ms before which the delivery must not be attempted. */
  notBefore: number;
  /** The body as JSON (without presigned URLs, which are filled per attempt). */
  body: WebhookBody;
  lastStatus?: number;
  lastError?: string;
  firstAttemptAt?: string;
  replayOf?: string;
}

export interface WebhookBody {
  type: PublicEventType;
  timestamp: string;
  sequence: number;
  generation: number;
  data: unknown;
}

/** A delivery that exhausted its attempts (`gantry.v1.webhook_dlq.<tenant>`). */
export interface FailedWebhook {
  v: 1;
  delivery: WebhookDelivery;
  attempts: number;
  lastStatus?: number;
  lastError?: string;
  failedAt: string;
}

export interface FailedWebhookView {
  id: string;
  webhookId: string;
  jobId: string;
  type: PublicEventType;
  url: string;
  attempts: number;
  lastStatus: number | null;
  lastError: string | null;
  failedAt: string;
}

export interface FailedListRequest {
  limit: number;
  cursor?: string;
  tenant?: string;
}
export interface FailedListReply {
  items: FailedWebhookView[];
  nextCursor: string | null;
}
export interface ReplayRequest {
  id: string;
}

/** Value of a progress-throttle entry (bucket `gantry_webhook_throttle_v1`, key = job id). */
export interface ProgressMark {
  /** Wall time (epoch ms) the progress webhook was claimed. */
  at: number;
  /** The event's own time (epoch ms). */
  eventAt: number;
  /** `<generation>.<sequence>` of the event that claimed it. */
  event: string;
}
