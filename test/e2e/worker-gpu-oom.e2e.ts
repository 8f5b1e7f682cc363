/**
 * GPU out-of-memory through the whole system (real scheduler, gateway and worker processes; real nats-server and S3
 * store; a real job process that prints PyTorch's CUDA out-of-memory message and exits 1). The worker's fake
 * `nvidia-smi` lists two GPUs of different sizes: 24 000 MiB and 81 559 MiB. Proves: the attempt ends `GPU_OOM`
 * (retryable); the job's memory request is raised (×1.5) on its record and in `GET /v1/jobs/{id}`, with the declared
 * one kept; the retry is placed on the larger GPU that fits it; the type's learned default rises, so a later job of the
 * type that declares no memory reserves the raised request.
 */
import { rmSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GantryCluster, freePort, repoRoot, waitFor } from '@gantry/testing';

const FIXTURES = join(repoRoot(), 'apps', 'gpu-worker', 'test', 'fixtures');
const SMALL = 'GPU-5a5a5a5a-0000-0000-0000-000000000024';
const BIG = 'GPU-b1b1b1b1-0000-0000-0000-000000000080';

interface View {
  id: string;
  status: string;
  attempts: number;
  gpus?: string[];
  gpu?: { count: number; memoryMb: number; declaredMemoryMb?: number };
  result?: { gpuMemoryMb: string; cudaVisibleDevices: string };
  error?: { code: string; message: string; retryable?: boolean; detail?: string };
}
interface WorkerView {
  id: string;
  gpus: { uuid: string; sampledAt: string | null }[];
}

describe('GPU out-of-memory: GPU_OOM, a raised request and a retry on a GPU that fits (fake nvidia-smi)', () => {
  let cluster: GantryCluster;
  let smiDir: string;

  beforeAll(async () => {
    smiDir = mkdtempSync(join(tmpdir(), 'gantry-e2e-oom-'));
    cluster = await GantryCluster.start({ manual: true, env: { JOB_TYPES_FILE: join(FIXTURES, 'catalog.yaml') } });
    cluster.spawn('scheduler', { GPU_MEMORY_MARGIN_MB: '512' });
    cluster.spawn('gpu-worker', {
      GPU_DISCOVERY: 'true',
      NVIDIA_SMI: join(FIXTURES, 'fake-nvidia-smi'),
      FAKE_NVIDIA_SMI_DIR: smiDir,
      FAKE_GPUS: `0, ${SMALL}, NVIDIA L4, 24000;1, ${BIG}, NVIDIA H100 80GB HBM3, 81559`,
      GPU_SAMPLE_INTERVAL_MS: '300',
      SLOTS_PER_GPU: '1',
    });
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
    await cluster.waitForWorkers(1, { timeoutMs: 120_000 });
  }, 300_000);

  afterAll(async () => {
    await cluster?.stop();
    rmSync(smiDir, { recursive: true, force: true });
  });

  it('ends an out-of-memory attempt GPU_OOM and raises the request on the record', async () => {
    // One attempt only: the job ends with the attempt's own error, and the raise is still recorded.
    const id = await cluster.submit({ type: 'cuda-oom', input: { oomAttempts: 1 }, maxAttempts: 1 });
    const failed = await cluster.waitForJob<View>(id, (j) => j.status === 'failed', { timeoutMs: 60_000 });
    expect(failed.error).toMatchObject({ code: 'GPU_OOM', retryable: true });
    expect(failed.error!.message).toMatch(
      /out of GPU memory \(reserved 20000 MB; the next attempt asks for 30000 MB\)/,
    );
    expect(failed.error!.detail).toContain('CUDA out of memory');
    expect(failed.gpus).toEqual([SMALL]); // 20 000 MiB: the best fit was the small GPU
    expect(failed.gpu).toEqual({ count: 1, memoryMb: 30_000, declaredMemoryMb: 20_000 });
  });

  it('retries on the larger GPU, which fits the raised request', async () => {
    const id = await cluster.submit({ type: 'cuda-oom', input: { oomAttempts: 1 }, maxAttempts: 3 });
    const done = await cluster.waitForJob<View>(id, (j) => j.status === 'completed', { timeoutMs: 90_000 });
    expect(done.attempts).toBe(2);
    expect(done.gpus).toEqual([BIG]);
    expect(done.result).toEqual({ gpuMemoryMb: '30000', cudaVisibleDevices: BIG });
    expect(done.gpu).toEqual({ count: 1, memoryMb: 30_000, declaredMemoryMb: 20_000 });
  });

  it('raises the type’s learned default: a job that declares no memory reserves the raised request', async () => {
    // A heartbeat sampled after the attempts above ended carries what the worker learned.
    const after = Date.now();
    await waitFor(
      async () => {
        const [w] = (await cluster.api<WorkerView[]>('GET', '/v1/workers')).body;
        const sampled = w?.gpus.find((g) => g.uuid === BIG)?.sampledAt;
        return !!sampled && Date.parse(sampled) > after + 500;
      },
      { what: 'a heartbeat after the OOM attempts', timeoutMs: 60_000 },
    );
    const id = await cluster.submit({ type: 'cuda-oom', input: { oomAttempts: 0 }, gpu: { count: 1 } });
    const done = await cluster.waitForJob<View>(id, (j) => j.status === 'completed', { timeoutMs: 60_000 });
    expect(done.result).toEqual({ gpuMemoryMb: '30000', cudaVisibleDevices: BIG });
    expect(done.gpus).toEqual([BIG]);
  });
});
