/** Variables shared by several services (API.md §2). Each service composes the fragments it reads. */
import {
  bool,
  int,
  intList,
  natsServers,
  oneOf,
  optionalStr,
  optionalUrl,
  str,
  type ConfigProblem,
  type VariableSpec,
} from './env';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

export const commonSpec = {
  NODE_ENV: str({ default: 'development', doc: '`production` refuses the dev API keys and webhook secret' }),
  NATS_URL: natsServers({ default: ['nats://127.0.0.1:4222'], doc: 'NATS servers, comma-separated' }),
  NATS_USER: optionalStr({ doc: 'NATS user name (with NATS_PASSWORD); docs/operations.md "NATS credentials"' }),
  NATS_PASSWORD: optionalStr({ secret: true, doc: 'NATS password (with NATS_USER)' }),
  NATS_TOKEN: optionalStr({ secret: true, doc: 'NATS authorization token (instead of a user)' }),
  NATS_NKEY_SEED_FILE: optionalStr({ doc: 'file holding this service’s NATS nkey seed (SU…)' }),
  NATS_CREDS_FILE: optionalStr({ doc: 'NATS .creds file (JWT + nkey seed, decentralized auth)' }),
  NATS_REPLICAS: int({ default: 1, min: 1, max: 5, doc: 'replicas of every stream and bucket this service creates' }),
  LOG_LEVEL: oneOf(LOG_LEVELS, { default: 'info', doc: 'pino log level' }),
  HTTP_HOST: str({ default: '127.0.0.1', doc: 'bind address of /healthz, /readyz and /metrics' }),
  JOB_RETENTION_HOURS: int({ default: 168, min: 1, max: 24 * 3650, doc: 'how long terminal jobs are kept' }),
};

/** Timings of liveness: heartbeats, the worker-lost verdict and the leader lease. */
export const livenessSpec = {
  HEARTBEAT_INTERVAL_MS: int({ default: 2_000, min: 100, max: 60_000, doc: 'worker heartbeat period' }),
  WORKER_LOST_AFTER_MS: int({
    default: 10_000,
    min: 500,
    max: 600_000,
    doc: 'a worker silent this long is lost; its running attempts end WORKER_LOST',
  }),
  LEADER_LEASE_MS: int({
    default: 5_000,
    min: 500,
    max: 60_000,
    doc: 'scheduler leader lease (failover takes about this long)',
  }),
};

export const s3Spec = {
  S3_ENDPOINT: optionalUrl({ protocols: ['http', 'https'], doc: 'S3-compatible endpoint; unset = AWS' }),
  S3_REGION: str({ default: 'us-east-1', doc: 'S3 region' }),
  S3_BUCKET: str({
    default: 'gantry-outputs',
    pattern: /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/,
    doc: 'bucket for job outputs',
  }),
  S3_FORCE_PATH_STYLE: bool({ default: true, doc: 'path-style addressing (MinIO and most S3-compatible stores)' }),
  AWS_ACCESS_KEY_ID: optionalStr({ doc: 'S3 access key', secret: true }),
  AWS_SECRET_ACCESS_KEY: optionalStr({ doc: 'S3 secret key', secret: true }),
  S3_PRESIGN_SECONDS: int({ default: 3_600, min: 60, max: 604_800, doc: 'lifetime of presigned download URLs' }),
};

export const jobPolicySpec = {
  DEFAULT_JOB_TIMEOUT_SECONDS: int({ default: 3_600, min: 1, max: 7 * 86_400, doc: 'per-attempt timeout' }),
  MAX_ATTEMPTS: int({ default: 4, min: 1, max: 100, doc: '1 try + retries' }),
  RETRY_DELAYS_MS: intList({
    default: [30_000, 120_000, 300_000],
    min: 0,
    max: 86_400_000,
    doc: 'backoff before retry 1, 2, 3…',
  }),
  JOB_TYPES_FILE: optionalStr({ doc: 'operator catalog of extra job types (JSON or YAML)' }),
  ALLOW_PRIVATE_URLS: bool({
    default: false,
    doc: 'allow callback/input/upload URLs on private, loopback or link-local addresses',
  }),
};

// ---- API keys ---------------------------------------------------------------------------------------------------

export type Role = 'admin' | 'client';
export interface ApiKey {
  key: string;
  role: Role;
  tenant: string;
}

export const DEV_API_KEYS: readonly ApiKey[] = [
  { key: 'dev-admin-key', role: 'admin', tenant: 'default' },
  { key: 'dev-client-key', role: 'client', tenant: 'default' },
];

export function apiKeys(doc: string): VariableSpec<ApiKey[]> {
  return {
    doc,
    secret: true,
    parse(raw) {
      if (raw === undefined || raw.trim() === '') return [...DEV_API_KEYS];
      const keys: ApiKey[] = [];
      for (const item of raw
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)) {
        const [key, role, tenant = 'default', ...rest] = item.split(':');
        if (!key || key.length < 8 || rest.length > 0)
          throw new Error('each entry must be key:role[:tenant] with a key of 8+ characters');
        if (role !== 'admin' && role !== 'client')
          throw new Error(`role of "${key.slice(0, 4)}…" must be admin or client`);
        if (!/^[A-Za-z0-9_-]{1,64}$/.test(tenant)) throw new Error(`tenant "${tenant}" must match [A-Za-z0-9_-]{1,64}`);
        if (keys.some((k) => k.key === key)) throw new Error(`key "${key.slice(0, 4)}…" is listed twice`);
        keys.push({ key, role, tenant });
      }
      if (keys.length === 0) throw new Error('lists no key');
      return keys;
    },
  };
}

export function refuseDevKeysInProduction(
  config: { NODE_ENV: string; API_KEYS: ApiKey[] },
  env: NodeJS.ProcessEnv,
): ConfigProblem[] {
  if (config.NODE_ENV !== 'production') return [];
  const dev = config.API_KEYS.filter((k) => DEV_API_KEYS.some((d) => d.key === k.key));
  if (dev.length === 0) return [];
  return [
    {
      variable: 'API_KEYS',
      value: env['API_KEYS'] ? '***' : undefined,
      message: 'dev keys are refused when NODE_ENV=production',
    },
  ];
}

// ---- webhook secrets --------------------------------------------------------------------------------------------

/** The fixed development secret printed by `npm run up`. Refused in production. */
export const DEV_WEBHOOK_SECRET = 'whsec_Z2FudHJ5LWRldi13ZWJob29rLXNlY3JldC0wMDAx';

const WHSEC = /^whsec_[A-Za-z0-9+/]{16,}={0,2}$/;

export function webhookSecret(doc: string): VariableSpec<string> {
  return {
    doc,
    secret: true,
    parse(raw) {
      if (raw === undefined || raw.trim() === '') return DEV_WEBHOOK_SECRET;
      if (!WHSEC.test(raw.trim())) throw new Error('must be whsec_ followed by base64 (at least 12 bytes)');
      return raw.trim();
    },
  };
}

/** `tenant=whsec_a[ whsec_b],tenant2=…` → tenant → secrets (two during a rotation). */
export function webhookSecrets(doc: string): VariableSpec<Record<string, string[]>> {
  return {
    doc,
    secret: true,
    parse(raw) {
      const out: Record<string, string[]> = {};
      if (raw === undefined || raw.trim() === '') return out;
      for (const item of raw
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)) {
        const eq = item.indexOf('=');
        const tenant = item.slice(0, eq).trim();
        const secrets = item
          .slice(eq + 1)
          .trim()
          .split(/\s+/)
          .filter(Boolean);
        if (eq <= 0 || !/^[A-Za-z0-9_-]{1,64}$/.test(tenant))
          throw new Error('each entry must be tenant=whsec_…[ whsec_…]');
        if (secrets.length === 0 || secrets.length > 2) throw new Error(`tenant ${tenant} needs one or two secrets`);
        for (const s of secrets)
          if (!WHSEC.test(s)) throw new Error(`a secret of tenant ${tenant} is not whsec_ + base64`);
        out[tenant] = secrets;
      }
      return out;
    },
  };
}

export function refuseDevSecretInProduction(config: { NODE_ENV: string; WEBHOOK_SECRET: string }): ConfigProblem[] {
  if (config.NODE_ENV === 'production' && config.WEBHOOK_SECRET === DEV_WEBHOOK_SECRET) {
    return [
      { variable: 'WEBHOOK_SECRET', value: undefined, message: 'the dev secret is refused when NODE_ENV=production' },
    ];
  }
  return [];
}

/** `tenant=weight,…` (integer weights 1–1000) → tenant → weight; tenants not listed weigh 1. */
export function tenantWeights(doc: string): VariableSpec<Record<string, number>> {
  return {
    doc,
    parse(raw) {
      const out: Record<string, number> = Object.create(null) as Record<string, number>;
      if (raw === undefined || raw.trim() === '') return out;
      const problems: string[] = [];
      for (const item of raw
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)) {
        const eq = item.indexOf('=');
        const tenant = eq < 0 ? '' : item.slice(0, eq).trim();
        const w = eq < 0 ? '' : item.slice(eq + 1).trim();
        if (!/^[A-Za-z0-9_-]{1,64}$/.test(tenant))
          problems.push(`"${item}" is not tenant=weight (tenant [A-Za-z0-9_-]{1,64})`);
        else if (!/^\d{1,4}$/.test(w) || Number(w) < 1 || Number(w) > 1000)
          problems.push(`weight of ${tenant} must be an integer 1–1000, not "${w}"`);
        else if (tenant in out) problems.push(`${tenant} is listed twice`);
        else out[tenant] = Number(w);
      }
      if (problems.length) throw new Error(problems.join('; '));
      return out;
    },
  };
}

/** Weighted fair share between tenants (API §3): the gateway and the scheduler both validate it at boot. */
export const fairShareSpec = {
  TENANT_WEIGHTS: tenantWeights(
    'tenant=weight,… (1–1000): tenants competing at one priority level share tokens in proportion to their weights',
  ),
  FAIR_SHARE_HALF_LIFE_SECONDS: int({
    default: 300,
    min: 1,
    max: 30 * 86_400,
    doc: 'half-life of the decayed GPU-slot-seconds that fair share weighs',
  }),
};
