import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { NvidiaSmiProbe, parseNvidiaSmi } from './gpu-probe';

const FAKE = join(__dirname, '..', '..', 'test', 'fixtures', 'fake-nvidia-smi');

describe('parseNvidiaSmi', () => {
  it('reads index, UUID, name and memory, sorted by index', () => {
    expect(
      parseNvidiaSmi(
        [
          '1, GPU-bbbbbbbb-0000-0000-0000-000000000001, NVIDIA A100-SXM4-40GB, 40960',
          '0, GPU-aaaaaaaa-0000-0000-0000-000000000000, NVIDIA GeForce RTX 4090, 24564',
          '',
        ].join('\n'),
      ),
    ).toEqual([
      {
        index: 0,
        uuid: 'GPU-aaaaaaaa-0000-0000-0000-000000000000',
        name: 'NVIDIA GeForce RTX 4090',
        memoryTotalMb: 24564,
      },
      {
        index: 1,
        uuid: 'GPU-bbbbbbbb-0000-0000-0000-000000000001',
        name: 'NVIDIA A100-SXM4-40GB',
        memoryTotalMb: 40960,
      },
    ]);
  });

  it('keeps commas inside a name and skips lines it cannot trust', () => {
    expect(parseNvidiaSmi('0, GPU-a1, Tesla V100, PCIe, 16384')).toEqual([
      { index: 0, uuid: 'GPU-a1', name: 'Tesla V100, PCIe', memoryTotalMb: 16384 },
    ]);
    expect(
      parseNvidiaSmi(
        [
          '0, GPU-a1, Some GPU, [N/A]',
          'x, GPU-a2, Some GPU, 1000',
          '1, not-a-uuid, Some GPU, 1000',
          'No devices were found',
        ].join('\n'),
      ),
    ).toEqual([]);
  });
});

describe('NvidiaSmiProbe', () => {
  it('discovers the GPUs a (fake) nvidia-smi reports', async () => {
    const gpus = await new NvidiaSmiProbe(FAKE).discover();
    expect(gpus.map((g) => [g.index, g.name, g.memoryTotalMb])).toEqual([
      [0, 'NVIDIA H100 80GB HBM3', 81559],
      [1, 'NVIDIA H100 80GB HBM3', 81559],
    ]);
    expect(gpus[0]!.uuid).toMatch(/^GPU-/);
  });

  it('falls back to CPU-only when nvidia-smi is missing or fails', async () => {
    const errors: unknown[] = [];
    expect(await new NvidiaSmiProbe('/nonexistent/nvidia-smi', (e) => errors.push(e)).discover()).toEqual([]);
    process.env['FAKE_NVIDIA_SMI_FAIL'] = '1';
    try {
      expect(await new NvidiaSmiProbe(FAKE, (e) => errors.push(e)).discover()).toEqual([]);
    } finally {
      delete process.env['FAKE_NVIDIA_SMI_FAIL'];
    }
    expect(errors).toHaveLength(2);
    expect(String(errors[1])).toContain("couldn't communicate with the NVIDIA driver");
  });
});

/** On a host with an NVIDIA driver, the real nvidia-smi must be understood too (skipped elsewhere). */
function realNvidiaSmiWorks(): boolean {
  try {
    execFileSync('nvidia-smi', ['-L'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

(realNvidiaSmiWorks() ? describe : describe.skip)('NvidiaSmiProbe on this host’s real GPUs', () => {
  it('discovers every GPU nvidia-smi -L lists, with its UUID', async () => {
    const listed = execFileSync('nvidia-smi', ['-L'], { encoding: 'utf8' });
    const uuids = [...listed.matchAll(/UUID: (GPU-[0-9a-f-]+)/g)].map((m) => m[1]);
    const gpus = await new NvidiaSmiProbe('nvidia-smi').discover();
    expect(gpus.map((g) => g.uuid)).toEqual(uuids);
    for (const g of gpus) expect(g.memoryTotalMb).toBeGreaterThan(1000);
  });
});
