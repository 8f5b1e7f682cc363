import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NvidiaSmiTelemetry, TelemetrySampler, normalizePciBusId, parseTelemetry } from './gpu-telemetry';

const FAKE = join(__dirname, '..', '..', 'test', 'fixtures', 'fake-nvidia-smi');
const G0 = 'GPU-11111111-2222-3333-4444-555555555555';
const G1 = 'GPU-66666666-7777-8888-9999-000000000000';

describe('parseTelemetry', () => {
  it('reads memory, utilization, temperature and ECC per GPU; [N/A] and [Not Supported] become null', () => {
    expect(
      parseTelemetry(
        [
          `${G0}, 00000000:3B:00.0, 1200, 80359, 87, 71, 0`,
          `${G1}, 00000000:86:00.0, [N/A], [N/A], [Not Supported], 40, [N/A]`,
          '',
        ].join('\n'),
      ),
    ).toEqual([
      {
        uuid: G0,
        pciBusId: '0000:3b:00',
        memoryUsedMb: 1200,
        memoryFreeMb: 80359,
        utilizationPercent: 87,
        temperatureC: 71,
        eccErrors: 0,
      },
      {
        uuid: G1,
        pciBusId: '0000:86:00',
        memoryUsedMb: null,
        memoryFreeMb: null,
        utilizationPercent: null,
        temperatureC: 40,
        eccErrors: null,
      },
    ]);
  });

  it('skips lines it cannot trust (wrong field count, no GPU UUID, error text, negative numbers)', () => {
    expect(
      parseTelemetry(
        [
          `0, ${G0}, NVIDIA H100 80GB HBM3, 81559`, // the discovery answer of a tool that ignores its arguments
          'Unable to determine the device handle for GPU0000:3B:00.0: Unknown Error',
          `not-a-uuid, 00000000:3B:00.0, 1, 2, 3, 4, 0`,
          `${G1}, 00000000:86:00.0, -5, 10, 0, 40, 0`,
        ].join('\n'),
      ),
    ).toEqual([
      {
        uuid: G1,
        pciBusId: '0000:86:00',
        memoryUsedMb: null,
        memoryFreeMb: 10,
        utilizationPercent: 0,
        temperatureC: 40,
        eccErrors: 0,
      },
    ]);
  });

  it('normalizes PCI addresses from nvidia-smi and from kernel XID lines alike', () => {
    expect(normalizePciBusId('00000000:3B:00.0')).toBe('0000:3b:00');
    expect(normalizePciBusId('0000:3b:00')).toBe('0000:3b:00');
    expect(normalizePciBusId('3b:00.0')).toBe('0000:3b:00');
    expect(normalizePciBusId('[N/A]')).toBeNull();
  });
});

describe('TelemetrySampler with the fake nvidia-smi', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'gantry-smi-'));
    process.env['FAKE_NVIDIA_SMI_DIR'] = dir;
  });
  afterEach(() => {
    delete process.env['FAKE_NVIDIA_SMI_DIR'];
    rmSync(dir, { recursive: true, force: true });
  });

  it('samples idle GPUs, then the figures the tool reports next', async () => {
    const sampler = new TelemetrySampler(new NvidiaSmiTelemetry(FAKE, 10_000), 60_000);
    await sampler.sampleNow();
    expect(sampler.get(G0)).toMatchObject({ memoryUsedMb: 0, memoryFreeMb: 81559, temperatureC: 35 });
    writeFileSync(join(dir, 'telemetry.csv'), `${G0}, 00000000:1B:00.0, 30000, 51559, 99, 80, 0\n`);
    await sampler.sampleNow();
    expect(sampler.get(G0)).toMatchObject({ memoryUsedMb: 30000, memoryFreeMb: 51559, utilizationPercent: 99 });
    expect(sampler.get(G1)).toBeUndefined();
    expect(sampler.byPciBusId('0000:1b:00')).toBe(G0);
  });

  it('kills a hanging tool at the timeout, reports the failure, and shows nothing once the sample is stale', async () => {
    let now = 1_000_000;
    const errors: [unknown, number][] = [];
    const sampler = new TelemetrySampler(
      new NvidiaSmiTelemetry(FAKE, 2_000),
      5_000,
      (e, n) => errors.push([e, n]),
      () => now,
    );
    await sampler.sampleNow();
    expect(sampler.get(G0)?.memoryFreeMb).toBe(81559);
    writeFileSync(join(dir, 'hang'), '');
    const t0 = Date.now();
    expect(await sampler.sampleNow()).toBeUndefined();
    expect(Date.now() - t0).toBeLessThan(8_000);
    expect(String(errors[0]![0])).toMatch(/timed out/i);
    expect(sampler.get(G0)?.memoryFreeMb).toBe(81559); // the last good sample, while still fresh
    now += 5_001;
    expect(sampler.get(G0)).toBeUndefined();
    rmSync(join(dir, 'hang'));
    writeFileSync(join(dir, 'telemetry-fail'), '');
    expect(await sampler.sampleNow()).toBeUndefined();
    expect(errors.map(([, n]) => n)).toEqual([1, 2]);
    rmSync(join(dir, 'telemetry-fail'));
    expect(await sampler.sampleNow()).toHaveLength(2); // the tool came back
    expect(sampler.get(G0)?.memoryFreeMb).toBe(81559);
  });
});
