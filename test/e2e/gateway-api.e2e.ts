/**
 * The gateway with the whole system as real processes (nats-server, S3 store, scheduler, worker, notifier, gateway):
 * the queue and worker routes answered by the real scheduler, pause / drain / clear / config and their effect on
 * submits (503 draining, 429 queue full), queue positions, listing with filters and cursors, a batch run to the end,
 * an SSE stream of a real run, and the submit rate limit shared by two more gateway processes.
 */
import { STREAMS, SUBJECTS, systemClock, type BatchManifest, type JobEvent } from '@gantry/contracts';
import { decodeJson, NatsHandle } from '@gantry/jetstream';
import { JobStore } from '@gantry/job-store';
import { createLogger } from '@gantry/telemetry';
import { DeliverPolicy } from '@nats-io/jetstream';
import { ADMIN_KEY, CLIENT_KEY, GantryCluster, OTHER_TENANT_KEY, waitFor, within } from '@gantry/testing';

interface View {
  id: string;
  status: string;
  priority: string;
  type: string;
  queuePosition?: number;
  estimatedWaitSeconds?: number | null;
}
interface QueueState {
  paused: boolean;
  draining: boolean;
  depth: Record<'urgent' | 'high' | 'normal' | 'low' | 'total', number>;
  running: number;
  retrying: number;
  maxConcurrentJobs: number;
  availableTokens: number;
  maxQueueSize: number;
  workers: number;
}
interface Problem {
  type: string;
  status: number;
}

describe('gateway API with the whole system (real processes)', () => {
  let cluster: GantryCluster;

  beforeAll(async () => {
    // The repair consumer of the surviving gateway finishes a killed gateway's batches after 1 s.
    cluster = await GantryCluster.start({ workers: 1, serviceEnv: { gateway: { BATCH_REPAIR_AFTER_MS: '1000' } } });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  const q = () => cluster.api<QueueState>('GET', '/v1/queue');

  it('answers the queue, metrics, workers and concurrency routes from the scheduler', async () => {
    const state = await q();
    expect(state.status).toBe(200);
    for (const k of ['running', 'retrying', 'maxConcurrentJobs', 'availableTokens', 'maxQueueSize', 'workers'] as const)
      expect(typeof state.body[k]).toBe('number');
    for (const k of ['urgent', 'high', 'normal', 'low', 'total'] as const)
      expect(typeof state.body.depth[k]).toBe('number');
    expect(state.body.workers).toBe(1);
    const m = await cluster.api<{ queueLength: number; performance: Record<string, number> }>(
      'GET',
      '/v1/queue/metrics',
    );
    expect(m.status).toBe(200);
    expect(typeof m.body.queueLength).toBe('number');
    expect(typeof m.body.performance['uptimeSeconds']).toBe('number');
    const w = await cluster.api<{ id: string; slots: number; busy: number; gpus: unknown[]; runningJobs: string[] }[]>(
      'GET',
      '/v1/workers',
      undefined,
      CLIENT_KEY,
    );
    expect(w.status).toBe(200);
    expect(w.body[0]).toMatchObject({
      slots: expect.any(Number),
      busy: expect.any(Number),
      runningJobs: expect.any(Array),
    });
    const c = await cluster.api<Record<string, number>>('GET', '/v1/concurrency/stats');
    expect(Object.keys(c.body).sort()).toEqual([
      'activeJobs',
      'availableTokens',
      'maxParallelJobs',
      'queueSize',
      'workers',
    ]);
    expect((await cluster.api('POST', '/v1/queue/pause', undefined, CLIENT_KEY)).status).toBe(403);
  });

  it('pause holds jobs queued with their positions; resume runs them; clear cancels the queued ones', async () => {
    const paused = await cluster.api<QueueState>('POST', '/v1/queue/pause');
    expect(paused.status).toBe(200);
    expect(paused.body.paused).toBe(true);
    const a = await cluster.submit({ type: 'noop', input: {} }, CLIENT_KEY);
    const b = await cluster.submit({ type: 'noop', input: {} }, CLIENT_KEY);
    const viewB = await cluster.waitForJob<View>(b, (j) => j.queuePosition !== undefined, { what: 'a queue position' });
    expect(viewB.queuePosition).toBeGreaterThanOrEqual(1);
    expect(viewB.estimatedWaitSeconds).toBeNull();
    const viewA = await cluster.job<View>(a);
    expect(viewA.queuePosition).toBeLessThan(viewB.queuePosition!);
    // An urgent job goes to the front.
    const u = await cluster.api<View>('PUT', `/v1/jobs/${b}/priority`, { priority: 'urgent' }, CLIENT_KEY);
    expect(u.body.priority).toBe('urgent');
    await cluster.waitForJob<View>(b, (j) => j.queuePosition === 0, { what: 'b at the front' });

    const c = await cluster.submit({ type: 'noop', input: {} }, CLIENT_KEY);
    const cleared = await cluster.api<QueueState>('POST', '/v1/queue/clear');
    expect(cleared.status).toBe(200);
    for (const id of [a, b, c]) await cluster.waitForStatus(id, 'cancelled');

    const d = await cluster.submit({ type: 'noop', input: { durationMs: 10 } }, CLIENT_KEY);
    const resumed = await cluster.api<QueueState>('POST', '/v1/queue/resume');
    expect(resumed.body.paused).toBe(false);
    await cluster.waitForStatus(d, 'completed');
  });

  it('drain refuses submits with 503 + Retry-After until resume', async () => {
    expect((await cluster.api<QueueState>('POST', '/v1/queue/drain')).body.draining).toBe(true);
    const refused = await waitFor(async () => {
      const r = await cluster.api<Problem>('POST', '/v1/jobs', { type: 'noop' }, CLIENT_KEY);
      return r.status === 503 ? r : undefined;
    });
    expect(refused.body.type).toBe('urn:gantry:problem:draining');
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    await cluster.api('POST', '/v1/queue/resume');
    await waitFor(async () => (await cluster.api('POST', '/v1/jobs', { type: 'noop' }, CLIENT_KEY)).status === 202);
  });

  it('PUT /v1/queue/config applies at once: a small maxQueueSize makes submits 429 queue-full', async () => {
    await cluster.api('POST', '/v1/queue/pause');
    const set = await cluster.api<QueueState>('PUT', '/v1/queue/config', { maxQueueSize: 2 });
    expect(set.status).toBe(200);
    expect(set.body.maxQueueSize).toBe(2);
    expect((await cluster.api('PUT', '/v1/queue/config', { maxQueueSize: 0 })).status).toBe(400);
    const r = await waitFor(
      async () => {
        const x = await cluster.api<Problem>('POST', '/v1/jobs', { type: 'noop' }, CLIENT_KEY);
        return x.status === 429 ? x : undefined;
      },
      { what: 'a 429', timeoutMs: 20_000 },
    );
    expect(r.body.type).toBe('urn:gantry:problem:queue-full');
    expect(r.headers.get('retry-after')).toBeTruthy();
    await cluster.api('POST', '/v1/queue/clear');
    await cluster.api('PUT', '/v1/queue/config', { maxQueueSize: 100_000 });
    await cluster.api('POST', '/v1/queue/resume');
    await waitFor(async () => (await cluster.api('POST', '/v1/jobs', { type: 'noop' }, CLIENT_KEY)).status === 202, {
      timeoutMs: 20_000,
    });
  });

  it('lists jobs newest first with status, type and priority filters and cursor pages; tenants apart', async () => {
    const ids: string[] = [];
    for (const p of ['low', 'high', 'low', 'high', 'low']) {
      ids.push(await cluster.submit({ type: 'noop', input: { durationMs: 1 }, priority: p }, OTHER_TENANT_KEY));
    }
    for (const id of ids) await cluster.waitForStatus(id, 'completed');
    const cancelled = await cluster.submit({ type: 'noop', input: { durationMs: 60_000 } }, OTHER_TENANT_KEY);
    await cluster.api('POST', `/v1/jobs/${cancelled}/cancel`, undefined, OTHER_TENANT_KEY);
    await cluster.waitForStatus(cancelled, 'cancelled');
    const list = (query: string, key = OTHER_TENANT_KEY) =>
      cluster.api<{ items: View[]; nextCursor: string | null }>('GET', `/v1/jobs${query}`, undefined, key);

    const all = await waitFor(async () => {
      const r = await list('?limit=50');
      return r.body.items?.[0]?.id === cancelled && r.body.items[0].status === 'cancelled' ? r.body : undefined;
    });
    expect(all.items.map((j) => j.id)).toEqual([cancelled, ...[...ids].reverse()]);
    const highs = await waitFor(async () => {
      const r = await list('?priority=high&status=completed');
      return r.body.items.length === 2 ? r.body.items : undefined;
    });
    expect(highs.map((j) => j.id)).toEqual([ids[3], ids[1]]);
    // Filters read the index, which trails the records by a flush.
    await waitFor(async () => (await list('?status=cancelled')).body.items.map((j) => j.id).join() === cancelled, {
      what: 'the cancelled job under status=cancelled',
    });
    expect((await list('?type=ffmpeg')).body.items).toEqual([]);

    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const r = await list(`?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(r.status).toBe(200);
      seen.push(...r.body.items.map((j) => j.id));
      cursor = r.body.nextCursor;
    } while (cursor);
    expect(seen).toEqual(all.items.map((j) => j.id));

    const mine = await list('?limit=50', CLIENT_KEY);
    expect(mine.body.items.some((j) => ids.includes(j.id))).toBe(false);
    const asAdmin = await list('?tenant=other&limit=50', ADMIN_KEY);
    expect(asAdmin.body.items.map((j) => j.id)).toEqual(all.items.map((j) => j.id));
    expect((await list('?limit=0')).status).toBe(400);
    expect((await list('?cursor=garbage')).status).toBe(400);
    expect((await list('?sort=asc')).status).toBe(400);
  });

  it('runs a batch to the end; GET /v1/batches/{id} counts its jobs by status', async () => {
    const r = await cluster.api<{ id: string; jobs: View[] }>(
      'POST',
      '/v1/batches',
      { jobs: Array.from({ length: 5 }, (_, i) => ({ type: 'noop', input: { durationMs: 10, result: { i } } })) },
      CLIENT_KEY,
    );
    expect(r.status).toBe(202);
    const done = await waitFor(
      async () => {
        const g = await cluster.api<{ total: number; counts: Record<string, number> }>(
          'GET',
          `/v1/batches/${r.body.id}`,
          undefined,
          CLIENT_KEY,
        );
        return g.body.counts?.['completed'] === 5 ? g.body : undefined;
      },
      { what: 'the batch completed', timeoutMs: 30_000 },
    );
    expect(done).toEqual({
      id: r.body.id,
      total: 5,
      counts: { scheduled: 0, waiting: 0, queued: 0, running: 0, retrying: 0, completed: 5, failed: 0, cancelled: 0 },
    });
  });

  it('streams a real run as Server-Sent Events and ends after completion', async () => {
    const id = await cluster.submit({ type: 'noop', input: { durationMs: 300, progressSteps: 3 } }, CLIENT_KEY);
    const res = await fetch(`${cluster.gatewayUrl}/v1/jobs/${id}/events`, {
      headers: { authorization: `Bearer ${CLIENT_KEY}` },
    });
    expect(res.status).toBe(200);
    const text = await within(res.text(), 30_000, 'the event stream to end');
    const events = [...text.matchAll(/^event: (.+)$/gm)].map((m) => m[1]);
    expect(events[0]).toBe('job.queued');
    expect(events).toContain('job.started');
    expect(events.at(-1)).toBe('job.completed');
    const last = JSON.parse([...text.matchAll(/^data: (.+)$/gm)].at(-1)![1]!) as { type: string; data: View };
    expect(last).toMatchObject({ type: 'job.completed', data: { id, status: 'completed' } });
  });

  it('shares the submit rate limit between two more gateway processes', async () => {
    const RL_KEY = 'e2e-rate-limit-key-01';
    const main = cluster.gatewayUrl;
    const urls: string[] = [];
    try {
      for (let i = 0; i < 2; i++) {
        await cluster.startGateway({ RATE_LIMIT_SUBMITS_PER_MINUTE: '20', API_KEYS: `${RL_KEY}:client:rl` });
        urls.push(cluster.gatewayUrl);
      }
    } finally {
      cluster.gatewayUrl = main;
    }
    const statuses: number[] = [];
    for (let i = 0; i < 50; i++) {
      const res = await fetch(`${urls[i % 2]}/v1/jobs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${RL_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ type: 'noop', input: { durationMs: 1 } }),
      });
      statuses.push(res.status);
      if (res.status === 429) expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    }
    const accepted = statuses.filter((s) => s === 202).length;
    expect(accepted).toBeLessThanOrEqual(20);
    // Chunks reserved by one replica and not spent there are the only loss.
    expect(accepted).toBeGreaterThanOrEqual(16);
    expect(statuses.filter((s) => s !== 202 && s !== 429)).toEqual([]);
  });

  it('kill -9 of a gateway in the middle of batch submits leaves every accepted batch whole (repaired by another)', async () => {
    const main = cluster.gatewayUrl;
    const nats = await NatsHandle.connect({
      servers: [cluster.nats.url],
      name: 'e2e-batch-crash',
      logger: createLogger('e2e', 'silent'),
    });
    try {
      const startSeq = (await nats.jsm.streams.info(STREAMS.batches)).state.last_seq;
      // Each round kills the gateway right after a batch manifest of its appears — between the manifest and the job
      // records, the window the repair exists for — while two more batches are in flight.
      let incompleteAtKill = 0;
      for (let round = 0; round < 2; round++) {
        const gw = await cluster.startGateway();
        const url = cluster.gatewayUrl;
        cluster.gatewayUrl = main;
        const roundSeq = (await nats.jsm.streams.info(STREAMS.batches)).state.last_seq;
        const body = JSON.stringify({
          jobs: Array.from({ length: 800 }, () => ({ type: 'noop', input: { durationMs: 1 } })),
        });
        const posts = [0, 1, 2].map(() =>
          fetch(`${url}/v1/batches`, {
            method: 'POST',
            headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json' },
            body,
          }).then(
            async (r) => ({
              status: r.status,
              body: (await r.json().catch(() => undefined)) as { id?: string } | undefined,
            }),
            () => ({ status: 0, body: undefined }),
          ),
        );
        const manifest = await waitFor(
          async () => {
            const last = (await nats.jsm.streams.info(STREAMS.batches)).state.last_seq;
            if (last <= roundSeq) return undefined;
            const m = await nats.jsm.streams.getMessage(STREAMS.batches, { seq: last });
            return m?.subject.startsWith('gantry.v1.batch.') ? decodeJson<BatchManifest>(m.data) : undefined;
          },
          { what: 'a batch manifest', timeoutMs: 20_000, intervalMs: 1 },
        );
        await gw.kill('SIGKILL');
        const written = (await new JobStore(nats, systemClock).getMany(manifest.jobIds)).size;
        if (written < manifest.jobIds.length) incompleteAtKill++;
        const answers = await Promise.all(posts);
        // Whatever was answered 202 must be in the manifests below.
        for (const a of answers) if (a.status === 202) expect(a.body?.id).toEqual(expect.any(String));
      }
      // The kill landed between manifest and records at least once, so the repair had work to do.
      expect(incompleteAtKill).toBeGreaterThan(0);

      // Every accepted manifest: all of its jobs exist (the survivor repaired what the killed gateways left).
      const manifests = new Map<string, BatchManifest>();
      const everyBatch = new Set<string>();
      const info = await nats.jsm.streams.info(STREAMS.batches);
      for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
        const m = await nats.jsm.streams.getMessage(STREAMS.batches, { seq }).catch(() => null);
        if (!m || !m.subject.startsWith('gantry.v1.batch.')) continue;
        const b = decodeJson<BatchManifest>(m.data);
        everyBatch.add(b.id);
        if (seq > startSeq) manifests.set(b.id, b);
      }
      expect(manifests.size).toBeGreaterThanOrEqual(2);
      const store = new JobStore(nats, systemClock);
      for (const b of manifests.values()) {
        await waitFor(async () => (await store.getMany(b.jobIds)).size === b.jobIds.length, {
          what: `every job of batch ${b.id}`,
          // A manifest the killed gateway had pulled from the repair consumer comes back after its AckWait (15 s).
          timeoutMs: 45_000,
          intervalMs: 250,
        });
      }
      // And no job belongs to a batch without a manifest (nothing half-accepted and unknown).
      const consumer = await nats.js.consumers.get(STREAMS.jobs, {
        filter_subjects: SUBJECTS.jobsAll,
        deliver_policy: DeliverPolicy.All,
      });
      const batchIds = new Set<string>();
      const msgs = await consumer.consume();
      for await (const m of msgs) {
        const e = decodeJson<JobEvent>(m.data);
        if (e.job.batchId) batchIds.add(e.job.batchId);
        if (m.info.pending === 0) break;
      }
      await msgs.close();
      expect([...batchIds].filter((id) => !everyBatch.has(id))).toEqual([]);
    } finally {
      cluster.gatewayUrl = main;
      await nats.drain();
    }
  });
});
