import { commonSpec, fairShareSpec, int, livenessSpec, optionalInt, port, s3Spec, type ConfigOf } from '@gantry/config';

export const schedulerSpec = {
  ...commonSpec,
  ...livenessSpec,
  ...fairShareSpec,
  // Retention deletes the outputs of expired jobs.
  ...s3Spec,
  RETENTION_SWEEP_INTERVAL_MS: int({
    default: 60_000,
    min: 1_000,
    max: 86_400_000,
    doc: 'how often the leader removes terminal jobs older than JOB_RETENTION_HOURS',
  }),
  SCHEDULER_HTTP_PORT: port({ default: 8081, allowZero: true, doc: '/healthz, /readyz and /metrics' }),
  MAX_CONCURRENT_JOBS: int({
    default: 4,
    min: 0,
    max: 1_000_000,
    aliases: ['PIPELINE_MAX_PARALLEL_JOBS'],
    doc: 'global concurrency tokens (initial value; PUT /v1/queue/config changes it at runtime)',
  }),
  MAX_QUEUE_SIZE: int({
    default: 100_000,
    min: 1,
    max: 100_000_000,
    doc: 'queued jobs beyond this are refused (initial value)',
  }),
  TENANT_MAX_QUEUED_JOBS: optionalInt({
    min: 1,
    max: 100_000_000,
    doc: 'queued + retrying + scheduled jobs one tenant may hold (unset: no cap); a cron due time beyond it creates no job',
  }),
  TENANT_MAX_CONCURRENT_JOBS: optionalInt({ min: 1, max: 1_000_000, doc: 'running jobs one tenant may hold at once' }),
  GPU_MEMORY_MARGIN_MB: int({
    default: 512,
    min: 0,
    max: 1_048_576,
    doc: "memory kept free on a GPU beyond jobs' declared memory, judged on the worker's live free memory",
  }),
  AGING_SECONDS: int({
    default: 0,
    min: 0,
    max: 30 * 86_400,
    doc: 'promote a queued job one level per this many seconds (0 = off)',
  }),
  DEMAND_GAUGE_CAP: int({
    default: 1_000,
    min: 1,
    max: 100_000,
    doc: 'highest value of the KEDA demand gauge (pending count of consumer demand_<pool>)',
  }),
  TAKEOVER_SYNC_TIMEOUT_MS: int({
    default: 30_000,
    min: 100,
    max: 3_600_000,
    doc: 'how long a new leader waits for its projection to reach the end of the jobs stream before it steps down',
  }),
  SCHEDULER_RECORD_CACHE_BYTES: int({
    default: 16 * 1024 * 1024,
    min: 0,
    max: 4 * 1024 * 1024 * 1024,
    doc: "byte budget of the dispatcher's cache of recently queued job records (estimated heap; 0 = no cache)",
  }),
  DISPATCH_BATCH_MAX: int({
    default: 16,
    min: 1,
    max: 32,
    doc: 'most attempts one dispatch message carries for one worker, and never more than that worker advertises in its heartbeat (dispatchBatchMax; a worker of an older release advertises nothing and gets one message per attempt, so any upgrade order is safe); 1 = one message per attempt everywhere',
  }),
  STATS_INTERVAL_MS: int({
    default: 500,
    min: 50,
    max: 60_000,
    doc: 'how often the leader broadcasts queue statistics',
  }),
};

export type SchedulerConfig = ConfigOf<typeof schedulerSpec>;
