/**
 * Issue 4, cancel and admin: cancelling queued (never starts) and running jobs (killed, `cancelled` within seconds),
 * pause/resume, drain (503), clear, runtime config kept across a scheduler restart and never lowering a stream limit,
 * backpressure at maxQueueSize (429 + Retry-After), the queue/metrics/concurrency read routes and the KEDA demand gauge.
 */
import { CONSUMERS, STREAMS } from '@gantry/contracts';
import { GantryCluster, waitFor } from '@gantry/testing';
import {
  SCHEDULER_E2E_ENV,
  StreamReader,
  TENANT_KEYS,
  peakBy,
  runIntervals,
  submitAll,
} from './support/scheduler-support';

interface View {
  id: string;
  status: string;
  attempts: number;
  startedAt?: string;
  finishedAt?: string;
  error?: { code: string };
}
interface Queue {
  paused: boolean;
  draining: boolean;
  depth: { urgent: number; high: number; normal: number; low: number; total: number };
  running: number;
  retrying: number;
  maxConcurrentJobs: number;
  availableTokens: number;
  maxQueueSize: number;
  workers: number;
}

describe('cancel and queue administration (real processes)', () => {
  let cluster: GantryCluster;
  let reader: StreamReader;

  beforeAll(async () => {
    cluster = await GantryCluster.start({
      workers: 1,
      env: { ...SCHEDULER_E2E_ENV, MAX_CONCURRENT_JOBS: '4', WORKER_SLOTS: '4', MAX_QUEUE_SIZE: '1000' },
    });
    reader = await StreamReader.connect(cluster);
  });

  afterAll(async () => {
    await reader?.close();
    await cluster?.stop();
  });

  const queue = async () => (await cluster.api<Queue>('GET', '/v1/queue')).body;
  const post = async (op: string, expected = 200) => {
    const r = await cluster.api<Queue>('POST', `/v1/queue/${op}`);
    expect(r.status).toBe(expected);
    return r.body;
  };

  beforeEach(async () => {
    await post('clear');
    await post('resume');
    await waitFor(async () => (await queue()).running === 0, { what: 'an idle queue', timeoutMs: 30_000 });
  });

  it('cancels a queued job (it never starts) and a running one (killed, cancelled within seconds)', async () => {
    await post('pause');
    const queued = await cluster.submit({ type: 'noop', input: {} });
    const c = await cluster.api<View>('POST', `/v1/jobs/${queued}/cancel`);
    expect(c.status).toBe(200);
    expect(c.body).toMatchObject({ status: 'cancelled', attempts: 0, error: { code: 'CANCELLED' } });
    expect((await cluster.api('POST', `/v1/jobs/${queued}/cancel`)).status).toBe(409);
    await post('resume');
    // A job submitted after it runs and completes; the cancelled one never started.
    await cluster.waitForStatus(await cluster.submit({ type: 'noop', input: {} }), 'completed');
    const v = await cluster.job<View>(queued);
    expect(v.startedAt).toBeUndefined();
    expect((await reader.history(queued)).some((s) => s.event.type === 'job.started')).toBe(false);

    const running = await cluster.submit({ type: 'noop', input: { durationMs: 60_000, progressSteps: 600 } });
    await cluster.waitForStatus(running, 'running');
    const at = Date.now();
    const r = await cluster.api<View>('POST', `/v1/jobs/${running}/cancel`);
    expect(r.status).toBe(200);
    const done = (await cluster.waitForStatus(running, 'cancelled', { timeoutMs: 5_000 })) as unknown as View;
    expect(done.error?.code).toBe('CANCELLED');
    expect(Date.parse(done.finishedAt!) - at).toBeLessThan(3_000);
    await waitFor(async () => (await queue()).running === 0, { what: 'the slot back' });
  });

  it('pauses dispatching (running work goes on), resumes, drains (503 for new work) and clears', async () => {
    const long = await cluster.submit({ type: 'noop', input: { durationMs: 1_500 } });
    await cluster.waitForStatus(long, 'running');
    const paused = await post('pause');
    expect(paused.paused).toBe(true);
    const waiting = await cluster.submit({ type: 'noop', input: {} });
    await cluster.waitForStatus(long, 'completed');
    expect((await cluster.job<View>(waiting)).status).toBe('queued');
    expect((await post('resume')).paused).toBe(false);
    await cluster.waitForStatus(waiting, 'completed');

    const slow = await cluster.submit({ type: 'noop', input: { durationMs: 800 } });
    const drained = await post('drain');
    expect(drained.draining).toBe(true);
    const refused = await waitFor(
      async () => {
        const r = await cluster.api('POST', '/v1/jobs', { type: 'noop', input: {} });
        return r.status === 503 ? r : undefined;
      },
      { what: 'submissions refused while draining' },
    );
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(refused.headers.get('content-type')).toMatch(/problem\+json/);
    // Draining finishes what is there.
    await cluster.waitForStatus(slow, 'completed');
    expect((await post('resume')).draining).toBe(false);
    await waitFor(async () => (await cluster.api('POST', '/v1/jobs', { type: 'noop', input: {} })).status === 202, {
      what: 'submissions accepted again',
    });

    await post('pause');
    const ids = await submitAll(
      cluster,
      Array.from({ length: 8 }, (_, i) => ({ body: { type: 'noop', input: {}, priority: i % 2 ? 'high' : 'low' } })),
    );
    await waitFor(async () => (await queue()).depth.total >= 8, { what: 'eight queued' });
    const cleared = await post('clear');
    expect(cleared.depth.total).toBe(0);
    for (const id of ids) expect((await cluster.job<View>(id)).status).toBe('cancelled');
    await post('resume');
    // Client keys may read but not administer.
    expect((await cluster.api('POST', '/v1/queue/pause', undefined, TENANT_KEYS.a)).status).toBe(403);
    expect((await cluster.api('GET', '/v1/queue', undefined, TENANT_KEYS.a)).status).toBe(200);
  });

  it('applies maxConcurrentJobs at runtime, keeps it across a scheduler restart and never lowers stream limits', async () => {
    const streamLimits = async () => {
      const out: Record<string, unknown> = {};
      for await (const si of reader.nats.jsm.streams.list()) {
        const c = si.config;
        out[c.name] = [c.max_msgs, c.max_bytes, c.max_age, c.max_msgs_per_subject, c.max_msg_size];
      }
      return out;
    };
    const before = await streamLimits();
    expect((await cluster.api('PUT', '/v1/queue/config', { maxConcurrentJobs: -1 })).status).toBe(400);
    expect((await cluster.api('PUT', '/v1/queue/config', { maxConcurrentJobs: 1, bogus: 1 })).status).toBe(400);
    const r = await cluster.api<Queue>('PUT', '/v1/queue/config', { maxConcurrentJobs: 1 });
    expect(r.status).toBe(200);
    expect(r.body.maxConcurrentJobs).toBe(1);

    const scheduler = cluster.of('scheduler')[0]!;
    await scheduler.kill('SIGKILL');
    cluster.spawn('scheduler');
    await waitFor(
      async () => {
        const q = await cluster.api<Queue>('GET', '/v1/queue');
        return q.status === 200 && q.body.maxConcurrentJobs === 1 ? q.body : undefined;
      },
      { what: 'the restarted scheduler to keep maxConcurrentJobs = 1', timeoutMs: 30_000 },
    );

    const one = await submitAll(
      cluster,
      Array.from({ length: 4 }, () => ({ body: { type: 'noop', input: { durationMs: 250 } } })),
    );
    for (const id of one) await cluster.waitForStatus(id, 'completed');
    const serial = [];
    for (const id of one) serial.push(...runIntervals(await reader.history(id)));
    expect(peakBy(serial, () => ['all']).get('all')).toBe(1);

    expect((await cluster.api<Queue>('PUT', '/v1/queue/config', { maxConcurrentJobs: 3 })).body.maxConcurrentJobs).toBe(
      3,
    );
    const three = await submitAll(
      cluster,
      Array.from({ length: 6 }, () => ({ body: { type: 'noop', input: { durationMs: 600 } } })),
    );
    for (const id of three) await cluster.waitForStatus(id, 'completed');
    const parallel = [];
    for (const id of three) parallel.push(...runIntervals(await reader.history(id)));
    expect(peakBy(parallel, () => ['all']).get('all')).toBe(3);
    expect(await streamLimits()).toEqual(expect.objectContaining(before));
    await cluster.api('PUT', '/v1/queue/config', { maxConcurrentJobs: 4 });
  });

  it('refuses submissions beyond maxQueueSize with 429 and Retry-After, changing nothing', async () => {
    await post('pause');
    const set = await cluster.api<Queue>('PUT', '/v1/queue/config', { maxQueueSize: 3 });
    expect(set.body.maxQueueSize).toBe(3);
    await submitAll(
      cluster,
      Array.from({ length: 3 }, () => ({ body: { type: 'noop', input: {} } })),
      1,
    );
    // The gateway judges from the leader's broadcast statistics: wait until they show the full queue.
    const full = await waitFor(
      async () => {
        const res = await cluster.api<{ status: number }>('POST', '/v1/jobs', { type: 'noop', input: {} });
        return res.status === 429 ? res : undefined;
      },
      { what: 'a 429 at the queue limit' },
    );
    expect(Number(full.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(full.headers.get('content-type')).toMatch(/problem\+json/);
    const q = await queue();
    expect(q.depth.total).toBe(3);
    expect(q.maxQueueSize).toBe(3);
    // The KEDA demand gauge follows the queued depth of the pool.
    const pending = () =>
      reader.nats.jsm.consumers.info(STREAMS.demand, CONSUMERS.demand('default')).then((c) => c.num_pending);
    await waitFor(async () => (await pending()) === 3, { what: 'demand_default at 3' });

    const metrics = await cluster.api<Record<string, unknown>>('GET', '/v1/queue/metrics');
    expect(metrics.body).toMatchObject({
      queueLength: 3,
      activeJobs: 0,
      activeWorkers: 1,
      queueUtilizationPercent: 100,
      performance: expect.objectContaining({ totalJobsProcessed: expect.any(Number) }),
    });
    const stats = await cluster.api<Record<string, unknown>>('GET', '/v1/concurrency/stats');
    expect(stats.body).toEqual({ maxParallelJobs: 4, queueSize: 3, activeJobs: 0, availableTokens: 4, workers: 1 });

    await cluster.api('PUT', '/v1/queue/config', { maxQueueSize: 1_000 });
    await post('clear');
    await post('resume');
    await waitFor(async () => (await pending()) === 0, { what: 'demand_default back at 0' });
  });
});
