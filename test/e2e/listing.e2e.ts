/**
 * Read-your-writes listing (API.md §3) across gateway replicas: two gateways in front of one scheduler; every submit
 * goes to one gateway and the listing is read *at once* — no wait, no retry — from the other. Single, batch (12 jobs)
 * and idempotent (the same Idempotency-Key twice) submits, a cancel, and filters by status and priority: every page
 * walk holds every job of the tenant exactly once, newest first, and no job of another tenant.
 */
import { CLIENT_KEY, GantryCluster, OTHER_TENANT_KEY, freePort, waitFor } from '@gantry/testing';

jest.setTimeout(300_000);
/** Starting services on a loaded 2-core machine can take well over the cluster helper's 30 s. */
const START_TIMEOUT_MS = 150_000;

interface View {
  id: string;
  status: string;
  priority: string;
  tenant: string;
}
interface Page {
  items: View[];
  nextCursor: string | null;
}

async function call<T>(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  key = CLIENT_KEY,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: T }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${key}`,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...headers,
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
}

/** Walks every page of the listing (7 per page) and returns the ids in order. */
async function listAll(base: string, query = ''): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | null = null;
  for (let pages = 0; pages < 100; pages++) {
    const q: string = `?limit=7${query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const r = await call<Page>(base, 'GET', `/v1/jobs${q}`);
    if (r.status !== 200) throw new Error(`GET /v1/jobs${q} answered ${r.status}: ${JSON.stringify(r.body)}`);
    ids.push(...r.body.items.map((j) => j.id));
    cursor = r.body.nextCursor;
    if (!cursor) return ids;
  }
  throw new Error('more than 100 pages');
}

describe('listing reads its own writes on any gateway replica', () => {
  let cluster: GantryCluster;
  let a: string;
  let b: string;
  /** Every job of the client tenant, newest last, with its priority and expected status. */
  const mine: { id: string; priority: string; status: string; single?: boolean }[] = [];

  beforeAll(async () => {
    // No worker: jobs stay queued unless cancelled, so the expected statuses are known exactly.
    cluster = await GantryCluster.start({ manual: true });
    cluster.spawn('scheduler');
    const gateway = async () => {
      const port = await freePort();
      const gw = cluster.spawn('gateway', { GATEWAY_PORT: String(port) });
      const url = `http://127.0.0.1:${port}`;
      await waitFor(
        async () => {
          if (!gw.running) throw new Error(`gateway exited: ${gw.tail(10)}`);
          // Ready, and a scheduler leads (it answers the queue route).
          const r = await fetch(`${url}/v1/queue`, { headers: { authorization: `Bearer ${CLIENT_KEY}` } }).catch(
            () => undefined,
          );
          return r?.status === 200;
        },
        { what: 'gateway ready with a leading scheduler', timeoutMs: START_TIMEOUT_MS, intervalMs: 100 },
      );
      return url;
    };
    [a, b] = await Promise.all([gateway(), gateway()]);
    expect(b).not.toBe(a);
  }, START_TIMEOUT_MS + 30_000);
  afterAll(async () => cluster?.stop());

  /** Lists on `base` at once and checks the whole listing and its filters against what was submitted. */
  async function expectListed(base: string): Promise<void> {
    // Every job exactly once (the jobs of one batch may be stored in any order among themselves, so compare sets).
    const same = async (query: string, want: typeof mine) => {
      const got = await listAll(base, query);
      expect(new Set(got).size).toBe(got.length);
      expect([...got].sort()).toEqual(want.map((j) => j.id).sort());
    };
    await same('', mine);
    for (const status of ['queued', 'cancelled']) {
      await same(
        `&status=${status}`,
        mine.filter((j) => j.status === status),
      );
    }
    for (const priority of ['high', 'low']) {
      await same(
        `&priority=${priority}`,
        mine.filter((j) => j.priority === priority),
      );
    }
    // Newest first: the single submits (one per request) appear in the order they were accepted, reversed.
    const all = await listAll(base);
    const singles = mine.filter((j) => j.single).map((j) => j.id);
    expect(all.filter((id) => singles.includes(id))).toEqual([...singles].reverse());
  }

  it('after single submits, on the other gateway', async () => {
    for (let i = 0; i < 6; i++) {
      const [to, from] = i % 2 === 0 ? [a, b] : [b, a];
      const priority = ['high', 'low', 'normal'][i % 3]!;
      const r = await call<View>(to, 'POST', '/v1/jobs', { type: 'noop', priority });
      expect(r.status).toBe(202);
      mine.push({ id: r.body.id, priority, status: 'queued', single: true });
      // Another tenant's job in between: never listed for this one.
      expect((await call(to, 'POST', '/v1/jobs', { type: 'noop', priority }, OTHER_TENANT_KEY)).status).toBe(202);
      await expectListed(from);
    }
  });

  it('after a batch of 12 jobs, on the other gateway', async () => {
    for (const [to, from] of [
      [a, b],
      [b, a],
    ] as const) {
      const jobs = Array.from({ length: 12 }, (_, i) => ({ type: 'noop', priority: i % 4 === 0 ? 'high' : 'low' }));
      const r = await call<{ jobs: View[] }>(to, 'POST', '/v1/batches', { jobs });
      expect(r.status).toBe(202);
      for (const j of r.body.jobs) mine.push({ id: j.id, priority: j.priority, status: 'queued' });
      await expectListed(from);
    }
  });

  it('after an idempotent submit and its repeat, on the other gateway', async () => {
    const key = `listing-${Date.now()}`;
    const body = { type: 'noop', priority: 'high' };
    const first = await call<View>(a, 'POST', '/v1/jobs', body, CLIENT_KEY, { 'idempotency-key': key });
    expect(first.status).toBe(202);
    mine.push({ id: first.body.id, priority: 'high', status: 'queued' });
    await expectListed(b);
    const again = await call<View>(b, 'POST', '/v1/jobs', body, CLIENT_KEY, { 'idempotency-key': key });
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
    await expectListed(a);
  });

  it('after a cancel, the status filters on the other gateway follow at once', async () => {
    for (const [to, from] of [
      [a, b],
      [b, a],
    ] as const) {
      const target = mine.find((j) => j.status === 'queued')!;
      expect((await call(to, 'POST', `/v1/jobs/${target.id}/cancel`)).status).toBe(200);
      target.status = 'cancelled';
      await expectListed(from);
    }
  });

  it('a listing with no scheduler leader is a 503 with Retry-After, not a stale page', async () => {
    await Promise.all(cluster.of('scheduler').map((s) => s.kill('SIGKILL')));
    const r = await fetch(`${a}/v1/jobs`, { headers: { authorization: `Bearer ${CLIENT_KEY}` } });
    expect(r.status).toBe(503);
    expect(r.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  });
});
