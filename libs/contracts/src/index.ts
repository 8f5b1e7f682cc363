export {
  SUBJECT_TOKEN,
  NO_CALLBACK_JOB_ID,
  isNoCallbackJobId,
  assertToken,
  STREAMS,
  BUCKETS,
  CONSUMERS,
  SUBJECTS,
  SCHEDULER_RPC_OPS,
  NOTIFIER_RPC_OPS,
  HEADERS,
  CONFIG_KEYS,
  LEADER_KEY,
} from './names';
export type { SchedulerRpcOp, NotifierRpcOp } from './names';
export {
  PRIORITIES,
  priorityLevel,
  JOB_STATUSES,
  TERMINAL_STATUSES,
  MAX_DEPENDS_ON,
  isTerminal,
  PUBLIC_EVENT_TYPES,
  INTERNAL_EVENT_TYPES,
  isPublicEvent,
  ERROR_CODES,
  normalizeRecord,
  webhookId,
  revisionMsgId,
  expandEvent,
  expandStored,
} from './job';
export type {
  Priority,
  JobStatus,
  PublicEventType,
  InternalEventType,
  JobEventType,
  ErrorCode,
  JobError,
  GpuRequest,
  JobOutput,
  JobProgress,
  JobRecord,
  JobEvent,
  CoalescedStart,
  StoredJob,
} from './job';
export {
  TransitionRefused,
  newJob,
  assertOwner,
  startAttempt,
  startAndEnd,
  reportProgress,
  completeAttempt,
  failAttempt,
  workerLost,
  cancelAttempt,
  requestCancel,
  handBack,
  requeueAfterDelay,
  enqueueDue,
  releaseWaiting,
  dependencyFailed,
  adminRetry,
  reprioritize,
  toEvent,
  jobError,
} from './job-machine';
export type { Transition, TransitionRefusal, AttemptOwner, NewJobSpec } from './job-machine';
export { nextRetryDelayMs, withJitter } from './retry-policy';
export {
  QUEUE_CONFIG_BOUNDS,
  INITIAL_QUEUE_CONFIG,
  InvalidQueueConfigError,
  parseQueueConfigRecord,
  parseQueueConfigUpdate,
  queueConfigUpdateProblems,
} from './queue-config';
export { toJobView } from './job-view';
export { SCHEDULE_OVERLAPS, toScheduleView, scheduleKey, scheduleJobId, scheduleRecordGuard } from './schedule';
export type {
  ScheduleOverlap,
  ScheduleJobSpec,
  ScheduleRecord,
  ScheduleRequest,
  ScheduleView,
  SchedulePage,
} from './schedule';
export { cronProblem, isTimeZone, nextDueAfter, latestDueAtOrBefore, dueNow } from './schedule-cron';
export type { JobView, ViewExtras } from './job-view';
export type * from './messages';
export { DISPATCH_BATCH_LIMIT, dispatchAttempts } from './dispatch';
export {
  ms,
  DEFAULT_TOPOLOGY,
  topologyFor,
  tenantDeliveriesConsumer,
  streamDeclarations,
  consumerDeclarations,
  workerConsumer,
  demandConsumer,
  bucketDeclarations,
} from './topology';
export type { StreamDeclaration, ConsumerDeclaration, BucketDeclaration, TopologyOptions } from './topology';
export { newId, newJobId, newWorkerId, randomToken } from './ids';
export type { FieldError, JobTypeDefinition } from './job-types/job-type';
export { isPlainObject } from './job-types/job-type';
export { noopJobType, NOOP_MAX_DURATION_MS } from './job-types/noop';
export type { NoopInput } from './job-types/noop';
export {
  ffmpegJobType,
  validateFfmpegInput,
  isUrlInput,
  SAFE_FILE_NAME,
  OUTPUT_EXTENSIONS,
  tokenizeFfmpegArgs,
} from './job-types/ffmpeg';
export type { FfmpegInput, FfmpegToken } from './job-types/ffmpeg';
export { CatalogError, parseCatalog, loadCatalog, renderTemplate } from './job-types/catalog';
export type { CatalogEntry, CatalogFile, CatalogJobType, RenderContext } from './job-types/catalog';
export { JobTypeRegistry } from './job-types/registry';
export {
  BATCH_REF,
  isParentOutputUrl,
  parseParentOutput,
  formatParentOutput,
  resolveBatchRefs,
} from './job-types/parent-output';
export type { ParentOutputRef } from './job-types/parent-output';
export { systemClock } from './clock';
export type { Clock } from './clock';
export { isPrivateAddress, isMetadataHost, isMetadataAddress, embeddedIpv4 } from './net-policy';
export { normalizeS3Url, S3InputPolicy } from './s3-input';
export type { NormalizedS3Url, JobTenantLookup } from './s3-input';
export type {
  JobRequest,
  BatchRequest,
  BatchSubmitted,
  BatchStatusView,
  JobPage,
  JobListQuery,
  FailedWebhookPage,
  QueueConfigRequest,
  Whoami,
  ProblemDetails,
  JobEventMessage,
} from './api';
export {
  PayloadError,
  str,
  num,
  int,
  bool,
  anyJson,
  literal,
  oneOf,
  optional,
  nullable,
  arrayOf,
  recordOf,
  tuple,
  object,
  tagged,
  check,
} from './guards';
export type { Guard, Shape } from './guards';
export {
  defineChannel,
  defineRpc,
  defineAddressedRpc,
  CHANNELS,
  SCHEDULER_RPC,
  NOTIFIER_RPC,
  WORKER_RPC,
} from './channels';
export type {
  Channel,
  ChannelDefinition,
  ChannelTransport,
  Rpc,
  AddressedRpc,
  RpcDefinition,
  NoRequest,
} from './channels';
