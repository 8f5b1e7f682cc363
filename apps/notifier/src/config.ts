import {
  commonSpec,
  int,
  intList,
  jobPolicySpec,
  port,
  refuseDevSecretInProduction,
  s3Spec,
  webhookSecret,
  webhookSecrets,
  type ConfigOf,
} from '@gantry/config';

export const notifierSpec = {
  ...commonSpec,
  ...s3Spec,
  ALLOW_PRIVATE_URLS: jobPolicySpec.ALLOW_PRIVATE_URLS,
  NOTIFIER_HTTP_PORT: port({ default: 8083, allowZero: true, doc: '/healthz, /readyz and /metrics' }),
  WEBHOOK_SECRET: webhookSecret('Standard Webhooks signing secret for tenants without their own'),
  WEBHOOK_SECRETS: webhookSecrets('per-tenant secrets tenant=whsec_…[ whsec_…]; two = rotation, both signatures sent'),
  WEBHOOK_TIMEOUT_MS: int({ default: 10_000, min: 100, max: 120_000, doc: 'per delivery attempt' }),
  WEBHOOK_RETRY_DELAYS_MS: intList({
    default: [1_000, 5_000, 30_000, 120_000, 600_000, 1_800_000, 3_600_000],
    min: 0,
    max: 7 * 86_400_000,
    minItems: 0,
    doc: 'delays between attempts; attempts = delays + 1',
  }),
  WEBHOOK_PROGRESS_INTERVAL_MS: int({
    default: 30_000,
    min: 0,
    max: 86_400_000,
    doc: 'at most one job.progress webhook per job per interval',
  }),
  WEBHOOK_ENDPOINT_CONCURRENCY: int({
    default: 4,
    min: 1,
    max: 256,
    doc: 'attempts in flight to one endpoint (URL origin) per notifier replica',
  }),
  WEBHOOK_ENDPOINT_QUEUE: int({
    default: 4,
    min: 0,
    max: 1_024,
    doc: 'deliveries that may wait in memory for a busy endpoint per replica; beyond it they wait in the stream',
  }),
  WEBHOOK_CIRCUIT_FAILURES: int({
    default: 5,
    min: 0,
    max: 1_000,
    doc: 'consecutive failed attempts that open the circuit of an endpoint (0 = never)',
  }),
  WEBHOOK_CIRCUIT_COOLDOWN_MS: int({
    default: 5_000,
    min: 100,
    max: 3_600_000,
    doc: "longest a due delivery waits in the stream for an open circuit's probe before it checks again",
  }),
  WEBHOOK_MAX_IN_FLIGHT: int({ default: 256, min: 1, max: 10_000, doc: 'deliveries handled at once per notifier' }),
  WEBHOOK_MAX_PENDING: int({
    default: 100_000,
    min: 1_000,
    max: 10_000_000,
    doc: 'deliveries that may wait for their time at once (delivery consumer MaxAckPending)',
  }),
};

export type NotifierConfig = ConfigOf<typeof notifierSpec>;

export const notifierRefinements = [refuseDevSecretInProduction];
