/**
 * The GPU path on a real NVIDIA GPU, through the whole system: the worker discovers the host's GPUs with the real
 * nvidia-smi, GET /v1/workers shows them, and the CUDA example (examples/cuda/saxpy, built with nvcc) runs as the
 * `cuda-saxpy` catalog job on the GPU it was given. Runs only on a host where `nvidia-smi -L` works and the example
 * can be built (or is built); skipped elsewhere — see docs/gpu.md.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { GantryCluster, repoRoot } from '@gantry/testing';

const EXAMPLES = join(repoRoot(), 'examples');
const SAXPY = join(EXAMPLES, 'cuda', 'saxpy');

function gpuUuids(): string[] {
  try {
    const out = execFileSync('nvidia-smi', ['-L'], { encoding: 'utf8' });
    return [...out.matchAll(/UUID: (GPU-[0-9a-f-]+)/g)].map((m) => m[1]!);
  } catch {
    return [];
  }
}

function buildSaxpy(): boolean {
  try {
    execFileSync(join(EXAMPLES, 'cuda', 'build.sh'), { stdio: 'ignore' });
  } catch {
    // no nvcc: use a binary built beforehand, if any
  }
  return existsSync(SAXPY);
}

const uuids = gpuUuids();
const runnable = uuids.length > 0 && buildSaxpy();

(runnable ? describe : describe.skip)('gpu-worker on a real NVIDIA GPU', () => {
  let cluster: GantryCluster;

  beforeAll(async () => {
    cluster = await GantryCluster.start({
      env: { JOB_TYPES_FILE: join(EXAMPLES, 'job-types.yaml'), GPU_DISCOVERY: 'true', WORKER_LOST_AFTER_MS: '10000' },
    });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('discovers the GPUs, runs the CUDA example on the assigned one, and reports progress', async () => {
    const workers = await cluster.api<
      { gpus: { uuid: string; name: string; memoryTotalMb: number }[]; slots: number }[]
    >('GET', '/v1/workers');
    const w = workers.body[0]!;
    expect(w.gpus.map((g) => g.uuid)).toEqual(uuids);
    expect(w.slots).toBe(uuids.length * 2);
    process.stdout.write(`GET /v1/workers: ${JSON.stringify(workers.body)}\n`);

    const id = await cluster.submit({ type: 'cuda-saxpy', input: { n: 1 << 24, iterations: 2000 } });
    const percents = new Set<number>();
    const done = await cluster.waitForJob<{
      status: string;
      gpus: string[];
      progress?: { percent: number };
      result?: Record<string, unknown>;
      error?: unknown;
    }>(
      id,
      (j) => {
        if (j.progress) percents.add(j.progress.percent);
        return j.status === 'completed' || j.status === 'failed';
      },
      { timeoutMs: 120_000, intervalMs: 20 },
    );
    process.stdout.write(`cuda-saxpy job: ${JSON.stringify(done)}\n`);
    expect(done.status).toBe('completed');
    expect(done.gpus).toHaveLength(1);
    expect(done.result).toMatchObject({ uuid: done.gpus[0], visibleDevices: done.gpus[0], maxError: 0 });
    expect([...percents].some((p) => p > 0 && p < 100)).toBe(true);

    const env = await cluster.submit({ type: 'gpu-env', input: {} });
    const seen = await cluster.waitForJob<{ status: string; gpus: string[]; result?: Record<string, string> }>(
      env,
      (j) => j.status === 'completed',
    );
    expect(seen.result!['cudaVisibleDevices']).toBe(seen.gpus[0]);
    expect(seen.result!['nvidiaSmi']).toContain(seen.gpus[0]);
  });
});
