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
  type ConfigProblem,
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
  WEBHOOK_MAX_IN_FLIGHT: int({
    default: 256,
    min: 1,
    max: 10_000,
    doc: 'deliveries handled at once per notifier, shared round-robin across the tenants that have some due',
  }),
  WEBHOOK_TENANT_MAX_IN_FLIGHT: int({
    default: 32,
    min: 1,
    max: 10_000,
    doc: "one tenant's deliveries handled (or waiting for a shared slot) at once per notifier; at most WEBHOOK_MAX_IN_FLIGHT",
  }),
  WEBHOOK_TENANT_MAX_PENDING: int({
    default: 10_000,
    min: 10,
    max: 10_000_000,
    doc: "one tenant's deliveries handed out or waiting for their retry at once (its consumer's MaxAckPending); the rest wait in the stream",
  }),
  WEBHOOK_ENDPOINT_MAX_PENDING: int({
    default: 1_000,
    min: 0,
    max: 10_000_000,
    doc: "one endpoint's deliveries in its tenant's stream subject at once; beyond it, deliveries about to wait are parked durably outside the tenant's MaxAckPending and come back as it drains (0 = no per-endpoint share)",
  }),
  WEBHOOK_INTAKE_WINDOW: int({
    default: 4_096,
    min: 64,
    max: 100_000,
    doc: 'lifecycle events a notifier reads ahead and holds unacked while it turns them into deliveries, tenants taking turns; a quiet tenant waits behind at most this many of a flooding one',
  }),
  WEBHOOK_INTAKE_WINDOW_BYTES: int({
    default: 64 * 1024 * 1024,
    min: 1024 * 1024,
    max: 4 * 1024 * 1024 * 1024,
    doc: 'payload bytes of the events read ahead at once (the window is also bounded by bytes: events carry job records)',
  }),
  MAX_JOB_BYTES: int({
    default: 65_536,
    min: 1_024,
    max: 1_048_576,
    doc: "the gateway's largest accepted job (shared setting): sizes the intake's read-ahead pulls within WEBHOOK_INTAKE_WINDOW_BYTES",
  }),
  WEBHOOK_MAX_PENDING: int({
    default: 100_000,
    min: 1_000,
    max: 10_000_000,
    doc: 'MaxAckPending of the delivery consumer of deliveries enqueued before v1.1 (since v1.1 each tenant has its own)',
  }),
};

export type NotifierConfig = ConfigOf<typeof notifierSpec>;

/** The per-tenant bounds must fit inside the shared ones, or one tenant could still take every slot. */
export function tenantBoundsFit(c: NotifierConfig): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  if (c.WEBHOOK_TENANT_MAX_IN_FLIGHT > c.WEBHOOK_MAX_IN_FLIGHT) {
    problems.push({
      variable: 'WEBHOOK_TENANT_MAX_IN_FLIGHT',
      value: String(c.WEBHOOK_TENANT_MAX_IN_FLIGHT),
      message: `must be at most WEBHOOK_MAX_IN_FLIGHT (${c.WEBHOOK_MAX_IN_FLIGHT})`,
    });
  }
  if (c.WEBHOOK_TENANT_MAX_PENDING < c.WEBHOOK_TENANT_MAX_IN_FLIGHT) {
    problems.push({
      variable: 'WEBHOOK_TENANT_MAX_PENDING',
      value: String(c.WEBHOOK_TENANT_MAX_PENDING),
      message: `must be at least WEBHOOK_TENANT_MAX_IN_FLIGHT (${c.WEBHOOK_TENANT_MAX_IN_FLIGHT})`,
    });
  }
  if (c.WEBHOOK_ENDPOINT_MAX_PENDING > c.WEBHOOK_TENANT_MAX_PENDING) {
    problems.push({
      variable: 'WEBHOOK_ENDPOINT_MAX_PENDING',
      value: String(c.WEBHOOK_ENDPOINT_MAX_PENDING),
      message: `must be at most WEBHOOK_TENANT_MAX_PENDING (${c.WEBHOOK_TENANT_MAX_PENDING})`,
    });
  }
  return problems;
}

export const notifierRefinements = [refuseDevSecretInProduction, tenantBoundsFit];
