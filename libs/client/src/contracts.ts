/**
 * The contract types the client speaks, re-exported from `@gantry/contracts` — the very types the gateway validates
 * against, so they cannot drift. Inside the repository this file is a plain re-export. `@gantry/contracts` is a private
 * workspace package, so the packed `@gantry/client` must not name it: `npm pack` runs `scripts/bundle-types.mjs`
 * (prepack), which replaces `dist/contracts.d.ts` with these types inlined from libs/contracts' declarations.
 * Types only: the compiled `contracts.js` is empty and nothing imports it at run time.
 */
export type {
  BatchRequest,
  BatchStatusView,
  BatchSubmitted,
  ConcurrencyStats,
  FailedWebhookPage,
  FailedWebhookView,
  GpuInfo,
  JobEventMessage,
  JobListQuery,
  JobOutput,
  JobPage,
  JobProgress,
  JobRequest,
  JobStatus,
  JobView,
  PoolQueueState,
  Priority,
  PriorityDepth,
  ProblemDetails,
  QueueConfigRequest,
  QueueMetrics,
  QueueState,
  ScheduleOverlap,
  SchedulePage,
  ScheduleRequest,
  ScheduleView,
  TenantView,
  Whoami,
  WorkerView,
} from '@gantry/contracts';
