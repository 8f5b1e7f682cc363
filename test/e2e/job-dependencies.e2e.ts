/**
 * Issue 17, job dependencies (real processes: two schedulers, a worker, a notifier, a gateway, nats-server). Jobs are
 * submitted over HTTP with `dependsOn`; the bulk and failover cases write children straight to the job store (the
 * first revision the gateway writes for them: `waiting`) to build thousands quickly. A chain A → B → C runs in order; a failed parent cancels its children and their
 * children with DEPENDENCY_FAILED (one terminal each, `job.waiting` then `job.cancelled` by webhook and SSE); a parent
 * already failed at submit ends the child at once; a waiting job can be cancelled and never runs; 2,000 children of
 * one parent are released in bounded time (the figure is logged); and a kill -9 of the leading scheduler, then of
 * every scheduler while a parent completes, releases every waiting child exactly once after the takeover.
 */
import { newId, newJob, systemClock, type JobRecord, type NewJobSpec, type StoredJob } from '@gantry/contracts';
import { mapBounded } from '@gantry/jetstream';
import { GantryCluster, WebhookReceiver, assertWholeHistory, waitFor, within } from '@gantry/testing';
import { ADMIN, SCHEDULER_E2E_ENV, StreamReader, leaderOf } from './support/scheduler-support';

const MAX = 6;

interface View {
  id: string;
  status: string;
  tenant: string;
  dependsOn?: string[];
  error?: { code: string; message: string };
}

const of = (h: StoredJob[], type: string) => h.filter((s) => s.event.type === type);
const types = (h: StoredJob[]) => h.map((s) => s.event.type);

describe('job dependencies (real processes)', () => {
  let cluster: GantryCluster;
  let reader: StreamReader;
  let hooks: WebhookReceiver;
  let tenant: string;
  const accepted = new Set<string>();

  const submit = async (body: Record<string, unknown>): Promise<View> => {
    const r = await cluster.api<View>('POST', '/v1/jobs', body);
    if (r.status !== 202) throw new Error(`submit answered ${r.status}: ${JSON.stringify(r.body)}`);
    accepted.add(r.body.id);
    return r.body;
  };

  /** A child as the gateway stores it: first revision `waiting` (newJob), in the parents' tenant. */
  const child = async (dependsOn: string[], over: Partial<NewJobSpec> = {}): Promise<JobRecord> => {
    const t = newJob(
      {
        id: newId(),
        tenant,
        type: 'noop',
        input: { durationMs: 20 },
        priority: 'normal',
        pool: 'default',
        timeoutSeconds: 60,
        maxAttempts: 1,
        retryDelaysMs: [0],
        metadata: {},
        dependsOn,
        ...over,
      },
      systemClock.now(),
    );
    expect(t.type).toBe('job.waiting');
    const s = await reader.jobs.create(t);
    accepted.add(s.record.id);
    return s.record;
  };

  /** A child submitted over HTTP: 202, `waiting`, `dependsOn` echoed. */
  const waitingJob = async (dependsOn: string[], body: Record<string, unknown> = {}): Promise<View> => {
    const v = await submit({ type: 'noop', input: { durationMs: 20 }, maxAttempts: 1, dependsOn, ...body });
    expect(v).toMatchObject({ status: 'waiting', dependsOn });
    return v;
  };

  const startedAt = async (id: string) => Date.parse(of(await reader.history(id), 'job.started')[0]!.record.startedAt!);
  const finishedAt = async (id: string) => Date.parse((await reader.record(id)).finishedAt!);

  beforeAll(async () => {
    hooks = await WebhookReceiver.start();
    cluster = await GantryCluster.start({
      schedulers: 2,
      workers: 1,
      env: { ...SCHEDULER_E2E_ENV, MAX_CONCURRENT_JOBS: String(MAX), WORKER_SLOTS: String(MAX) },
    });
    reader = await StreamReader.connect(cluster);
    const probe = await submit({ type: 'noop', input: { durationMs: 1 } });
    tenant = probe.tenant;
    // Settled before the tests count running jobs and tokens.
    await cluster.waitForStatus(probe.id, 'completed', { timeoutMs: 60_000 });
  });

  afterAll(async () => {
    await reader?.close();
    await cluster?.stop();
    await hooks?.close();
  });

  it('runs a chain A → B → C in order; waiting jobs hold no token, are not in depth, are listed and shown with dependsOn', async () => {
    const a = await submit({ type: 'noop', input: { durationMs: 4_000 } });
    const b = await waitingJob([a.id], { callbackUrl: `${hooks.url}/chain` });
    const c = await waitingJob([b.id], { callbackUrl: `${hooks.url}/chain` });
    await cluster.waitForStatus(a.id, 'running', { timeoutMs: 30_000 });
    const sse = fetch(`${cluster.gatewayUrl}/v1/jobs/${c.id}/events`, {
      headers: { authorization: `Bearer ${ADMIN}` },
    }).then((r) => r.text());

    const view = await cluster.job<View>(c.id);
    expect(view).toMatchObject({ status: 'waiting', dependsOn: [b.id] });
    // Counted apart from depth, in total and per pool (GET /v1/queue's `waiting`, a Gantry extension), holding no
    // token: the leader's statistics (broadcast, so awaited) show A alone running while B and C wait.
    const counted = await waitFor(
      async () => {
        const r = await cluster.api<{
          depth: { total: number };
          running: number;
          waiting?: number;
          pools?: { pool: string; waiting?: number }[];
        }>('GET', '/v1/queue');
        return r.body.waiting === 2 ? r.body : undefined;
      },
      { what: 'GET /v1/queue counting the two waiting jobs', timeoutMs: 30_000, intervalMs: 100 },
    );
    expect(counted.depth.total).toBe(0);
    expect(counted.running).toBe(1);
    expect(counted.pools?.find((p) => p.pool === 'default')?.waiting).toBe(2);
    const listed = await cluster.api<{ items: View[] }>('GET', '/v1/jobs?status=waiting&limit=100');
    expect(listed.status).toBe(200);
    expect(listed.body.items.map((v) => v.id)).toEqual(expect.arrayContaining([b.id, c.id]));

    await cluster.waitForStatus(c.id, 'completed', { timeoutMs: 60_000 });
    expect(await startedAt(b.id)).toBeGreaterThanOrEqual(await finishedAt(a.id));
    expect(await startedAt(c.id)).toBeGreaterThanOrEqual(await finishedAt(b.id));
    for (const id of [b.id, c.id])
      expect(types(await reader.history(id))).toEqual(['job.waiting', 'job.queued', 'job.started', 'job.completed']);

    await hooks.waitForCount((w) => w.path === '/chain' && (w.json as { type: string }).type === 'job.completed', 2, {
      timeoutMs: 30_000,
    });
    const mine = hooks
      .matching((w) => w.path === '/chain' && (w.json as { data: View }).data.id === c.id)
      .map((w) => w.json as { type: string; sequence: number; data: View })
      .sort((x, y) => x.sequence - y.sequence);
    expect(mine[0]).toMatchObject({ type: 'job.waiting', data: { status: 'waiting', dependsOn: [b.id] } });
    expect(mine.map((m) => m.type)).toEqual(['job.waiting', 'job.queued', 'job.started', 'job.completed']);
    const text = await within(sse, 30_000, 'the event stream to end');
    expect([...text.matchAll(/^event: (.+)$/gm)].map((m) => m[1])).toEqual([
      'job.waiting',
      'job.queued',
      'job.started',
      'job.completed',
    ]);
  }, 120_000);

  it('cascades a failed parent down the graph: children and grandchildren end cancelled DEPENDENCY_FAILED, once each', async () => {
    const a = await submit({
      type: 'noop',
      input: { durationMs: 1_000, failTimes: 1, retryable: false },
      maxAttempts: 1,
    });
    const ok = await submit({ type: 'noop', input: { durationMs: 1 } });
    const b = await waitingJob([ok.id, a.id], { callbackUrl: `${hooks.url}/cascade` });
    const c = await waitingJob([b.id], { callbackUrl: `${hooks.url}/cascade` });
    const d = await waitingJob([c.id, ok.id], { callbackUrl: `${hooks.url}/cascade` });
    const sse = fetch(`${cluster.gatewayUrl}/v1/jobs/${d.id}/events`, {
      headers: { authorization: `Bearer ${ADMIN}` },
    }).then((r) => r.text());

    await cluster.waitForStatus(a.id, 'failed', { timeoutMs: 30_000 });
    for (const x of [b, c, d]) await cluster.waitForStatus(x.id, 'cancelled', { timeoutMs: 30_000 });
    const views = await Promise.all([b, c, d].map((x) => cluster.job<View>(x.id)));
    expect(views.map((v) => v.error?.code)).toEqual(['DEPENDENCY_FAILED', 'DEPENDENCY_FAILED', 'DEPENDENCY_FAILED']);
    expect(views[0]!.error!.message).toContain(a.id);
    expect(views[1]!.error!.message).toContain(b.id);
    expect(views[2]!.error!.message).toContain(c.id);
    for (const x of [b, c, d]) expect(types(await reader.history(x.id))).toEqual(['job.waiting', 'job.cancelled']);

    await hooks.waitForCount((w) => w.path === '/cascade' && (w.json as { type: string }).type === 'job.cancelled', 3, {
      timeoutMs: 30_000,
    });
    for (const x of [b, c, d]) {
      const mine = hooks
        .matching((w) => w.path === '/cascade' && (w.json as { data: View }).data.id === x.id)
        .map((w) => w.json as { type: string; sequence: number; data: View })
        .sort((p, q) => p.sequence - q.sequence);
      expect(mine.map((m) => m.type)).toEqual(['job.waiting', 'job.cancelled']);
      expect(mine[1]!.data.error?.code).toBe('DEPENDENCY_FAILED');
    }
    const text = await within(sse, 30_000, 'the event stream to end');
    expect([...text.matchAll(/^event: (.+)$/gm)].map((m) => m[1])).toEqual(['job.waiting', 'job.cancelled']);

    // A child of a parent that is already failed (or cancelled) ends at once; one of a completed parent is released.
    const late = await waitingJob([a.id]);
    const afterOk = await waitingJob([ok.id]);
    await cluster.waitForStatus(late.id, 'cancelled', { timeoutMs: 30_000 });
    expect((await cluster.job<View>(late.id)).error?.code).toBe('DEPENDENCY_FAILED');
    await cluster.waitForStatus(afterOk.id, 'completed', { timeoutMs: 30_000 });
  }, 120_000);

  it('cancels a waiting job: it never runs when its parent completes', async () => {
    const a = await submit({ type: 'noop', input: { durationMs: 1_500 } });
    const b = await waitingJob([a.id]);
    const sibling = await waitingJob([a.id]);
    const c = await cluster.api<View>('POST', `/v1/jobs/${b.id}/cancel`);
    expect(c.status).toBe(200);
    expect(c.body).toMatchObject({ status: 'cancelled', error: { code: 'CANCELLED' } });
    const p = await cluster.api<View & { priority: string }>('PUT', `/v1/jobs/${sibling.id}/priority`, {
      priority: 'urgent',
    });
    expect(p.body).toMatchObject({ status: 'waiting', priority: 'urgent' });
    await cluster.waitForStatus(sibling.id, 'completed', { timeoutMs: 30_000 });
    // The sibling ran after the parent: the cancelled one had its chance and stayed cancelled.
    expect(types(await reader.history(b.id))).toEqual(['job.waiting', 'job.cancelled']);
    expect(of(await reader.history(sibling.id), 'job.queued')[0]!.record.priority).toBe('urgent');
  }, 60_000);

  it('releases 2,000 children of one parent in bounded time, in acceptance order', async () => {
    const N = 2_000;
    // The parent stays queued (paused queue) until all its children are written, then runs.
    await cluster.api('POST', '/v1/queue/pause');
    let ids: string[];
    let a: View;
    try {
      a = await submit({ type: 'noop', input: { durationMs: 200 } });
      // In a pool no worker serves: released children stay queued (the figure is the release, not the running).
      const made = await mapBounded(
        Array.from({ length: N }, (_, i) => i),
        32,
        () => child([a.id], { pool: 'deps-bench' }),
      );
      ids = made.map((r) => r.id);
      expect((await reader.record(ids[0]!)).status).toBe('waiting');
      expect((await reader.record(ids.at(-1)!)).status).toBe('waiting');
    } finally {
      await cluster.api('POST', '/v1/queue/resume');
    }
    await cluster.waitForStatus(a.id, 'completed', { timeoutMs: 60_000 });
    const parentDone = Date.parse((await reader.record(a.id)).finishedAt!);

    const records = await waitFor(
      async () => {
        const m = await reader.jobs.getMany(ids, { concurrency: 64 });
        return [...m.values()].every((s) => s.record.status === 'queued') ? m : undefined;
      },
      { what: `${N} children queued`, timeoutMs: 120_000, intervalMs: 500 },
    );
    const releasedAt = [...records.values()].map((s) => Date.parse(s.record.updatedAt));
    const ms = Math.max(...releasedAt) - parentDone;
    // The figure (docs/pipelines.md): stderr of the run.
    process.stderr.write(`[figure] ${N} children released ${ms} ms after their parent completed\n`);
    expect(ms).toBeLessThan(60_000);
    // FIFO by acceptance: queue keys follow the children's acceptance order.
    const byCreate = [...records.values()].sort((x, y) => x.record.createSeq! - y.record.createSeq!);
    const keys = byCreate.map((s) => s.record.queueSeq!);
    expect([...keys].sort((x, y) => x - y)).toEqual(keys);
    // One release each.
    const sample = await Promise.all(ids.slice(0, 20).map((id) => reader.history(id)));
    for (const h of sample) expect(types(h)).toEqual(['job.waiting', 'job.queued']);

    const cleared = await cluster.api('POST', '/v1/queue/clear');
    expect(cleared.status).toBe(200);
  }, 300_000);

  it('releases every waiting child exactly once across a kill -9 of the leader, then of every scheduler', async () => {
    // The parent must outlast what follows up to the kill of every scheduler (60 submits, a takeover, a spawn): 15 s
    // was too short once on a box loaded far beyond CI's. It ends by itself after that, with no scheduler running.
    const a = await submit({ type: 'noop', input: { durationMs: 30_000 } });
    await cluster.waitForStatus(a.id, 'running', { timeoutMs: 30_000 });
    const parentStarted = Date.now();
    const kids = await mapBounded(
      Array.from({ length: 50 }, (_, i) => i),
      16,
      () => child([a.id]),
    );
    const grandkids = await mapBounded(kids.slice(0, 10), 10, (k) => child([k.id, a.id]));

    await (await leaderOf(cluster)).kill('SIGKILL');
    cluster.spawn('scheduler');
    await leaderOf(cluster);
    // Every scheduler gone while the parent completes: nobody releases until the next takeover.
    for (const s of cluster.of('scheduler')) await s.kill('SIGKILL');
    expect({ status: (await reader.record(a.id)).status, afterMs: Date.now() - parentStarted }).toMatchObject({
      status: 'running',
    });
    await waitFor(async () => ((await reader.record(a.id)).status === 'completed' ? true : undefined), {
      what: 'the parent completed with no scheduler running',
      timeoutMs: 60_000,
      intervalMs: 100,
    });
    for (const k of [...kids, ...grandkids]) expect((await reader.record(k.id)).status).toBe('waiting');
    cluster.spawn('scheduler');
    cluster.spawn('scheduler');

    for (const k of [...kids, ...grandkids]) await cluster.waitForStatus(k.id, 'completed', { timeoutMs: 120_000 });
    for (const k of [...kids, ...grandkids])
      expect(types(await reader.history(k.id))).toEqual(['job.waiting', 'job.queued', 'job.started', 'job.completed']);
    const report = await assertWholeHistory(cluster.nats.url, { expectIds: accepted });
    expect(report.jobs).toBeGreaterThanOrEqual(accepted.size);
  }, 300_000);
});
