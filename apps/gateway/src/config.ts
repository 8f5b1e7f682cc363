import {
  apiKeys,
  bool,
  commonSpec,
  fairShareSpec,
  int,
  optionalInt,
  optionalStr,
  jobPolicySpec,
  port,
  refuseDevKeysInProduction,
  s3Spec,
  str,
  type ConfigOf,
  type VariableSpec,
} from '@gantry/config';

export interface PoolInventory {
  gpus: number;
  memoryMb: number;
}

/** `POOLS=pool=gpus×memoryMb,…` (x or ×), e.g. `default=8x81559,small=4x24576`. */
function pools(doc: string): VariableSpec<Record<string, PoolInventory>> {
  return {
    doc,
    parse(raw) {
      const out: Record<string, PoolInventory> = {};
      if (raw === undefined || raw.trim() === '') return out;
      for (const item of raw
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)) {
        const m = /^([A-Za-z0-9_-]{1,64})=(\d+)[x×](\d+)$/.exec(item);
        if (!m) throw new Error(`"${item}" must be pool=gpus×memoryMb (e.g. default=8x81559)`);
        out[m[1]!] = { gpus: Number(m[2]), memoryMb: Number(m[3]) };
      }
      return out;
    },
  };
}

export const gatewaySpec = {
  ...commonSpec,
  ...jobPolicySpec,
  ...fairShareSpec,
  ...s3Spec,
  GATEWAY_HOST: str({ default: '127.0.0.1', doc: 'bind address' }),
  GATEWAY_PORT: port({ default: 8080, allowZero: true, doc: 'bind port (0 = any free port)' }),
  API_KEYS: apiKeys('comma-separated key:role[:tenant], role admin or client'),
  MAX_QUEUE_SIZE: int({
    default: 100_000,
    min: 1,
    max: 100_000_000,
    doc: 'queued jobs beyond this are refused with 429 (until the scheduler reports its own value)',
  }),
  MAX_JOBS_PER_BATCH: int({
    default: 1_000,
    min: 1,
    max: 100_000,
    aliases: ['MAX_VIDEOS_PER_REQUEST'],
    doc: 'jobs in one batch submit',
  }),
  RATE_LIMIT_SUBMITS_PER_MINUTE: int({
    default: 600,
    min: 1,
    max: 10_000_000,
    doc: 'submits per API key (or client IP) per minute',
  }),
  RATE_LIMIT_READS_PER_MINUTE: int({
    default: 6_000,
    min: 1,
    max: 10_000_000,
    doc: 'GET requests on /v1 routes per API key per minute (shared by replicas); excess → 429 with Retry-After',
  }),
  POOLS: pools('declared GPU inventory per pool, pool=gpus×memoryMb'),
  S3_INPUT_BUCKETS: str({
    default: '',
    pattern: /^(\*|[a-z0-9][a-z0-9.-]{1,62}(,[a-z0-9][a-z0-9.-]{1,62})*)$/,
    doc:
      'buckets s3:// inputs may name, comma-separated, or * for any (default: S3_BUCKET only); jobs/<id>/ keys of ' +
      'S3_BUCKET only for jobs of the same tenant — checked at submit, and again by workers (give both the same value)',
  }),
  BODY_LIMIT_BYTES: int({
    default: 10 * 1024 * 1024,
    min: 1024,
    max: 1024 * 1024 * 1024,
    doc: 'largest body of POST /v1/batches (POST /v1/jobs: 1 MiB; other write routes: 64 KiB)',
  }),
  TENANT_MAX_QUEUED_JOBS: optionalInt({
    min: 1,
    max: 100_000_000,
    doc: 'queued + retrying + scheduled jobs one tenant may hold (unset: no cap); beyond it submits get 429 with Retry-After',
  }),
  MAX_SCHEDULES_PER_TENANT: int({
    default: 1_000,
    min: 1,
    max: 1_000_000,
    doc: 'cron schedules one tenant may hold (POST /v1/schedules beyond it: 429); deleted ones do not count',
  }),
  MAX_DELAY_SECONDS: int({
    default: 2_592_000,
    min: 1,
    max: 31_622_400,
    doc: 'largest delaySeconds / furthest runAt of a submitted job, in seconds (default 30 days, at most 366 days)',
  }),
  MAX_JOB_BYTES: int({
    default: 65_536,
    min: 1_024,
    max: 1_048_576,
    doc: 'largest accepted job (its JSON: input + metadata + the rest; each job of a batch) in bytes → 413 beyond it',
  }),
  SSE_MAX_STREAMS: int({
    default: 1_000,
    min: 1,
    max: 1_000_000,
    doc: 'open event streams (job events and queue state) per gateway',
  }),
  SSE_MAX_STREAMS_PER_KEY: int({
    default: 50,
    min: 1,
    max: 1_000_000,
    doc: 'open event streams one API key may hold per gateway (429 beyond), so one key cannot take them all',
  }),
  SSE_KEEPALIVE_MS: int({ default: 15_000, min: 100, max: 300_000, doc: 'comment line period on quiet event streams' }),
  QUEUE_EVENTS_MIN_INTERVAL_MS: int({
    default: 250,
    min: 10,
    max: 60_000,
    doc: 'GET /v1/queue/events: at most one queue read from the leader per this period, shared by every open stream',
  }),
  QUEUE_EVENTS_REFRESH_MS: int({
    default: 5_000,
    min: 100,
    max: 300_000,
    doc: 'GET /v1/queue/events: also re-read the queue this often while streams are open (per-pool changes)',
  }),
  BATCH_REPAIR_AFTER_MS: int({
    default: 30_000,
    min: 100,
    max: 3_600_000,
    doc: 'age at which an accepted batch whose job records are not all written is repaired by any gateway',
  }),
  TRUST_PROXY: bool({
    default: false,
    doc: 'take the client IP (per-IP rate limit) from X-Forwarded-For: set behind a load balancer',
  }),
  RPC_TIMEOUT_MS: int({ default: 2_000, min: 50, max: 120_000, doc: 'how long to wait for the scheduler or notifier' }),
  TRACE_URL_TEMPLATE: optionalStr({
    doc: 'the dashboard links each job to its trace: a URL with {traceId}, e.g. http://jaeger:16686/trace/{traceId}',
  }),
};

export type GatewayConfig = ConfigOf<typeof gatewaySpec>;
export const gatewayRefinements = [refuseDevKeysInProduction];
export const GATEWAY_CONFIG = Symbol('GATEWAY_CONFIG');
