import {
  bool,
  commonSpec,
  int,
  intList,
  jobPolicySpec,
  livenessSpec,
  oneOf,
  optionalInt,
  optionalStr,
  port,
  s3Spec,
  str,
  type ConfigOf,
} from '@gantry/config';
import { SUBJECT_TOKEN } from '@gantry/contracts';
import { DEFAULT_CORDON_XIDS } from './gpu/xid-log';

export const workerSpec = {
  ...commonSpec,
  ...livenessSpec,
  ...s3Spec,
  JOB_TYPES_FILE: jobPolicySpec.JOB_TYPES_FILE,
  ALLOW_PRIVATE_URLS: jobPolicySpec.ALLOW_PRIVATE_URLS,
  WORKER_HTTP_PORT: port({ default: 8082, allowZero: true, doc: '/healthz, /readyz and /metrics (0 = any free port)' }),
  WORKER_POOL: str({ default: 'default', pattern: SUBJECT_TOKEN, doc: 'pool this worker serves' }),
  WORKER_SLOTS: optionalInt({
    min: 1,
    max: 1024,
    doc: 'jobs run at once (default GPUs × SLOTS_PER_GPU, or 2 without a GPU)',
  }),
  SLOTS_PER_GPU: int({ default: 2, min: 1, max: 64, doc: 'jobs one GPU may run at once' }),
  WORKER_SHUTDOWN_GRACE_SECONDS: int({
    default: 30,
    min: 0,
    max: 86_400,
    doc: 'on SIGTERM, finish in-flight work this long',
  }),
  WORKER_ID_PREFIX: optionalStr({ doc: 'prefix of the worker id (default: the host name)' }),
  WORKER_SCRATCH_DIR: optionalStr({ doc: 'where per-attempt scratch directories go (default: the OS temp dir)' }),
  S3_INPUT_BUCKETS: str({
    default: '',
    pattern: /^(\*|[a-z0-9][a-z0-9.-]{1,62}(,[a-z0-9][a-z0-9.-]{1,62})*)$/,
    doc:
      'buckets s3:// inputs may be read from with the worker credentials, comma-separated, or * for any ' +
      '(default: S3_BUCKET only); jobs/<id>/ keys of S3_BUCKET only by jobs of the same tenant',
  }),
  FFMPEG: str({ default: 'ffmpeg', doc: 'ffmpeg binary' }),
  JOB_SANDBOX: oneOf(['bwrap', 'off'] as const, {
    default: 'bwrap',
    doc:
      'every job process runs in a bubblewrap sandbox (docs/gpu.md); the worker refuses to start where the host cannot ' +
      'provide it. off = job processes run as the worker, unconfined (single-tenant hosts only; warned at every start)',
  }),
  BWRAP: str({ default: 'bwrap', doc: 'bubblewrap binary' }),
  JOB_SANDBOX_UID_BASE: int({
    default: 50_000,
    min: 1_000,
    max: 4_000_000_000,
    doc: 'a worker running as root gives each slot its own uid/gid from here on (base … base + slots - 1)',
  }),
  JOB_MAX_OPEN_FILES: int({ default: 4_096, min: 64, max: 1_048_576, doc: 'RLIMIT_NOFILE of a job process' }),
  JOB_MAX_PROCESSES: int({
    default: 512,
    min: 8,
    max: 1_000_000,
    doc: 'RLIMIT_NPROC of a job process (per slot uid when the worker is root, else shared with the worker uid)',
  }),
  MAX_INPUT_BYTES: int({
    default: 10_737_418_240,
    min: 1,
    doc: 'largest single download into an attempt; beyond it the attempt fails DISK_LIMIT (not retryable)',
  }),
  MAX_SCRATCH_BYTES: int({
    default: 53_687_091_200,
    min: 1,
    doc: 'all bytes an attempt may hold in its scratch dir (inputs + outputs); beyond it the attempt fails DISK_LIMIT',
  }),
  NVIDIA_SMI: str({ default: 'nvidia-smi', doc: 'nvidia-smi binary used for GPU discovery' }),
  GPU_DISCOVERY: bool({ default: true, doc: 'false = CPU-only mode without probing' }),
  GPU_SAMPLE_INTERVAL_MS: int({
    default: 5_000,
    min: 100,
    max: 600_000,
    doc: 'GPU telemetry (memory, utilization, temperature, ECC) and XID sampling period',
  }),
  GPU_SAMPLE_TIMEOUT_MS: int({
    default: 10_000,
    min: 100,
    max: 600_000,
    doc: 'a telemetry query still running after this is killed (that sample is skipped)',
  }),
  GPU_XID_LOG: optionalStr({
    doc: 'a file receiving kernel messages (e.g. /var/log/kern.log) to read NVIDIA XID errors from (unset: no XID check)',
  }),
  GPU_CORDON_XIDS: intList({
    default: [...DEFAULT_CORDON_XIDS],
    min: 1,
    max: 1_000,
    doc: 'XID codes that cordon a GPU',
  }),
  GPU_CORDON_RECHECK_SECONDS: int({
    default: 600,
    min: 0,
    max: 604_800,
    doc: 'an automatic cordon is lifted by a clean probe this long after the last error',
  }),
  GPU_START_FAILURES: int({
    default: 3,
    min: 0,
    max: 1_000,
    doc: 'attempts in a row failing within GPU_START_FAILURE_SECONDS of their start that cordon a GPU (0 = never)',
  }),
  GPU_START_FAILURE_SECONDS: int({
    default: 10,
    min: 1,
    max: 3_600,
    doc: 'an attempt failing sooner than this after its start counts as a start failure of its GPUs',
  }),
  DISPATCH_ACK_WAIT_MS: int({
    default: 30_000,
    min: 1_000,
    max: 600_000,
    doc: "AckWait of the worker's dispatch consumer; working() is sent every third of it while an attempt runs",
  }),
  WORKER_STARTED_REVISION_DELAY_MS: int({
    default: 250,
    min: 0,
    max: 5_000,
    doc:
      "an attempt's running revision is written only once it has run this long (or reports progress); one over " +
      'sooner writes its outcome alone, which records the start too (0 = running written before the job starts; ' +
      'capped at a quarter of the lease, WORKER_LOST_AFTER_MS × 0.6 / 4)',
  }),
  WORKER_READ_BEFORE_START: bool({
    default: false,
    doc:
      'with a started-revision delay, read the record from the stream leader before every start (true) instead of ' +
      'checking the record the dispatch carries and letting the first write catch one that moved (false); true ' +
      'costs a request and its reply per attempt and narrows how long a job cancelled just before its start may run',
  }),
  PROGRESS_RECORD_INTERVAL_MS: int({
    default: 1_000,
    min: 0,
    max: 600_000,
    doc: 'at most one progress revision per job per interval',
  }),
};

export type WorkerConfig = ConfigOf<typeof workerSpec>;
