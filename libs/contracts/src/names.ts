/**
 * Every NATS name Gantry uses: subjects, streams, durable consumers and KV buckets.
 * Apps never spell a subject themselves; they call these builders. Subjects carry the contract version (`v1`):
 * a breaking change to a payload gets a new version and both are served during a rollout.
 */

/** Tokens that may appear inside a subject: job ids, worker ids, tenants, pools. */
export const SUBJECT_TOKEN = /^[A-Za-z0-9_-]{1,64}$/;

export function assertToken(kind: string, value: string): string {
  if (!SUBJECT_TOKEN.test(value)) {
    throw new Error(`${kind} "${value}" must match ${String(SUBJECT_TOKEN)} to be used in a NATS subject`);
  }
  return value;
}

/**
 * The id form of a job that has no callback URL: a ULID in lower case (Crockford base32, so still a ULID, still 26
 * characters and sortable among its kind), with at least one letter so that no upper-case ULID (every id minted before
 * this form existed, and every job with a callback) can read as one. Such a job's revisions live on
 * `gantry.v1.job_nocb.<id>`, which the notifier's intake filter (`gantry.v1.job.*`) does not match: the broker never
 * hands the intake a revision that owes no webhook. The subject follows from the id alone (callbackUrl is immutable),
 * so every reader by id finds the record in one read. docs/architecture.md, "Job subjects".
 *
 * The job a cron schedule creates for one due time has the deterministic id `<schedule id>_<due ms>`
 * (`scheduleJobId`); when the schedule's job has no callback its id is `<schedule id in lower case>_<due ms>`, which
 * this form accepts too (the `_<digits>` suffix; the ULID part still needs a letter).
 */
export const NO_CALLBACK_JOB_ID = /^(?=[0-9a-z]*[a-z])[0-9a-hjkmnp-tv-z]{26}(?:_[0-9]{1,16})?$/;

/** Whether `jobId` is of the no-callback form ({@link NO_CALLBACK_JOB_ID}). */
export function isNoCallbackJobId(jobId: string): boolean {
  return NO_CALLBACK_JOB_ID.test(jobId);
}

export const STREAMS = {
  /** One subject per job; every message is a lifecycle event carrying the whole job record (the record's revisions). */
  jobs: 'GANTRY_JOBS_V1',
  /** Worker-addressed dispatches; a message lives until its worker has finished the attempt (WorkQueue). */
  dispatch: 'GANTRY_DISPATCH_V1',
  /** Batch manifests (the ids a batch submit created), read by GET /v1/batches/{id}. */
  batches: 'GANTRY_BATCHES_V1',
  /** Newest-first listing pages per tenant, written by the leading scheduler. */
  list: 'GANTRY_LIST_V1',
  /** Pending webhook deliveries, one subject per endpoint hash, owned by the notifier. */
  webhooks: 'GANTRY_WEBHOOKS_V1',
  /** Deliveries of an endpoint beyond its share of its tenant's pending budget, waiting their turn (notifier). */
  webhookParked: 'GANTRY_WEBHOOK_PARKED_V1',
  /** Deliveries that exhausted their attempts (the webhook dead-letter list). */
  webhookDlq: 'GANTRY_WEBHOOK_DLQ_V1',
  /** A gauge whose consumer lag equals the queued jobs per pool (capped), for KEDA's nats-jetstream scaler. */
  demand: 'GANTRY_DEMAND_V1',
} as const;

export const BUCKETS = {
  /** Worker registrations and heartbeats (TTL as a backstop; the scheduler judges liveness by its own clock). */
  workers: 'gantry_workers_v1',
  /** The scheduler leader lease (TTL). Its revision is the leader's epoch. */
  leader: 'gantry_leader_v1',
  /** Persistent runtime configuration (pause/drain, caps) and projection checkpoints. No TTL. */
  config: 'gantry_config_v1',
  /** Idempotency keys (24 h TTL). */
  idempotency: 'gantry_idempotency_v1',
  /** Submit rate-limit windows shared by every gateway replica. */
  rateLimit: 'gantry_ratelimit_v1',
  /** Last `job.progress` webhook time per job, shared by notifier replicas. */
  progressThrottle: 'gantry_webhook_throttle_v1',
  /** Cron schedules (v1.1), one key per schedule `<tenant>.<id>`; no TTL, deletes leave a delete marker. */
  schedules: 'gantry_schedules_v1',
} as const;

export const CONSUMERS = {
  /** The notifier's intake of lifecycle events (shared by every notifier replica). */
  notifierIntake: 'notifier_intake_v1',
  /** The notifier's delivery worker (shared by every notifier replica); since v1.1 only deliveries from before v1.1. */
  notifierDeliveries: 'notifier_deliveries_v1',
  /** One per tenant with webhooks (shared by every notifier replica): its own MaxAckPending, filtered on its subjects. */
  notifierTenantDeliveries: (tenant: string) => `notifier_deliveries_v1_t_${assertToken('tenant', tenant)}`,
  notifierTenantDeliveriesPrefix: 'notifier_deliveries_v1_t_',
  /** One per worker process, filtered on that worker's dispatch subject. */
  worker: (workerId: string) => `worker_${assertToken('worker id', workerId)}`,
  /** Gateways' repair of accepted batches whose job records a crashed gateway did not finish writing. */
  batchRepair: 'gateway_batch_repair_v1',
  /** Never consumed: its lag is the number of queued jobs in the pool (capped), read by KEDA. */
  demand: (pool: string) => `demand_${assertToken('pool', pool)}`,
} as const;

export const SUBJECTS = {
  /**
   * Every job's revisions, both forms (the readers of all jobs: the scheduler's projection, the listing writer, the
   * retention sweeper). Wider than the jobs stream's subjects on purpose: 2.9 has no multi-subject filter, and the
   * stream holds nothing else, so this filter is exactly "both job forms".
   */
  jobsAll: 'gantry.v1.*.*',
  /** Revisions of jobs with a callback URL (and of every job created before the no-callback form): the notifier's intake. */
  jobsWithCallback: 'gantry.v1.job.*',
  /** Revisions of jobs without a callback URL ({@link NO_CALLBACK_JOB_ID}); no consumer filters on these alone. */
  jobsWithoutCallback: 'gantry.v1.job_nocb.*',
  job: (jobId: string) =>
    isNoCallbackJobId(jobId) ? `gantry.v1.job_nocb.${jobId}` : `gantry.v1.job.${assertToken('job id', jobId)}`,
  jobIdFromSubject(subject: string): string {
    return subject.slice(subject.lastIndexOf('.') + 1);
  },

  dispatchAll: 'gantry.v1.dispatch.*',
  dispatch: (workerId: string) => `gantry.v1.dispatch.${assertToken('worker id', workerId)}`,
  /** Published by a new leader to bump the dispatch stream's last sequence, fencing off its predecessor. */
  dispatchFence: 'gantry.v1.dispatch._fence',

  batchesAll: 'gantry.v1.batch.*',
  batch: (batchId: string) => `gantry.v1.batch.${assertToken('batch id', batchId)}`,
  /** The job specs of a large batch, in parts written before its manifest (so a repair can finish the batch). */
  batchPartsAll: 'gantry.v1.batch_part.*.*',
  batchPart: (batchId: string, part: number) => `gantry.v1.batch_part.${assertToken('batch id', batchId)}.${part}`,

  listAll: 'gantry.v1.list.>',
  listPage: (tenant: string, bucket: number) => `gantry.v1.list.${assertToken('tenant', tenant)}.p${bucket}`,
  listHead: (tenant: string) => `gantry.v1.list.${assertToken('tenant', tenant)}.head`,

  webhooksAll: 'gantry.v1.webhook.*',
  webhook: (endpointHash: string) => `gantry.v1.webhook.${assertToken('endpoint hash', endpointHash)}`,
  /** Since v1.1 every delivery is on its tenant's subject (each tenant has its own consumer and pending bound). */
  webhooksTenantAll: 'gantry.v1.webhook.*.*',
  webhookOf: (tenant: string, endpointHash: string) =>
    `gantry.v1.webhook.${assertToken('tenant', tenant)}.${assertToken('endpoint hash', endpointHash)}`,
  webhookParked: (tenant: string, endpointHash: string) =>
    `gantry.v1.webhook_parked.${assertToken('tenant', tenant)}.${assertToken('endpoint hash', endpointHash)}`,
  webhookParkedAll: 'gantry.v1.webhook_parked.*.*',
  webhooksOfTenant: (tenant: string) => `gantry.v1.webhook.${assertToken('tenant', tenant)}.*`,
  webhookDlqAll: 'gantry.v1.webhook_dlq.*',
  webhookDlq: (tenant: string) => `gantry.v1.webhook_dlq.${assertToken('tenant', tenant)}`,

  demandAll: 'gantry.v1.demand.>',
  demandPool: (pool: string) => `gantry.v1.demand.${assertToken('pool', pool)}.*`,
  demandUnit: (pool: string, n: number) => `gantry.v1.demand.${assertToken('pool', pool)}.${n}`,

  /** Core NATS (not persisted): the leader's queue statistics, broadcast about twice a second. */
  queueStats: 'gantry.v1.stats.queue',
  /** Core NATS: commands for one worker (cancel a running job). */
  workerControl: (workerId: string) => `gantry.v1.control.worker.${assertToken('worker id', workerId)}`,
  /** Core NATS: a worker tells the leader it dropped a dispatch without starting it. */
  dispatchReleased: 'gantry.v1.events.dispatch_released',

  /** Core NATS request/reply served by the leading scheduler. */
  schedulerRpc: (op: SchedulerRpcOp) => `gantry.v1.rpc.scheduler.${op}`,
  /** Core NATS request/reply served by any notifier replica (queue group). */
  notifierRpc: (op: NotifierRpcOp) => `gantry.v1.rpc.notifier.${op}`,
} as const;

export const SCHEDULER_RPC_OPS = [
  'queue',
  'metrics',
  'concurrency',
  'workers',
  'positions',
  'pause',
  'resume',
  'drain',
  'clear',
  'config',
  'list-sync',
  'tenants',
] as const;
export type SchedulerRpcOp = (typeof SCHEDULER_RPC_OPS)[number];

export const NOTIFIER_RPC_OPS = ['failed-list', 'replay'] as const;
export type NotifierRpcOp = (typeof NOTIFIER_RPC_OPS)[number];

/** NATS header names Gantry sets besides the standard `Nats-*` and W3C `traceparent`/`tracestate`. */
export const HEADERS = {
  eventType: 'Gantry-Event',
  jobId: 'Gantry-Job-Id',
  /**
   * "1" on revisions of jobs that have a callback URL, "0" on the others. Jobs without a callback now have their own
   * subjects the intake never receives; the header still lets it skip, unread, revisions of such jobs created before
   * that (on the shared subject). Revisions without the header (written before it existed) are always read.
   */
  callback: 'Gantry-Callback',
  /** The job's tenant on its revisions: the notifier's intake takes turns across tenants without decoding. */
  tenant: 'Gantry-Tenant',
  notBefore: 'Gantry-Not-Before',
  epoch: 'Gantry-Leader-Epoch',
} as const;

/** Keys inside the config bucket. */
export const CONFIG_KEYS = {
  queue: 'queue',
  listCheckpoint: 'list_checkpoint',
  sweepCheckpoint: 'sweep_checkpoint',
} as const;

export const LEADER_KEY = 'scheduler';
