/**
 * Every service validates its own environment at boot and exits non-zero listing every bad variable (not just the
 * first), before touching NATS.
 */
import { ServiceProcess, type ServiceName } from '@gantry/testing';

const cases: { service: ServiceName; env: Record<string, string>; bad: string[] }[] = [
  {
    service: 'gateway',
    env: {
      GATEWAY_PORT: '99999',
      MAX_ATTEMPTS: '0',
      API_KEYS: 'short:root',
      RETRY_DELAYS_MS: '1,,2',
      TENANT_WEIGHTS: 'acme=0',
    },
    bad: ['GATEWAY_PORT', 'MAX_ATTEMPTS', 'API_KEYS', 'RETRY_DELAYS_MS', 'TENANT_WEIGHTS'],
  },
  {
    service: 'scheduler',
    env: {
      MAX_CONCURRENT_JOBS: 'many',
      AGING_SECONDS: '-5',
      NATS_URL: 'http://nope',
      TENANT_WEIGHTS: 'acme=2,acme=3',
      FAIR_SHARE_HALF_LIFE_SECONDS: '0',
      SCHEDULER_RECORD_CACHE_BYTES: '-1',
    },
    bad: [
      'MAX_CONCURRENT_JOBS',
      'AGING_SECONDS',
      'NATS_URL',
      'TENANT_WEIGHTS',
      'FAIR_SHARE_HALF_LIFE_SECONDS',
      'SCHEDULER_RECORD_CACHE_BYTES',
    ],
  },
  {
    service: 'gpu-worker',
    env: { WORKER_POOL: 'bad pool', SLOTS_PER_GPU: '0', WORKER_SHUTDOWN_GRACE_SECONDS: 'soon' },
    bad: ['WORKER_POOL', 'SLOTS_PER_GPU', 'WORKER_SHUTDOWN_GRACE_SECONDS'],
  },
  {
    service: 'notifier',
    env: { WEBHOOK_SECRET: 'not-a-secret', WEBHOOK_TIMEOUT_MS: '1', LOG_LEVEL: 'loud' },
    bad: ['WEBHOOK_SECRET', 'WEBHOOK_TIMEOUT_MS', 'LOG_LEVEL'],
  },
  {
    // Per-tenant webhook bounds that do not fit inside the shared ones (one tenant could take every slot).
    service: 'notifier',
    env: {
      WEBHOOK_MAX_IN_FLIGHT: '8',
      WEBHOOK_TENANT_MAX_IN_FLIGHT: '16',
      WEBHOOK_TENANT_MAX_PENDING: '10',
      WEBHOOK_ENDPOINT_MAX_PENDING: '20',
    },
    bad: ['WEBHOOK_TENANT_MAX_IN_FLIGHT', 'WEBHOOK_TENANT_MAX_PENDING', 'WEBHOOK_ENDPOINT_MAX_PENDING'],
  },
];

describe('boot-time configuration validation (real processes)', () => {
  it.each(cases)('$service exits 78 naming every bad variable', async ({ service, env, bad }) => {
    // NATS points nowhere: a service that got past validation would hang waiting for it instead of exiting.
    const p = new ServiceProcess(service, { NATS_URL: 'nats://127.0.0.1:1', ...env }).start();
    const code = await p.exited();
    expect(code).toBe(78);
    const out = p.raw.join('\n');
    for (const v of bad) expect(out).toContain(`${v}=`);
    expect(out).toMatch(new RegExp(`${bad.length} problems`));
  });

  it('refuses the dev API keys and webhook secret in production', async () => {
    const gw = new ServiceProcess('gateway', { NODE_ENV: 'production', NATS_URL: 'nats://127.0.0.1:1' }).start();
    expect(await gw.exited()).toBe(78);
    expect(gw.raw.join('\n')).toContain('dev keys are refused when NODE_ENV=production');
    const nt = new ServiceProcess('notifier', { NODE_ENV: 'production', NATS_URL: 'nats://127.0.0.1:1' }).start();
    expect(await nt.exited()).toBe(78);
    expect(nt.raw.join('\n')).toContain('the dev secret is refused when NODE_ENV=production');
  });
});
