/**
 * No route shows a client another tenant's job ids (API.md §3): two tenants' jobs run on one real worker, and
 * `GET /v1/workers` lists to each client key only its own tenant's running job ids; the admin key sees both.
 * The whole stack runs as real processes (nats-server, S3-compatible store, gateway, scheduler, worker, notifier).
 */
import { ADMIN_KEY, CLIENT_KEY, GantryCluster, OTHER_TENANT_KEY, waitFor } from '@gantry/testing';

interface WorkerBody {
  id: string;
  busy: number;
  runningJobs: string[];
}

describe('tenant isolation of job ids (real stack)', () => {
  let cluster: GantryCluster;

  beforeAll(async () => {
    cluster = await GantryCluster.start({
      workers: 1,
      notifiers: 0,
      serviceEnv: { 'gpu-worker': { WORKER_SLOTS: '4' } },
    });
  }, 300_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it('GET /v1/workers shows each client only its own tenant’s running jobs; admin sees all', async () => {
    const long = { type: 'noop', input: { durationMs: 120_000 } };
    const mine = await cluster.submit(long, CLIENT_KEY);
    const theirs = await cluster.submit(long, OTHER_TENANT_KEY);
    const workers = (key: string) => cluster.api<WorkerBody[]>('GET', '/v1/workers', undefined, key);
    // Both running on the one worker (the admin view lists every id).
    await waitFor(
      async () => {
        const r = await workers(ADMIN_KEY);
        return r.status === 200 && r.body[0]?.runningJobs.length === 2 ? r.body : undefined;
      },
      { what: 'both jobs running', timeoutMs: 60_000, intervalMs: 100 },
    );
    const admin = await workers(ADMIN_KEY);
    expect(admin.body[0]!.runningJobs.sort()).toEqual([mine, theirs].sort());

    const client = await workers(CLIENT_KEY);
    expect(client.status).toBe(200);
    expect(client.body[0]!.runningJobs).toEqual([mine]);
    const other = await workers(OTHER_TENANT_KEY);
    expect(other.body[0]!.runningJobs).toEqual([theirs]);
    // Nothing else in the answer names the other tenant's job.
    expect(JSON.stringify(client.body)).not.toContain(theirs);
    expect(JSON.stringify(other.body)).not.toContain(mine);

    // And the job routes keep answering 404 across tenants.
    expect((await cluster.api('GET', `/v1/jobs/${theirs}`, undefined, CLIENT_KEY)).status).toBe(404);
    const list = await cluster.api<{ items: { id: string }[] }>('GET', '/v1/jobs', undefined, CLIENT_KEY);
    expect(list.body.items.map((j) => j.id)).not.toContain(theirs);

    for (const id of [mine, theirs]) {
      expect((await cluster.api('POST', `/v1/jobs/${id}/cancel`, undefined, ADMIN_KEY)).status).toBe(200);
    }
  });
});
