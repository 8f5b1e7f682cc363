/**
 * Authentication and authorization on every `/v1` route against a real nats-server: 401 without or with an unknown
 * key (problem+json, before the body is read), 403 for client keys on admin routes, tenant isolation (404), and the
 * per-IP limit on requests that present no valid key. Unauthenticated operational routes stay open.
 */
import { ADMIN, CLIENT, OTHER, expectProblem, startStack, type Client } from './harness';
import { V1_ROUTES } from './routes';

/**
 * Requests without a valid key share one per-IP quota (the submit rate). It has room for every anonymous request the
 * tests before the rate-limit test make (one per route, plus a handful), so adding a route cannot exhaust it early.
 */
const ANON_QUOTA = 2 * V1_ROUTES.length + 10;

describe('gateway auth (real NATS)', () => {
  let s: Awaited<ReturnType<typeof startStack>>;
  let api: Client;

  beforeAll(async () => {
    s = await startStack({ RATE_LIMIT_SUBMITS_PER_MINUTE: String(ANON_QUOTA) });
    api = s.api;
  });
  afterAll(async () => s?.stop());

  it.each(V1_ROUTES.map((r) => [r.method, r.path, r] as const))(
    '%s %s without a key → 401 problem, nothing read',
    async (_m, _p, r) => {
      const a = await api.as(null).json(r.method, r.path, r.body);
      const p = expectProblem(a, 401);
      expect(p.type).toBe('urn:gantry:problem:unauthorized');
      expect(a.headers.get('www-authenticate')).toBe('Bearer');
    },
  );

  it('an unknown key is a 401, whether as Bearer or X-API-Key; a known X-API-Key works', async () => {
    expectProblem(await api.as('not-a-real-key').json('GET', '/v1/jobs'), 401);
    expectProblem(await api.as(null).raw('GET', '/v1/jobs', { headers: { 'x-api-key': 'nope-nope-nope' } }), 401);
    expectProblem(await api.as(null).raw('GET', '/v1/jobs', { headers: { authorization: `Basic ${CLIENT}` } }), 401);
    // /v1/whoami: the listing needs a scheduler leader (read-your-writes sync), which this test does not run.
    const ok = await api.as(null).raw('GET', '/v1/whoami', { headers: { 'x-api-key': CLIENT } });
    expect(ok.status).toBe(200);
  });

  it('401 comes before the body is looked at (bad JSON, wrong media type, huge body)', async () => {
    const anon = api.as(null);
    expectProblem(
      await anon.raw('POST', '/v1/jobs', { body: '{oops', headers: { 'content-type': 'application/json' } }),
      401,
    );
    expectProblem(await anon.raw('POST', '/v1/jobs', { body: 'x', headers: { 'content-type': 'text/plain' } }), 401);
    expectProblem(
      await anon.raw('POST', '/v1/batches', {
        body: JSON.stringify({ jobs: [], pad: 'x'.repeat(11 * 1024 * 1024) }),
        headers: { 'content-type': 'application/json' },
      }),
      401,
    );
  });

  it.each(V1_ROUTES.filter((r) => r.admin).map((r) => [r.method, r.path, r] as const))(
    '%s %s with a client key → 403',
    async (_m, _p, r) => {
      const p = expectProblem(await api.as(CLIENT).json(r.method, r.path, r.body), 403);
      expect(p.type).toBe('urn:gantry:problem:forbidden');
    },
  );

  it('GET /v1/config (admin) shows the effective configuration with secrets redacted', async () => {
    const a = await api.as(ADMIN).json<Record<string, unknown>>('GET', '/v1/config');
    expect(a.status).toBe(200);
    expect(a.body['MAX_JOBS_PER_BATCH']).toBe(1000);
    expect(a.body['RATE_LIMIT_SUBMITS_PER_MINUTE']).toBe(ANON_QUOTA);
    expect(JSON.stringify(a.body)).not.toContain(ADMIN);
    expect(JSON.stringify(a.body)).not.toContain('test-secret');
  });

  it("isolates tenants: another tenant's job and batch are 404 for client keys, visible to admins", async () => {
    const job = await api.as(CLIENT).json<{ id: string }>('POST', '/v1/jobs', { type: 'noop' });
    expect(job.status).toBe(202);
    const id = job.body.id;
    const other = api.as(OTHER);
    expectProblem(await other.json('GET', `/v1/jobs/${id}`), 404);
    expectProblem(await other.json('POST', `/v1/jobs/${id}/cancel`), 404);
    expectProblem(await other.json('POST', `/v1/jobs/${id}/retry`), 404);
    expectProblem(await other.json('PUT', `/v1/jobs/${id}/priority`, { priority: 'high' }), 404);
    expectProblem(await other.raw('GET', `/v1/jobs/${id}/events`), 404);
    expect((await api.as(ADMIN).json('GET', `/v1/jobs/${id}`)).status).toBe(200);
    // Still queued: the other tenant changed nothing.
    expect((await api.as(CLIENT).json<{ status: string }>('GET', `/v1/jobs/${id}`)).body.status).toBe('queued');

    const batch = await api.as(CLIENT).json<{ id: string }>('POST', '/v1/batches', { jobs: [{ type: 'noop' }] });
    expect(batch.status).toBe(202);
    expectProblem(await other.json('GET', `/v1/batches/${batch.body.id}`), 404);
    expect((await api.as(ADMIN).json('GET', `/v1/batches/${batch.body.id}`)).status).toBe(200);
    // A client key cannot list another tenant.
    expectProblem(await api.as(CLIENT).json('GET', '/v1/jobs?tenant=other'), 403);
  });

  it('keeps the operational routes open: healthz, readyz, metrics, docs, openapi.json', async () => {
    const anon = api.as(null);
    expect((await anon.raw('GET', '/healthz')).status).toBe(200);
    expect((await anon.raw('GET', '/readyz')).status).toBe(200);
    const m = await anon.raw('GET', '/metrics');
    expect(m.status).toBe(200);
    expect(m.text).toContain('gantry_http_requests_total');
    expect((await anon.raw('GET', '/docs')).status).toBe(200);
    expect((await anon.raw('GET', '/openapi.json')).status).toBe(200);
  });

  it('rate limits requests without a valid key per client IP (429 + Retry-After instead of 401)', async () => {
    const anon = api.as('guessing-key-000');
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    for (let i = 0; i < ANON_QUOTA + 40; i++) {
      const a = await anon.json('GET', '/v1/jobs');
      statuses.push(a.status);
      if (a.status === 429) {
        expectProblem(a, 429);
        retryAfter = a.headers.get('retry-after');
      }
    }
    // Some of the quota went to earlier tests' anonymous requests; the rest are 401 then 429. The bucket never holds
    // more than ANON_QUOTA, and 40 more requests than that leave room for a slow machine's refill during the loop.
    expect(statuses.filter((x) => x === 401).length).toBeLessThanOrEqual(ANON_QUOTA);
    expect(statuses.filter((x) => x === 429).length).toBeGreaterThanOrEqual(20);
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
    // A valid key is not affected by its IP's anonymous quota.
    expect((await api.as(CLIENT).json('GET', '/v1/whoami')).status).toBe(200);
  });
});
