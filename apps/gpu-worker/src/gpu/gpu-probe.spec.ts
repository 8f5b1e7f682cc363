import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { NvidiaSmiProbe, migMemoryMb, parseMigListing, parseNvidiaSmi, schedulableDevices } from './gpu-probe';

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

describe('MIG discovery', () => {
  const LISTING = [
    'GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77)',
    '  MIG 1g.5gb      Device  0: (UUID: MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f)',
    '  MIG 3g.20gb     Device  1: (UUID: MIG-cba663e8-9bed-5b25-b243-5985ef7c9beb)',
    'GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-aaaaaaaa-0000-0000-0000-000000000001)',
    'GPU 2: NVIDIA A100-SXM4-40GB (UUID: GPU-aaaaaaaa-0000-0000-0000-000000000002)',
    '  MIG 7g.40gb Device 0: (UUID: MIG-GPU-aaaaaaaa-0000-0000-0000-000000000002/0/0)',
  ].join('\n');

  it('parses MIG instances under their GPU (current and R450 UUID forms)', () => {
    expect(parseMigListing(LISTING).map((m) => [m.gpuIndex, m.device, m.profile, m.uuid])).toEqual([
      [0, 0, '1g.5gb', 'MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f'],
      [0, 1, '3g.20gb', 'MIG-cba663e8-9bed-5b25-b243-5985ef7c9beb'],
      [2, 0, '7g.40gb', 'MIG-GPU-aaaaaaaa-0000-0000-0000-000000000002/0/0'],
    ]);
    expect(parseMigListing('No devices were found')).toEqual([]);
  });

  it('sizes an instance from its profile, never above what it has', () => {
    expect(migMemoryMb('1g.5gb')).toBe(4864);
    expect(migMemoryMb('1g.10gb')).toBe(9728);
    expect(migMemoryMb('3g.40gb')).toBe(38912);
    expect(migMemoryMb('weird')).toBeUndefined();
  });

  it('replaces a GPU with MIG instances by the instances, with unique indices', () => {
    const gpus = parseNvidiaSmi(
      [
        '0, GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77, NVIDIA A100-SXM4-40GB, 40960',
        '1, GPU-aaaaaaaa-0000-0000-0000-000000000001, NVIDIA A100-SXM4-40GB, 40960',
      ].join('\n'),
    );
    const devices = schedulableDevices(gpus, parseMigListing(LISTING));
    expect(devices.map((d) => [d.index, d.uuid, d.memoryTotalMb, d.mig ?? false, d.parentUuid])).toEqual([
      [1, 'GPU-aaaaaaaa-0000-0000-0000-000000000001', 40960, false, undefined],
      [100, 'MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f', 4864, true, 'GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77'],
      [101, 'MIG-cba663e8-9bed-5b25-b243-5985ef7c9beb', 19456, true, 'GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77'],
    ]);
    expect(devices[1]!.name).toBe('NVIDIA A100-SXM4-40GB MIG 1g.5gb');
  });

  it('discovers MIG instances through a (fake) nvidia-smi -L', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gantry-smi-'));
    writeFileSync(
      join(dir, 'mig'),
      [
        'gpu=1   MIG 1g.10gb     Device  0: (UUID: MIG-aaaaaaaa-0000-0000-0000-000000000001)',
        'gpu=1   MIG 3g.40gb     Device  1: (UUID: MIG-aaaaaaaa-0000-0000-0000-000000000002)',
      ].join('\n') + '\n',
    );
    process.env['FAKE_NVIDIA_SMI_DIR'] = dir;
    try {
      const gpus = await new NvidiaSmiProbe(FAKE).discover();
      expect(gpus.map((g) => [g.index, g.uuid, g.memoryTotalMb, !!g.mig])).toEqual([
        [0, 'GPU-11111111-2222-3333-4444-555555555555', 81559, false],
        [200, 'MIG-aaaaaaaa-0000-0000-0000-000000000001', 9728, true],
        [201, 'MIG-aaaaaaaa-0000-0000-0000-000000000002', 38912, true],
      ]);
    } finally {
      delete process.env['FAKE_NVIDIA_SMI_DIR'];
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps the whole GPUs when nvidia-smi -L fails', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gantry-smi-'));
    const tool = join(dir, 'nvidia-smi');
    writeFileSync(
      tool,
      `#!/bin/sh\ncase "$*" in -L) echo boom >&2; exit 3;; esac\necho "0, GPU-a1, Some GPU, 1000"\n`,
      { mode: 0o755 },
    );
    const migErrors: unknown[] = [];
    try {
      const gpus = await new NvidiaSmiProbe(tool, undefined, (e) => migErrors.push(e)).discover();
      expect(gpus).toEqual([{ index: 0, uuid: 'GPU-a1', name: 'Some GPU', memoryTotalMb: 1000 }]);
      expect(migErrors).toHaveLength(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
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
