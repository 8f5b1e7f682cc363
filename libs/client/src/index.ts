/**
 * `@gantry/client`: the typed client of Gantry's HTTP API. See README.md.
 */
export {
  GantryClient,
  JobsApi,
  BatchesApi,
  QueueApi,
  WorkersApi,
  WebhooksApi,
  TenantsApi,
  SchedulesApi,
  TERMINAL_JOB_STATUSES,
  isTerminalStatus,
} from './client.js';
export type { GantryClientOptions, RequestOptions, SubmitOptions, EventsOptions, WaitOptions } from './client.js';
export {
  GantryError,
  GantryApiError,
  GantryNetworkError,
  WaitTimeoutError,
  WebhookVerificationError,
} from './errors.js';
export { verifyWebhook } from './webhooks.js';
export type { WebhookHeaders } from './webhooks.js';
export { readSse } from './sse.js';
export type { SseEvent } from './sse.js';
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
  JobView,
  JobStatus,
  Priority,
  JobOutput,
  JobProgress,
  QueueState,
  PoolQueueState,
  PriorityDepth,
  TenantView,
  ScheduleRequest,
  ScheduleView,
  SchedulePage,
  ScheduleOverlap,
  QueueMetrics,
  ConcurrencyStats,
  WorkerView,
  GpuInfo,
  FailedWebhookView,
} from './contracts.js';
