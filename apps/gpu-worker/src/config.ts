import {
  bool,
  commonSpec,
  int,
  intList,
  jobPolicySpec,
  livenessSpec,
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
  PROGRESS_RECORD_INTERVAL_MS: int({
    default: 1_000,
    min: 0,
    max: 600_000,
    doc: 'at most one progress revision per job per interval',
  }),
};

export type WorkerConfig = ConfigOf<typeof workerSpec>;
