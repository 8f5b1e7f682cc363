import { newJob, type GpuRequest, type StoredJob } from '@gantry/contracts';
import { entryOf } from './scheduler-state';

function stored(type: string, gpu?: GpuRequest): StoredJob {
  const { record } = newJob(
    {
      id: `job-${type}-${gpu?.count ?? 'x'}-${gpu?.memoryMb ?? 'x'}`,
      tenant: 't',
      type,
      input: {},
      priority: 'normal',
      pool: 'p',
      timeoutSeconds: 60,
      maxAttempts: 3,
      retryDelaysMs: [0],
      metadata: {},
      ...(gpu ? { gpu } : {}),
    },
    new Date(0),
  );
  return {
    record,
    revision: 7,
    event: { type: 'job.queued', timestamp: record.updatedAt, sequence: 1, generation: 1, job: record },
  };
}

describe('the learned peak as the default GPU memory request', () => {
  const learned = {
    defaultGpuMemoryMb: (pool: string, type: string) => (pool === 'p' && type === 'train' ? 12_000 : undefined),
  };

  it('applies to jobs that need GPUs and declare no memory', () => {
    expect(entryOf(stored('train'), learned)).toMatchObject({ gpuCount: -1, gpuMemoryMb: 12_000 });
    expect(entryOf(stored('train', { count: 2, memoryMb: 0 }), learned)).toMatchObject({
      gpuCount: 2,
      gpuMemoryMb: 12_000,
    });
  });

  it('never overrides declared memory, never gives memory to CPU-only jobs, and is 0 when nothing is learned', () => {
    expect(entryOf(stored('train', { count: 1, memoryMb: 500 }), learned).gpuMemoryMb).toBe(500);
    expect(entryOf(stored('train', { count: 0, memoryMb: 0 }), learned).gpuMemoryMb).toBe(0);
    expect(entryOf(stored('other'), learned).gpuMemoryMb).toBe(0);
    expect(entryOf(stored('train')).gpuMemoryMb).toBe(0);
  });

  it('caps a request raised after a GPU_OOM at the pool’s largest GPU, and only that', () => {
    const cap = (pool: string) => (pool === 'p' ? 80_000 : undefined);
    const raised = stored('train', { count: 1, memoryMb: 120_000, declaredMemoryMb: 80_000 });
    expect(entryOf(raised, learned, cap).gpuMemoryMb).toBe(80_000);
    expect(
      entryOf(stored('train', { count: 1, memoryMb: 45_000, declaredMemoryMb: 30_000 }), learned, cap),
    ).toMatchObject({ gpuCount: 1, gpuMemoryMb: 45_000 });
    // No GPU known in the pool yet: the raised request as recorded.
    expect(entryOf(raised, learned, () => undefined).gpuMemoryMb).toBe(120_000);
    // Declared memory is never capped (a too-large declaration is refused at submit instead).
    expect(entryOf(stored('train', { count: 1, memoryMb: 120_000 }), learned, cap).gpuMemoryMb).toBe(120_000);
  });
});
