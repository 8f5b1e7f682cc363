/**
 * One guard per payload of {@link ./messages} and the job record, typed by its interface (the compiler insists that
 * every required field is checked). Used by the channel and RPC declarations in {@link ./channels}.
 */
import { QUEUE_CONFIG_BOUNDS } from './queue-config';
import {
  anyJson,
  arrayOf,
  bool,
  int,
  literal,
  nullable,
  num,
  object,
  oneOf,
  optional,
  recordOf,
  str,
  tagged,
  tuple,
  PayloadError,
  type Guard,
} from './guards';
import {
  ERROR_CODES,
  INTERNAL_EVENT_TYPES,
  JOB_STATUSES,
  PRIORITIES,
  PUBLIC_EVENT_TYPES,
  type CoalescedStart,
  type GpuRequest,
  type JobError,
  type JobEvent,
  type JobOutput,
  type JobProgress,
  type JobRecord,
} from './job';
import type { NewJobSpec } from './job-machine';
import type {
  BatchManifest,
  BatchPart,
  ConcurrencyStats,
  DispatchAttempt,
  DispatchBatch,
  DispatchMessage,
  DispatchPayload,
  DispatchReleased,
  FailedListReply,
  FailedListRequest,
  FailedWebhook,
  FailedWebhookView,
  GpuCordonControl,
  GpuStatus,
  GpuView,
  IdempotencyEntry,
  ListEntry,
  ListHead,
  ListPage,
  ListSyncReply,
  TenantView,
  TenantsRequest,
  PositionsReply,
  PositionsRequest,
  PriorityDepth,
  ProgressMark,
  QueueConfigRecord,
  QueueConfigUpdate,
  QueueMetrics,
  PoolQueueState,
  QueueState,
  QueueStatsBroadcast,
  RateLimitWindow,
  ReplayRequest,
  WebhookBody,
  WebhookDelivery,
  WorkerCancel,
  WorkerControl,
  WorkerHeartbeat,
  WorkerView,
} from './messages';
import { DISPATCH_BATCH_LIMIT } from './dispatch';

const priority = oneOf(PRIORITIES);
const jobStatus = oneOf(JOB_STATUSES);
const publicEventType = oneOf(PUBLIC_EVENT_TYPES);
const eventType = oneOf([...PUBLIC_EVENT_TYPES, ...INTERNAL_EVENT_TYPES]);
const jsonObject = recordOf(anyJson);
const v1 = literal(1);

const gpuRequest = object<GpuRequest>({ count: int, memoryMb: num, declaredMemoryMb: optional(num) });
const jobOutput = object<JobOutput>({ name: str, url: str, sizeBytes: num });
const jobProgress = object<JobProgress>({ percent: num, stage: optional(str) });
const jobError = object<JobError>({ code: oneOf(ERROR_CODES), message: str, retryable: bool, detail: optional(str) });

const specFields = {
  id: str,
  tenant: str,
  type: str,
  input: jsonObject,
  priority,
  pool: str,
  timeoutSeconds: num,
  maxAttempts: int,
  retryDelaysMs: arrayOf(num),
  metadata: jsonObject,
  callbackUrl: optional(str),
  callbackToken: optional(str),
  gpu: optional(gpuRequest),
  upload: optional(object<{ url: string }>({ url: str })),
  batchId: optional(str),
  scheduleId: optional(str),
  traceparent: optional(str),
  tracestate: optional(str),
};

export const newJobSpec: Guard<NewJobSpec> = object<NewJobSpec>(specFields);

export const jobRecord: Guard<JobRecord> = object<JobRecord>({
  ...specFields,
  status: jobStatus,
  generation: int,
  attempts: int,
  sequence: int,
  createSeq: optional(int),
  queueSeq: optional(int),
  enqueuedAt: str,
  createdAt: str,
  updatedAt: str,
  startedAt: optional(str),
  finishedAt: optional(str),
  retryAt: optional(str),
  workerId: optional(str),
  gpus: optional(arrayOf(str)),
  gpuIndices: optional(arrayOf(int)),
  progress: optional(jobProgress),
  outputs: optional(arrayOf(jobOutput)),
  error: optional(jobError),
  cancelRequestedAt: optional(str),
});

const coalescedStart = object<CoalescedStart>({
  sequence: int,
  timestamp: str,
  workerId: str,
  gpus: optional(arrayOf(str)),
  gpuIndices: optional(arrayOf(int)),
  gpu: optional(nullable(gpuRequest)),
});

export const jobEvent: Guard<JobEvent> = object<JobEvent>({
  type: eventType,
  timestamp: str,
  sequence: int,
  generation: int,
  job: jobRecord,
  started: optional(coalescedStart),
});

const dispatchAttemptFields = {
  jobId: str,
  generation: int,
  attempt: int,
  gpuIndices: arrayOf(int),
  memoryMb: num,
  record: optional(jobRecord),
  revision: optional(int),
};
const dispatchEnvelopeFields = { v: v1, workerId: str, epoch: int, dispatchedAt: str };

export const dispatchMessage: Guard<DispatchMessage> = object<DispatchMessage>({
  ...dispatchEnvelopeFields,
  ...dispatchAttemptFields,
});

const dispatchAttempt = object<DispatchAttempt>(dispatchAttemptFields);
const dispatchBatchAttempts: Guard<DispatchAttempt[]> = (v, p) => {
  const list = arrayOf(dispatchAttempt)(v, p);
  if (list.length === 0 || list.length > DISPATCH_BATCH_LIMIT)
    throw new PayloadError(p, `1 to ${DISPATCH_BATCH_LIMIT} attempts`);
  return list;
};

export const dispatchBatch: Guard<DispatchBatch> = object<DispatchBatch>({
  ...dispatchEnvelopeFields,
  attempts: dispatchBatchAttempts,
});

/** A dispatch in either form: a message with `attempts` is a batch, any other the single-attempt form. */
export const dispatchPayload: Guard<DispatchPayload> = (v, p) =>
  v !== null && typeof v === 'object' && 'attempts' in v ? dispatchBatch(v, p) : dispatchMessage(v, p);

export const dispatchReleased: Guard<DispatchReleased> = object<DispatchReleased>({
  v: v1,
  jobId: str,
  generation: int,
  attempt: int,
  workerId: str,
  reason: str,
});

const workerCancel = object<WorkerCancel>({ v: v1, type: literal('cancel'), jobId: str, generation: int });
export const gpuCordonControl: Guard<GpuCordonControl> = object<GpuCordonControl>({
  v: v1,
  type: oneOf(['cordon', 'uncordon']),
  uuid: str,
  reason: optional(str),
});
export const workerControl: Guard<WorkerControl> = tagged<WorkerControl, 'type'>('type', {
  cancel: workerCancel,
  cordon: gpuCordonControl,
  uncordon: gpuCordonControl,
});

const nullableNum = nullable(num);
export const gpuStatus: Guard<GpuStatus> = object<GpuStatus>({
  index: int,
  uuid: str,
  name: str,
  memoryTotalMb: num,
  mig: optional(bool),
  parentUuid: optional(str),
  memoryUsedMb: optional(nullableNum),
  memoryFreeMb: optional(nullableNum),
  utilizationPercent: optional(nullableNum),
  temperatureC: optional(nullableNum),
  eccErrors: optional(nullableNum),
  xidErrors: optional(num),
  sampledAt: optional(nullable(str)),
  health: optional(oneOf(['ok', 'cordoned'])),
  cordonReason: optional(str),
});

const gpuView = object<GpuView>({
  index: int,
  uuid: str,
  name: str,
  memoryTotalMb: num,
  mig: bool,
  parentUuid: optional(str),
  memoryUsedMb: nullableNum,
  memoryFreeMb: nullableNum,
  utilizationPercent: nullableNum,
  temperatureC: nullableNum,
  eccErrors: nullableNum,
  xidErrors: num,
  sampledAt: nullable(str),
  health: oneOf(['ok', 'cordoned']),
  cordonReason: optional(str),
});

export const workerHeartbeat: Guard<WorkerHeartbeat> = object<WorkerHeartbeat>({
  v: v1,
  id: str,
  pool: str,
  slots: int,
  slotsPerGpu: int,
  gpus: arrayOf(gpuStatus),
  runningJobs: arrayOf(str),
  inflight: arrayOf(object<{ jobId: string; attempt: number }>({ jobId: str, attempt: int })),
  jobTypes: arrayOf(str),
  learnedPeaksMb: optional(recordOf(num)),
  dispatchBatchMax: optional(int),
  dispatchRecordHint: optional(bool),
  draining: bool,
  startedAt: str,
  heartbeatAt: str,
  version: str,
});

const priorityDepth = object<PriorityDepth>({ urgent: int, high: int, normal: int, low: int, total: int });
const queueStateFields = {
  paused: bool,
  draining: bool,
  depth: priorityDepth,
  running: int,
  retrying: int,
  maxConcurrentJobs: int,
  availableTokens: int,
  maxQueueSize: int,
  workers: int,
  scheduled: optional(int),
  waiting: optional(int),
  pools: optional(
    arrayOf(object<PoolQueueState>({ pool: str, depth: priorityDepth, scheduled: int, waiting: optional(int) })),
  ),
};
export const queueState: Guard<QueueState> = object<QueueState>(queueStateFields);

export const queueStatsBroadcast: Guard<QueueStatsBroadcast> = object<QueueStatsBroadcast>({
  ...queueStateFields,
  v: v1,
  epoch: int,
  at: str,
  tenants: optional(recordOf(int)),
  appliedSeq: optional(int),
});

export const queueMetrics: Guard<QueueMetrics> = object<QueueMetrics>({
  queueLength: num,
  activeJobs: num,
  activeWorkers: num,
  utilizationPercent: num,
  queueUtilizationPercent: num,
  performance: object<QueueMetrics['performance']>({
    totalJobsProcessed: num,
    totalJobsFailed: num,
    totalJobsRetried: num,
    averageProcessingSeconds: num,
    averageWaitSeconds: num,
    uptimeSeconds: num,
  }),
});

export const concurrencyStats: Guard<ConcurrencyStats> = object<ConcurrencyStats>({
  maxParallelJobs: int,
  queueSize: int,
  activeJobs: int,
  availableTokens: int,
  workers: int,
});

export const workerViews: Guard<WorkerView[]> = arrayOf(
  object<WorkerView>({
    id: str,
    pool: str,
    slots: int,
    busy: int,
    gpus: arrayOf(gpuView),
    runningJobs: arrayOf(str),
    lastHeartbeatAt: str,
    draining: bool,
  }),
);

export const queueConfigRecord: Guard<QueueConfigRecord> = object<QueueConfigRecord>({
  paused: bool,
  draining: bool,
  maxConcurrentJobs: optional(int),
  maxQueueSize: optional(int),
  updatedAt: str,
});

function bounded(field: keyof typeof QUEUE_CONFIG_BOUNDS): Guard<number | undefined> {
  const { min, max } = QUEUE_CONFIG_BOUNDS[field];
  return optional((v, p) => {
    const n = int(v, p);
    if (n < min || n > max) throw new PayloadError(p, `an integer from ${min} to ${max}`);
    return n;
  });
}

export const queueConfigUpdate: Guard<QueueConfigUpdate> = object<QueueConfigUpdate>({
  maxConcurrentJobs: bounded('maxConcurrentJobs'),
  maxQueueSize: bounded('maxQueueSize'),
});

const positionEntry = object<PositionsRequest['ids'][number]>({
  id: str,
  pool: str,
  priority,
  tenant: str,
  queueSeq: int,
  enqueuedAt: str,
});
export const positionsRequest: Guard<PositionsRequest> = object<PositionsRequest>({ ids: arrayOf(positionEntry) });
export const positionsReply: Guard<PositionsReply> = object<PositionsReply>({
  positions: recordOf(
    optional(
      object<{ queuePosition: number; estimatedWaitSeconds: number | null }>({
        queuePosition: int,
        estimatedWaitSeconds: nullableNum,
      }),
    ),
  ),
});

export const tenantsRequest: Guard<TenantsRequest> = object<TenantsRequest>({ tenant: optional(str) });
export const tenantViews: Guard<TenantView[]> = arrayOf(
  object<TenantView>({
    tenant: str,
    weight: num,
    queued: int,
    running: int,
    usedSlotSeconds: num,
    sharePercent: num,
    entitledPercent: num,
  }),
);

export const listSyncReply: Guard<ListSyncReply> = object<ListSyncReply>({ seq: int });

const listEntry: Guard<ListEntry> = tuple<ListEntry>(int, str, jobStatus, str, priority, num);
export const listPage: Guard<ListPage> = object<ListPage>({
  v: v1,
  tenant: str,
  bucket: int,
  prev: nullable(int),
  entries: arrayOf(listEntry),
});
export const listHead: Guard<ListHead> = object<ListHead>({ v: v1, bucket: int });

export const batchManifest: Guard<BatchManifest> = object<BatchManifest>({
  v: v1,
  id: str,
  tenant: str,
  jobIds: arrayOf(str),
  createdAt: str,
  state: optional(oneOf(['accepted', 'committed'])),
  specs: optional(arrayOf(newJobSpec)),
  parts: optional(int),
  partSeqs: optional(arrayOf(int)),
  attempt: optional(str),
});
export const batchPart: Guard<BatchPart> = object<BatchPart>({
  v: v1,
  batchId: str,
  part: int,
  specs: arrayOf(newJobSpec),
  attempt: optional(str),
});

export const idempotencyEntry: Guard<IdempotencyEntry> = object<IdempotencyEntry>({
  v: v1,
  kind: oneOf(['job', 'batch']),
  id: str,
  bodyHash: str,
  createdAt: str,
});
export const rateLimitWindow: Guard<RateLimitWindow> = object<RateLimitWindow>({ v: v1, reserved: num });

const webhookBody = object<WebhookBody>({
  type: publicEventType,
  timestamp: str,
  sequence: int,
  generation: int,
  data: anyJson,
});
export const webhookDelivery: Guard<WebhookDelivery> = object<WebhookDelivery>({
  v: v1,
  webhookId: str,
  jobId: str,
  tenant: str,
  type: publicEventType,
  url: str,
  callbackToken: optional(str),
  attempts: int,
  notBefore: num,
  body: webhookBody,
  lastStatus: optional(int),
  lastError: optional(str),
  firstAttemptAt: optional(str),
  replayOf: optional(str),
});
export const failedWebhook: Guard<FailedWebhook> = object<FailedWebhook>({
  v: v1,
  delivery: webhookDelivery,
  attempts: int,
  lastStatus: optional(int),
  lastError: optional(str),
  failedAt: str,
});
export const failedWebhookView: Guard<FailedWebhookView> = object<FailedWebhookView>({
  id: str,
  webhookId: str,
  jobId: str,
  type: publicEventType,
  url: str,
  attempts: int,
  lastStatus: nullable(int),
  lastError: nullable(str),
  failedAt: str,
});
export const failedListRequest: Guard<FailedListRequest> = object<FailedListRequest>({
  // The page bounds are the notifier's (it answers a 400 naming them).
  limit: int,
  cursor: optional(str),
  tenant: optional(str),
});
export const failedListReply: Guard<FailedListReply> = object<FailedListReply>({
  items: arrayOf(failedWebhookView),
  nextCursor: nullable(str),
});
export const replayRequest: Guard<ReplayRequest> = object<ReplayRequest>({ id: str });

export const progressMark: Guard<ProgressMark> = object<ProgressMark>({ at: num, eventAt: num, event: str });
