import { parseComputeApps } from './gpu-telemetry';
import { PeakMemory, WINDOW } from './peak-memory';

const A = 'GPU-aaaaaaaa-0000-0000-0000-000000000000';
const B = 'GPU-bbbbbbbb-0000-0000-0000-000000000000';

describe('per-process GPU memory', () => {
  it('parses nvidia-smi --query-compute-apps, skipping [N/A] memory and other lines', () => {
    expect(
      parseComputeApps(
        [`4242, ${A}, 12000`, `4243, ${A}, [N/A]`, 'No running processes found', `4244, ${B}, 300`, ''].join('\n'),
      ),
    ).toEqual([
      { pid: 4242, gpuUuid: A, usedMb: 12000 },
      { pid: 4244, gpuUuid: B, usedMb: 300 },
    ]);
  });
});

describe('PeakMemory', () => {
  it('learns each type’s peak from attempts alone on their GPUs, per GPU, over the last attempts', () => {
    const p = new PeakMemory();
    const one = [{ jobId: 'j1', type: 'train', gpus: [A] }];
    p.observe(one, [{ pid: 1, gpuUuid: A, usedMb: 5_000 }]);
    p.observe(one, [
      { pid: 1, gpuUuid: A, usedMb: 9_000 },
      { pid: 2, gpuUuid: A, usedMb: 1_000 }, // its child process: same GPU, same attempt
    ]);
    p.observe(one, [{ pid: 1, gpuUuid: A, usedMb: 2_000 }]);
    expect(p.peakOf('j1')).toBe(10_000);
    p.ended('j1');
    expect(p.learned()).toEqual({ train: 10_000 });

    // Two GPUs: the most it holds on any one of them (requests are per GPU).
    p.observe(
      [{ jobId: 'j2', type: 'train', gpus: [A, B] }],
      [
        { pid: 3, gpuUuid: A, usedMb: 12_000 },
        { pid: 3, gpuUuid: B, usedMb: 4_000 },
      ],
    );
    p.ended('j2');
    expect(p.learned()).toEqual({ train: 12_000 });
  });

  it('measures nothing for attempts sharing a GPU, nor for attempts that used no GPU memory', () => {
    const p = new PeakMemory();
    p.observe(
      [
        { jobId: 'x', type: 'infer', gpus: [A] },
        { jobId: 'y', type: 'infer', gpus: [A] },
        { jobId: 'z', type: 'cpu', gpus: [] },
        { jobId: 'w', type: 'quiet', gpus: [B] },
      ],
      [{ pid: 1, gpuUuid: A, usedMb: 20_000 }],
    );
    for (const id of ['x', 'y', 'z', 'w']) p.ended(id);
    expect(p.learned()).toEqual({});
  });

  it('follows a type whose jobs shrink once the big ones leave the window', () => {
    const p = new PeakMemory();
    const run = (id: string, mb: number) => {
      p.observe([{ jobId: id, type: 't', gpus: [A] }], [{ pid: 1, gpuUuid: A, usedMb: mb }]);
      p.ended(id);
    };
    run('big', 30_000);
    for (let i = 0; i < WINDOW - 1; i++) run(`s${i}`, 1_000);
    expect(p.learned()).toEqual({ t: 30_000 });
    run('last', 1_000);
    expect(p.learned()).toEqual({ t: 1_000 });
  });

  it('learns the raised request of an attempt that died of GPU_OOM, measured or not', () => {
    const p = new PeakMemory();
    p.observe([{ jobId: 'j1', type: 'train', gpus: [A] }], [{ pid: 1, gpuUuid: A, usedMb: 20_000 }]);
    p.ended('j1', { type: 'train', requestMb: 30_000 });
    expect(p.learned()).toEqual({ train: 30_000 });
    // Not measured (it shared its GPU): the raised request alone.
    p.ended('j2', { type: 'infer', requestMb: 12_000 });
    expect(p.learned()).toEqual({ train: 30_000, infer: 12_000 });
  });
});
