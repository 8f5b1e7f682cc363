/**
 * TENANT_MAX_QUEUED_JOBS on the real stack (nats-server, scheduler and gateway processes; no worker, so jobs stay
 * queued): a tenant at its cap gets 429 + Retry-After for singles and for a batch (refused whole, nothing created)
 * while another tenant is still accepted; the cap holds across the scheduler's statistics broadcasts (which carry
 * per-tenant depth) and frees again when one of the tenant's jobs leaves the queue.
 */
import { CLIENT_KEY, GantryCluster, OTHER_TENANT_KEY, freePort, waitFor } from '@gantry/testing';

jest.setTimeout(300_000);
const START_TIMEOUT_MS = 150_000;
const CAP = 5;

describe('TENANT_MAX_QUEUED_JOBS (real processes)', () => {
  let cluster: GantryCluster;
  let base: string;

  async function call(
    method: string,
    path: string,
    body?: unknown,
    key = CLIENT_KEY,
  ): Promise<{ status: number; headers: Headers; body: Record<string, unknown> }> {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${key}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return {
      status: res.status,
      headers: res.headers,
      body: (text ? JSON.parse(text) : {}) as Record<string, unknown>,
    };
  }
  const job = { type: 'noop', input: { durationMs: 10 } };
  const mine = async () => ((await call('GET', '/v1/jobs?limit=500')).body['items'] as unknown[]).length;

  function expectCapped(a: Awaited<ReturnType<typeof call>>): void {
    expect(a.status).toBe(429);
    expect(a.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(Number(a.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(String(a.body['detail'])).toMatch(/TENANT_MAX_QUEUED_JOBS/);
  }

  beforeAll(async () => {
    cluster = await GantryCluster.start({ manual: true });
    cluster.spawn('scheduler');
    const port = await freePort();
    // The 3 s loop below submits as fast as it can: the submit rate limit must not be what answers 429.
    const gw = cluster.spawn('gateway', {
      GATEWAY_PORT: String(port),
      TENANT_MAX_QUEUED_JOBS: String(CAP),
      RATE_LIMIT_SUBMITS_PER_MINUTE: '1000000',
    });
    base = `http://127.0.0.1:${port}`;
    await waitFor(
      async () => {
        if (!gw.running) throw new Error(`gateway exited: ${gw.tail(10)}`);
        const r = await fetch(`${base}/v1/queue`, { headers: { authorization: `Bearer ${CLIENT_KEY}` } }).catch(
          () => undefined,
        );
        return r?.status === 200;
      },
      { what: 'gateway ready with a leading scheduler', timeoutMs: START_TIMEOUT_MS, intervalMs: 100 },
    );
  }, START_TIMEOUT_MS + 30_000);
  afterAll(async () => cluster?.stop());

  it('refuses the capped tenant (singles and whole batches) and still accepts the other tenant', async () => {
    for (let i = 0; i < 3; i++) expect((await call('POST', '/v1/jobs', job)).status).toBe(202);
    // 3 + 3 would pass the cap: the batch is refused whole.
    expectCapped(await call('POST', '/v1/batches', { jobs: [job, job, job] }));
    expect(await mine()).toBe(3);
    expect((await call('POST', '/v1/batches', { jobs: [job, job] })).status).toBe(202);
    expectCapped(await call('POST', '/v1/jobs', job));
    expect(await mine()).toBe(CAP);
    // The other tenant is not affected.
    expect((await call('POST', '/v1/jobs', job, OTHER_TENANT_KEY)).status).toBe(202);
    expect((await call('POST', '/v1/batches', { jobs: [job, job] }, OTHER_TENANT_KEY)).status).toBe(202);
  });

  it('holds across statistics broadcasts (counted by the scheduler) and frees a place when a job leaves', async () => {
    await waitFor(async () => ((await call('GET', '/v1/queue')).body['depth'] as { total: number }).total === CAP + 3, {
      what: 'the scheduler to see every queued job',
      timeoutMs: 60_000,
    });
    // For 3 s (several broadcasts, each resetting the gateway's own count of recent accepts) every submit is refused.
    const until = Date.now() + 3_000;
    while (Date.now() < until) expectCapped(await call('POST', '/v1/jobs', job));
    expect(await mine()).toBe(CAP);

    const first = ((await call('GET', '/v1/jobs?limit=1')).body['items'] as { id: string }[])[0]!;
    expect((await call('POST', `/v1/jobs/${first.id}/cancel`)).status).toBe(200);
    // Only the scheduler's per-tenant count can go down: the place comes back through its broadcast.
    await waitFor(async () => (await call('POST', '/v1/jobs', job)).status === 202, {
      what: 'a place for the tenant after a cancel',
      timeoutMs: 60_000,
      intervalMs: 200,
    });
    expectCapped(await call('POST', '/v1/jobs', job));
    expect(await mine()).toBe(CAP + 1);
  });
});
