/**
 * Issue 4, ordering: strict priority and FIFO within a level through the real processes, exact queue positions,
 * reprioritizing that keeps the submission order, and an urgent job submitted behind a long queue of normal jobs
 * taking the next free slot. One worker slot and one token make the start order observable.
 */
import { GantryCluster, waitFor } from '@gantry/testing';
import { ADMIN, SCHEDULER_E2E_ENV, submitAll } from './support/scheduler-support';

interface View {
  id: string;
  status: string;
  priority: string;
  queuePosition?: number;
  estimatedWaitSeconds?: number | null;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
}

describe('scheduler ordering (real processes)', () => {
  let cluster: GantryCluster;

  beforeAll(async () => {
    cluster = await GantryCluster.start({
      workers: 1,
      env: { ...SCHEDULER_E2E_ENV, MAX_CONCURRENT_JOBS: '1', WORKER_SLOTS: '1' },
    });
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  // Each test starts from an empty, running queue whatever the previous one left behind.
  beforeEach(async () => {
    expect((await cluster.api('POST', '/v1/queue/clear')).status).toBe(200);
    expect((await cluster.api('POST', '/v1/queue/resume')).status).toBe(200);
    await waitFor(
      async () => {
        const r = await cluster.api<{ depth: { total: number }; running: number }>('GET', '/v1/queue');
        return r.body.depth.total === 0 && r.body.running === 0;
      },
      { what: 'an idle queue', timeoutMs: 30_000, intervalMs: 100 },
    );
  });

  const view = (id: string) => cluster.job<View>(id);
  const admin = async (op: 'pause' | 'resume' | 'clear') => {
    const r = await cluster.api('POST', `/v1/queue/${op}`);
    expect(r.status).toBe(200);
  };
  const started = async (ids: string[]) => {
    const views = await Promise.all(ids.map(view));
    return views.sort((a, b) => Date.parse(a.startedAt!) - Date.parse(b.startedAt!)).map((v) => v.id);
  };

  it('runs strict priority, FIFO within a level, with exact positions while queued', async () => {
    await admin('pause');
    const plan: [string, string][] = [
      ['n1', 'normal'],
      ['l1', 'low'],
      ['h1', 'high'],
      ['n2', 'normal'],
      ['u1', 'urgent'],
      ['h2', 'high'],
      ['n3', 'normal'],
      ['l2', 'low'],
    ];
    const ids: Record<string, string> = {};
    // One at a time: FIFO follows the order in which submissions were accepted.
    for (const [name, priority] of plan)
      ids[name] = await cluster.submit({ type: 'noop', input: { durationMs: 30 }, priority, metadata: { name } });
    const expected = ['u1', 'h1', 'h2', 'n1', 'n2', 'n3', 'l1', 'l2'];
    await waitFor(
      async () => {
        const views = await Promise.all(expected.map((n) => view(ids[n]!)));
        return views.every((v, i) => v.queuePosition === i) ? views : undefined;
      },
      { what: 'queue positions in priority order', timeoutMs: 15_000, intervalMs: 100 },
    );
    // Paused: no estimate.
    expect((await view(ids['n1']!)).estimatedWaitSeconds).toBeNull();
    const q = await cluster.api<{ depth: Record<string, number>; paused: boolean }>('GET', '/v1/queue');
    expect(q.body).toMatchObject({ paused: true, depth: { urgent: 1, high: 2, normal: 3, low: 2, total: 8 } });

    await admin('resume');
    for (const n of expected) await cluster.waitForStatus(ids[n]!, 'completed');
    expect(await started(expected.map((n) => ids[n]!))).toEqual(expected.map((n) => ids[n]));
    // Once durations have been measured, a job waiting behind a running one gets an estimate.
    const busy = await cluster.submit({ type: 'noop', input: { durationMs: 5_000 } });
    await cluster.waitForStatus(busy, 'running');
    const probe = await cluster.submit({ type: 'noop', input: {} });
    const v = await cluster.waitForJob<View>(probe, (j) => j.queuePosition === 0);
    expect(v.estimatedWaitSeconds).toEqual(expect.any(Number));
    expect(v.estimatedWaitSeconds).toBeGreaterThan(0);
    await cluster.api('POST', `/v1/jobs/${busy}/cancel`);
  });

  it('keeps the submission order when jobs are reprioritized', async () => {
    await admin('pause');
    const [a, b, c, d] = await submitAll(
      cluster,
      ['a', 'b', 'c', 'd'].map((name) => ({ body: { type: 'noop', input: { durationMs: 20 }, metadata: { name } } })),
      1,
    );
    expect((await cluster.api('PUT', `/v1/jobs/${c}/priority`, { priority: 'high' })).status).toBe(200);
    const r = await cluster.api<View>('PUT', `/v1/jobs/${b}/priority`, { priority: 'high' });
    expect(r.status).toBe(200);
    expect(r.body.priority).toBe('high');
    // b was submitted before c: at the same level it runs first, though it was promoted later.
    const order = [b!, c!, a!, d!];
    await waitFor(
      async () => {
        const views = await Promise.all(order.map(view));
        return views.every((x, i) => x.queuePosition === i);
      },
      { what: 'positions after reprioritizing', timeoutMs: 15_000, intervalMs: 100 },
    );
    await admin('resume');
    for (const id of order) await cluster.waitForStatus(id, 'completed');
    expect(await started(order)).toEqual(order);
    expect((await cluster.api('PUT', `/v1/jobs/${a}/priority`, { priority: 'low' })).status).toBe(409);
  });

  it('starts an urgent job at the next free slot behind a long queue of normal jobs', async () => {
    await admin('pause');
    const normals = await submitAll(
      cluster,
      Array.from({ length: 120 }, () => ({ body: { type: 'noop', input: { durationMs: 150 } } })),
    );
    await admin('resume');
    await waitFor(
      async () => {
        const views = await Promise.all(normals.slice(0, 4).map(view));
        return views.filter((x) => x.status === 'completed').length >= 2;
      },
      { what: 'a few normal jobs to finish', timeoutMs: 30_000, intervalMs: 100 },
    );
    const urgent = await cluster.submit({ type: 'noop', input: { durationMs: 10 }, priority: 'urgent' }, ADMIN);
    const done = await cluster.waitForStatus(urgent, 'completed', { timeoutMs: 20_000 });
    const accepted = Date.parse(String(done['createdAt']));
    const urgentStart = Date.parse(String(done['startedAt']));
    const views = await Promise.all(normals.map(view));
    // Normal jobs that started after the urgent one was accepted and before it started: at most the one whose slot
    // was being handed over at that moment (dispatched before the urgent job's revision reached the scheduler).
    const jumped = views.filter((x) => {
      const s = x.startedAt ? Date.parse(x.startedAt) : undefined;
      return s !== undefined && s >= accepted && s < urgentStart;
    });
    expect(jumped.length).toBeLessThanOrEqual(1);
    // Many normal jobs were still waiting when it ran.
    expect(views.filter((x) => !x.startedAt || Date.parse(x.startedAt) > urgentStart).length).toBeGreaterThan(50);
    await admin('clear');
    const q = await waitFor(
      async () => {
        const r = await cluster.api<{ depth: { total: number } }>('GET', '/v1/queue');
        return r.body.depth.total === 0 ? r.body : undefined;
      },
      { what: 'an empty queue after clear' },
    );
    expect(q.depth.total).toBe(0);
  });
});
