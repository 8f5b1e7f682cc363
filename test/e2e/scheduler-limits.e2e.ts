/**
 * Issue 4, tokens: every job's runs are recorded (from the `job.started` revision to the one that ended the attempt)
 * and the number running at once never exceeds maxConcurrentJobs, a worker's slots, TENANT_MAX_CONCURRENT_JOBS, a
 * GPU's job slots or its memory. Workers report GPUs through a fake `nvidia-smi` on their NVIDIA_SMI path.
 * Jobs no GPU of their pool can fit are refused at submit (live worker GPUs, or POOLS when declared).
 */
import type { GpuInfo } from '@gantry/contracts';
import { GantryCluster, assertWholeHistory, waitFor } from '@gantry/testing';
import {
  SCHEDULER_E2E_ENV,
  StreamReader,
  TENANT_KEYS,
  gpuWorkerEnv,
  peakBy,
  runIntervals,
  submitAll,
  workerIdOf,
  type RunInterval,
} from './support/scheduler-support';

const MAX = 5;
const TENANT_CAP = 2;
const gpusA: GpuInfo[] = [
  { index: 0, uuid: 'GPU-aaaa-0', name: 'Fake L4', memoryTotalMb: 24_000 },
  { index: 1, uuid: 'GPU-aaaa-1', name: 'Fake L4', memoryTotalMb: 24_000 },
];
const gpusB: GpuInfo[] = [{ index: 0, uuid: 'GPU-bbbb-0', name: 'Fake T4', memoryTotalMb: 16_000 }];
const memoryOf = new Map([...gpusA, ...gpusB].map((g) => [g.uuid, g.memoryTotalMb]));

describe('scheduler tokens and GPU memory (real processes, fake GPUs)', () => {
  let cluster: GantryCluster;
  let reader: StreamReader;
  const slots = new Map<string, number>();

  beforeAll(async () => {
    cluster = await GantryCluster.start({
      workers: 0,
      env: {
        ...SCHEDULER_E2E_ENV,
        MAX_CONCURRENT_JOBS: String(MAX),
        TENANT_MAX_CONCURRENT_JOBS: String(TENANT_CAP),
        POOLS: 'declared=2x40000',
      },
    });
    const a = cluster.spawn('gpu-worker', gpuWorkerEnv(gpusA, 2));
    const b = cluster.spawn('gpu-worker', gpuWorkerEnv(gpusB, 2));
    const cpu = cluster.spawn('gpu-worker', { GPU_DISCOVERY: 'false', WORKER_SLOTS: '2' });
    slots.set(await workerIdOf(a), 4);
    slots.set(await workerIdOf(b), 2);
    slots.set(await workerIdOf(cpu), 2);
    const workers = await cluster.waitForWorkers(3);
    expect(workers.map((w) => w.id).sort()).toEqual([...slots.keys()].sort());
    reader = await StreamReader.connect(cluster);
  });

  afterAll(async () => {
    await reader?.close();
    await cluster?.stop();
  });

  it('lists the workers with the GPUs they reported', async () => {
    const r = await cluster.api<{ id: string; slots: number; gpus: GpuInfo[] }[]>('GET', '/v1/workers');
    const byId = new Map(r.body.map((w) => [w.id, w]));
    for (const [id, n] of slots) expect(byId.get(id)?.slots).toBe(n);
    expect(r.body.flatMap((w) => w.gpus.map((g) => g.uuid)).sort((x, y) => x.localeCompare(y))).toEqual([
      'GPU-aaaa-0',
      'GPU-aaaa-1',
      'GPU-bbbb-0',
    ]);
  });

  it('refuses at submit a job no GPU of its pool can fit, and accepts one that fits', async () => {
    const submit = (body: Record<string, unknown>) =>
      cluster.api<{ errors?: { field: string }[] }>('POST', '/v1/jobs', body);
    // Undeclared pool: judged against the GPUs live workers reported (largest 24 000 MB, at most 2 per worker).
    const tooBig = await submit({ type: 'noop', input: {}, gpu: { count: 1, memoryMb: 30_000 } });
    expect(tooBig.status).toBe(400);
    expect(tooBig.body.errors?.[0]?.field).toBe('gpu');
    expect((await submit({ type: 'noop', input: {}, gpu: { count: 3, memoryMb: 1_000 } })).status).toBe(400);
    // Declared pool (POOLS=declared=2x40000), no worker in it yet: the declaration decides.
    expect(
      (await submit({ type: 'noop', input: {}, pool: 'declared', gpu: { count: 1, memoryMb: 50_000 } })).status,
    ).toBe(400);
    const fits = await cluster.api<{ id: string; status: string }>('POST', '/v1/jobs', {
      type: 'noop',
      input: {},
      pool: 'declared',
      gpu: { count: 1, memoryMb: 30_000 },
    });
    expect(fits.status).toBe(202);
    expect(fits.body.status).toBe('queued');
    expect((await cluster.api('POST', `/v1/jobs/${fits.body.id}/cancel`)).status).toBe(200);
  });

  it('never runs more than the global, tenant, worker-slot, GPU-slot and GPU-memory limits allow', async () => {
    const shapes: Record<string, unknown>[] = [
      { gpu: { count: 1, memoryMb: 14_000 } },
      { gpu: { count: 1, memoryMb: 10_000 } },
      { gpu: { count: 2, memoryMb: 8_000 } },
      { gpu: { count: 0, memoryMb: 0 } },
      {},
    ];
    const keys = [TENANT_KEYS.a, TENANT_KEYS.b, TENANT_KEYS.c];
    const jobs = Array.from({ length: 45 }, (_, i) => ({
      key: keys[i % 3]!,
      body: {
        type: 'noop',
        input: { durationMs: 200 + ((i * 37) % 5) * 60 },
        priority: (['normal', 'high', 'low'] as const)[i % 3],
        ...shapes[i % shapes.length],
      },
    }));
    const ids = await submitAll(cluster, jobs, 6);
    for (const id of ids) await cluster.waitForStatus(id, 'completed', { timeoutMs: 120_000 });

    const runs: RunInterval[] = [];
    for (const id of ids) runs.push(...runIntervals(await reader.history(id)));
    expect(runs).toHaveLength(ids.length);

    const global = peakBy(runs, () => ['all']).get('all')!;
    expect(global).toBeLessThanOrEqual(MAX);
    // The limit was actually reached (the test would not notice a cap that is never approached).
    expect(global).toBeGreaterThanOrEqual(3);

    const perTenant = peakBy(runs, (r) => [r.tenant]);
    for (const [tenant, peak] of perTenant) expect([tenant, peak <= TENANT_CAP]).toEqual([tenant, true]);
    expect(Math.max(...perTenant.values())).toBe(TENANT_CAP);

    for (const [worker, peak] of peakBy(runs, (r) => [r.workerId])) {
      expect([worker, peak <= slots.get(worker)!]).toEqual([worker, true]);
    }
    for (const [uuid, peak] of peakBy(runs, (r) => r.gpus)) expect([uuid, peak <= 2]).toEqual([uuid, true]);
    const memory = peakBy(
      runs,
      (r) => r.gpus,
      (r) => r.memoryMb,
    );
    for (const [uuid, peak] of memory) expect([uuid, peak <= memoryOf.get(uuid)!]).toEqual([uuid, true]);
    // Someone shared a GPU (two 10 GB jobs on a 24 GB card, or a GPU job beside a GPU-less one).
    expect(Math.max(...peakBy(runs, (r) => r.gpus).values())).toBe(2);

    // Every GPU job got exactly the GPUs it asked for; CPU-only jobs got none.
    for (const id of ids) {
      const r = await reader.record(id);
      if (r.gpu && r.gpu.count >= 1) expect(r.gpus).toHaveLength(r.gpu.count);
      if (r.gpu?.count === 0) expect(r.gpus ?? []).toEqual([]);
    }

    // Every generation of every job in the stream ended once, attempts never overlapped (the earlier tests' jobs
    // may still wait on a pool without workers: they need only a valid path).
    const whole = await assertWholeHistory(cluster.nats.url, { expectIds: ids, settled: ids });
    expect(whole.jobs).toBeGreaterThanOrEqual(ids.length);

    // No token leaked.
    const stats = await waitFor(
      async () => {
        const s = await cluster.api<{ activeJobs: number; availableTokens: number; maxParallelJobs: number }>(
          'GET',
          '/v1/concurrency/stats',
        );
        return s.body.activeJobs === 0 ? s.body : undefined;
      },
      { what: 'all tokens back' },
    );
    expect(stats).toMatchObject({ availableTokens: MAX, maxParallelJobs: MAX });
  });
});
