/**
 * GPU discovery, behind a port so tests can fake it. The real probe asks `nvidia-smi`; when it is missing or fails,
 * the worker runs in CPU-only mode (no GPUs, its slots still usable by jobs that need none).
 */
import type { GpuInfo } from '@gantry/contracts';
import { execa } from 'execa';

export interface GpuProbe {
  discover(): Promise<GpuInfo[]>;
}

/** Parses `nvidia-smi --query-gpu=index,uuid,name,memory.total --format=csv,noheader,nounits`. */
export function parseNvidiaSmi(csv: string): GpuInfo[] {
  const out: GpuInfo[] = [];
  for (const line of csv.split('\n')) {
    if (!line.trim()) continue;
    const [index, uuid, name, mem] = line.split(',').map((s) => s.trim());
    const idx = Number(index);
    const memoryTotalMb = Number(mem);
    if (!Number.isInteger(idx) || !uuid || !name || !Number.isFinite(memoryTotalMb)) continue;
    out.push({ index: idx, uuid, name, memoryTotalMb: Math.floor(memoryTotalMb) });
  }
  return out.sort((a, b) => a.index - b.index);
}

export class NvidiaSmiProbe implements GpuProbe {
  constructor(
    private readonly binary: string,
    private readonly onError: (err: unknown) => void = () => undefined,
  ) {}

  async discover(): Promise<GpuInfo[]> {
    try {
      const { stdout } = await execa(
        this.binary,
        ['--query-gpu=index,uuid,name,memory.total', '--format=csv,noheader,nounits'],
        {
          timeout: 15_000,
        },
      );
      return parseNvidiaSmi(stdout);
    } catch (err) {
      this.onError(err);
      return [];
    }
  }
}

export const noGpus: GpuProbe = { discover: async () => [] };
