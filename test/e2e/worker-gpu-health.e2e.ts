/**
 * Live GPUs through the whole system (real scheduler, gateway and worker processes; real nats-server and S3 store):
 * the worker's fake `nvidia-smi` lists a whole H100 (GPU 0) and an H100 split into two MIG instances (GPU 1), and the
 * test rewrites what it reports. Proves: `GET /v1/workers` shows live figures, MIG instances and health; a job goes on
 * a MIG instance with `CUDA_VISIBLE_DEVICES=MIG-…`; admission waits for live free memory, not just the reservation
 * budget; an admin cordon stops placement on a GPU until it is uncordoned; every bad cordon request is a clear 4xx.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_KEY, CLIENT_KEY, GantryCluster, freePort, repoRoot, waitFor } from '@gantry/testing';

const FIXTURES = join(repoRoot(), 'apps', 'gpu-worker', 'test', 'fixtures');
const GPU0 = 'GPU-11111111-2222-3333-4444-555555555555';
const GPU1 = 'GPU-66666666-7777-8888-9999-000000000000';
const MIG_SMALL = 'MIG-aaaaaaaa-0000-0000-0000-000000000001';
const MIG_BIG = 'MIG-aaaaaaaa-0000-0000-0000-000000000002';

interface GpuView {
  index: number;
  uuid: string;
  memoryTotalMb: number;
  memoryUsedMb: number | null;
  memoryFreeMb: number | null;
  sampledAt: string | null;
  mig: boolean;
  health: string;
  cordonReason?: string;
}
interface WorkerView {
  id: string;
  gpus: GpuView[];
}
interface View {
  id: string;
  status: string;
  gpus?: string[];
  result?: Record<string, unknown>;
}
interface ProblemBody {
  status: number;
  detail: string;
  errors?: { field: string }[];
}

describe('live GPU telemetry, MIG, admission on free memory and cordons (real processes, fake nvidia-smi)', () => {
  let cluster: GantryCluster;
  let smiDir: string;
  let workerId: string;

  /** GPU 0's live memory as the fake reports it (GPU 1 is in MIG mode: its own row does not matter here). */
  const gpu0Uses = (usedMb: number) =>
    writeFileSync(
      join(smiDir, 'telemetry.csv'),
      `${GPU0}, 00000000:1B:00.0, ${usedMb}, ${81559 - usedMb}, 50, 60, 0\n${GPU1}, 00000000:1C:00.0, 0, 81559, 0, 40, 0\n`,
    );

  beforeAll(async () => {
    smiDir = mkdtempSync(join(tmpdir(), 'gantry-e2e-smi-'));
    writeFileSync(
      join(smiDir, 'mig'),
      [
        'gpu=1   MIG 1g.10gb     Device  0: (UUID: MIG-aaaaaaaa-0000-0000-0000-000000000001)',
        'gpu=1   MIG 3g.40gb     Device  1: (UUID: MIG-aaaaaaaa-0000-0000-0000-000000000002)',
      ].join('\n') + '\n',
    );
    // Something outside Gantry holds 70 GB of GPU 0.
    gpu0Uses(70_000);
    cluster = await GantryCluster.start({ manual: true, env: { JOB_TYPES_FILE: join(FIXTURES, 'catalog.yaml') } });
    cluster.spawn('scheduler', { GPU_MEMORY_MARGIN_MB: '512' });
    cluster.spawn('gpu-worker', {
      GPU_DISCOVERY: 'true',
      NVIDIA_SMI: join(FIXTURES, 'fake-nvidia-smi'),
      FAKE_NVIDIA_SMI_DIR: smiDir,
      GPU_SAMPLE_INTERVAL_MS: '300',
      SLOTS_PER_GPU: '2',
    });
    // The gateway started here rather than by startGateway(), whose 30 s readiness bound a loaded shared machine
    // can pass while three services boot at once.
    const port = String(await freePort());
    const gateway = cluster.spawn('gateway', { GATEWAY_PORT: port });
    cluster.gatewayUrl = `http://127.0.0.1:${port}`;
    await waitFor(
      async () => {
        if (!gateway.running) throw new Error(`gateway exited: ${gateway.tail(10)}`);
        return (await fetch(`${cluster.gatewayUrl}/readyz`).catch(() => undefined))?.status === 200;
      },
      { what: 'gateway ready', timeoutMs: 120_000, intervalMs: 100 },
    );
    workerId = (await cluster.waitForWorkers(1, { timeoutMs: 120_000 }))[0]!.id;
  }, 300_000);

  afterAll(async () => {
    await cluster?.stop();
    rmSync(smiDir, { recursive: true, force: true });
  });

  const workers = async () => (await cluster.api<WorkerView[]>('GET', '/v1/workers')).body;
  const gpu = async (uuid: string) => (await workers())[0]!.gpus.find((g) => g.uuid === uuid)!;
  const cordonUrl = (uuid: string, action: 'cordon' | 'uncordon', worker = workerId) =>
    `/v1/workers/${worker}/gpus/${uuid}/${action}`;

  it('lists the whole GPU with its live figures and each MIG instance as a device of its own', async () => {
    const list = await workers();
    expect(list).toHaveLength(1);
    expect(list[0]!.gpus).toEqual([
      expect.objectContaining({
        index: 0,
        uuid: GPU0,
        memoryTotalMb: 81559,
        memoryUsedMb: 70_000,
        memoryFreeMb: 11_559,
        utilizationPercent: 50,
        temperatureC: 60,
        mig: false,
        health: 'ok',
      }),
      expect.objectContaining({ index: 200, uuid: MIG_SMALL, memoryTotalMb: 9728, mig: true, parentUuid: GPU1 }),
      expect.objectContaining({ index: 201, uuid: MIG_BIG, memoryTotalMb: 38912, mig: true, memoryUsedMb: null }),
    ]);
  });

  it('runs a job on a MIG instance with CUDA_VISIBLE_DEVICES=MIG-…', async () => {
    // 20 GB: too big for the small instance, and for GPU 0's live free memory (11.5 GB): the big instance.
    const id = await cluster.submit({ type: 'env', input: {}, gpu: { count: 1, memoryMb: 20_000 } });
    const done = await cluster.waitForJob<View>(id, (j) => j.status === 'completed', { timeoutMs: 30_000 });
    expect(done.gpus).toEqual([MIG_BIG]);
    expect(done.result!['cudaVisibleDevices']).toBe(MIG_BIG);
  });

  it('holds a job until the GPU’s live free memory can take it', async () => {
    const id = await cluster.submit({ type: 'env', input: {}, gpu: { count: 1, memoryMb: 50_000 } });
    // Only GPU 0 is big enough, and 70 GB of it are in use: the job waits.
    await waitFor(
      async () => (await cluster.api<{ depth: { total: number } }>('GET', '/v1/queue')).body.depth.total === 1,
      {
        what: 'the job queued',
      },
    );
    const held = await cluster.job<View>(id);
    expect(held.status).toBe('queued');
    gpu0Uses(1_000); // the outside process ends
    const done = await cluster.waitForJob<View>(id, (j) => j.status === 'completed', { timeoutMs: 30_000 });
    expect(done.gpus).toEqual([GPU0]);
  });

  it('refuses bad cordon requests with problem+json and changes nothing', async () => {
    const cases: [string, string, unknown, string | undefined, number][] = [
      ['client key', cordonUrl(GPU0, 'cordon'), undefined, CLIENT_KEY, 403],
      ['unknown worker', cordonUrl(GPU0, 'cordon', 'no-such-worker'), undefined, ADMIN_KEY, 404],
      ['unknown GPU', cordonUrl('GPU-00000000-0000-0000-0000-000000000000', 'cordon'), undefined, ADMIN_KEY, 404],
      ['not a GPU UUID', cordonUrl('..%2F..', 'cordon'), undefined, ADMIN_KEY, 404],
      ['unknown field', cordonUrl(GPU0, 'cordon'), { because: 'x' }, ADMIN_KEY, 400],
      ['empty reason', cordonUrl(GPU0, 'cordon'), { reason: ' ' }, ADMIN_KEY, 400],
      ['long reason', cordonUrl(GPU0, 'cordon'), { reason: 'x'.repeat(201) }, ADMIN_KEY, 400],
      ['uncordon with a body', cordonUrl(GPU0, 'uncordon'), { reason: 'x' }, ADMIN_KEY, 400],
    ];
    for (const [what, url, body, key, status] of cases) {
      const r = await cluster.api<ProblemBody>('POST', url, body, key);
      expect([what, r.status]).toEqual([what, status]);
      expect(r.headers.get('content-type')).toContain('application/problem+json');
    }
    expect((await workers())[0]!.gpus.every((g) => g.health === 'ok')).toBe(true);
  });

  it('an admin cordon stops placement on the GPU until it is uncordoned', async () => {
    const r = await cluster.api<GpuView[]>('POST', cordonUrl(GPU0, 'cordon'), { reason: 'maintenance' });
    expect(r.status).toBe(200);
    expect(r.body).toEqual([expect.objectContaining({ uuid: GPU0, health: 'cordoned', cordonReason: 'maintenance' })]);
    await waitFor(async () => (await gpu(GPU0)).health === 'cordoned', { what: 'cordoned on GET /v1/workers' });
    expect((await gpu(GPU0)).cordonReason).toBe('maintenance');

    // Smaller work still runs, on the MIG instances.
    const small = await cluster.submit({ type: 'env', input: {}, gpu: { count: 1, memoryMb: 1_000 } });
    const smallDone = await cluster.waitForJob<View>(small, (j) => j.status === 'completed', { timeoutMs: 60_000 });
    expect(smallDone.gpus![0]).toMatch(/^MIG-/);
    // Only GPU 0 fits 45 GB: the job waits while it is cordoned, through several heartbeats of the worker.
    const id = await cluster.submit({ type: 'env', input: {}, gpu: { count: 1, memoryMb: 45_000 } });
    const since = Date.now();
    await waitFor(async () => Date.parse((await gpu(GPU0)).sampledAt!) > since + 2_000, {
      what: 'samples from 2 s after the submit',
      timeoutMs: 60_000,
    });
    expect((await cluster.job<View>(id)).status).toBe('queued');

    const u = await cluster.api<GpuView[]>('POST', cordonUrl(GPU0, 'uncordon'));
    expect(u.status).toBe(200);
    expect(u.body[0]).toMatchObject({ uuid: GPU0, health: 'ok' });
    const done = await cluster.waitForJob<View>(id, (j) => j.status === 'completed', { timeoutMs: 30_000 });
    expect(done.gpus).toEqual([GPU0]);
  });

  it('uses a type’s learned peak memory as the request of its jobs that declare none', async () => {
    // A noop job (no gpu declared) alone on GPU 0, whose processes nvidia-smi shows holding 30 GB.
    writeFileSync(join(smiDir, 'apps.csv'), `4242, ${GPU0}, 30000\n`);
    const first = await cluster.submit({ type: 'noop', input: { durationMs: 3_000 } });
    const ran = await cluster.waitForJob<View>(first, (j) => j.status === 'completed', { timeoutMs: 60_000 });
    expect(ran.gpus).toEqual([GPU0]); // the least busy GPU, as nothing was known about noop
    rmSync(join(smiDir, 'apps.csv'));
    // A heartbeat sampled after the attempt ended carries what it learned.
    const ended = Date.now();
    await waitFor(async () => Date.parse((await gpu(GPU0)).sampledAt!) > ended + 500, {
      what: 'a heartbeat after the attempt',
      timeoutMs: 60_000,
    });
    // Now 70 GB of GPU 0 are taken: the next noop needs 30 GB, which only the big MIG instance has.
    gpu0Uses(70_000);
    await waitFor(async () => (await gpu(GPU0)).memoryUsedMb === 70_000, { what: 'GPU 0 busy', timeoutMs: 60_000 });
    const second = await cluster.submit({ type: 'noop', input: { durationMs: 100 } });
    const done = await cluster.waitForJob<View>(second, (j) => j.status === 'completed', { timeoutMs: 60_000 });
    expect(done.gpus).toEqual([MIG_BIG]);
    gpu0Uses(1_000);
  });
});
