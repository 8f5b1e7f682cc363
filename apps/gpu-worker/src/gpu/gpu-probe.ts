/**
 * GPU discovery, behind a port so tests can fake it. The real probe asks `nvidia-smi` (the NVIDIA driver's own tool,
 * present wherever the driver is, containers with the NVIDIA runtime included); when it is missing or fails, the
 * worker runs in CPU-only mode (no GPUs; its slots still run jobs that need none).
 */
import type { GpuInfo } from '@gantry/contracts';
import { execa } from 'execa';

export interface GpuProbe {
  discover(): Promise<GpuInfo[]>;
}

/** The exact query the worker makes. */
export const NVIDIA_SMI_ARGS = ['--query-gpu=index,uuid,name,memory.total', '--format=csv,noheader,nounits'] as const;

/**
 * Parses `nvidia-smi --query-gpu=index,uuid,name,memory.total --format=csv,noheader,nounits` (memory in MiB). A name
 * may contain commas (the fields around it may not); lines that do not parse (e.g. `[N/A]` memory) are skipped.
 */
export function parseNvidiaSmi(csv: string): GpuInfo[] {
  const out: GpuInfo[] = [];
  for (const line of csv.split('\n')) {
    if (!line.trim()) continue;
    const fields = line.split(',').map((s) => s.trim());
    if (fields.length < 4) continue;
    const idx = Number(fields[0]);
    const uuid = fields[1] ?? '';
    const memoryTotalMb = Number(fields[fields.length - 1]);
    const name = fields.slice(2, -1).join(', ');
    if (!Number.isInteger(idx) || idx < 0 || !/^(GPU|MIG)-[\w-]+$/.test(uuid) || !name) continue;
    if (!Number.isFinite(memoryTotalMb) || memoryTotalMb <= 0) continue;
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
      const { stdout } = await execa(this.binary, [...NVIDIA_SMI_ARGS], { timeout: 15_000 });
      return parseNvidiaSmi(stdout);
    } catch (err) {
      this.onError(err);
      return [];
    }
  }
}

export const noGpus: GpuProbe = { discover: async () => [] };
