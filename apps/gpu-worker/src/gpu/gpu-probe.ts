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

/** A MIG instance as `nvidia-smi -L` lists it under its GPU. */
export interface MigListing {
  gpuIndex: number;
  gpuUuid: string;
  /** Its device number within the GPU. */
  device: number;
  /** The GPU instance profile, e.g. `1g.5gb`. */
  profile: string;
  uuid: string;
}

const GPU_LINE = /^GPU (\d+): .*\(UUID: (GPU-[\w-]+)\)\s*$/;
// Current drivers print `MIG-<uuid>`; R450 printed `MIG-GPU-<uuid>/<gi>/<ci>`.
const MIG_LINE = /^\s+MIG (\S+)\s+Device\s+(\d+): \(UUID: (MIG-[\w/-]+)\)\s*$/;

/** Parses `nvidia-smi -L`: the MIG instances of each GPU (whole GPUs are read from the CSV query). */
export function parseMigListing(text: string): MigListing[] {
  const out: MigListing[] = [];
  let gpu: { index: number; uuid: string } | undefined;
  for (const line of text.split('\n')) {
    const g = GPU_LINE.exec(line);
    if (g) {
      gpu = { index: Number(g[1]), uuid: g[2]! };
      continue;
    }
    const m = MIG_LINE.exec(line);
    if (m && gpu)
      out.push({ gpuIndex: gpu.index, gpuUuid: gpu.uuid, device: Number(m[2]), profile: m[1]!, uuid: m[3]! });
  }
  return out;
}

/**
 * Memory of a MIG instance from its profile name (`<n>g.<m>gb`): m GiB × 0.95, which is exact for the 5/10 GB slices
 * of A100/H100 (4864 and 9728 MiB) and an underestimate for the larger ones — never more than the instance has.
 */
export function migMemoryMb(profile: string): number | undefined {
  const m = /\.(\d+(?:\.\d+)?)gb$/.exec(profile);
  if (!m) return undefined;
  return Math.floor(Number(m[1]) * 1024 * 0.95);
}

/**
 * The schedulable devices: each whole GPU, except that a GPU with MIG instances is replaced by its instances (with MIG
 * on, CUDA cannot use the GPU as a whole). MIG device `d` of GPU `g` gets index `100 × (g + 1) + d`, unique on the
 * worker; `CUDA_VISIBLE_DEVICES` names it by its `MIG-…` UUID.
 */
export function schedulableDevices(gpus: GpuInfo[], migs: MigListing[]): GpuInfo[] {
  const out: GpuInfo[] = [];
  for (const g of gpus) {
    const own = migs.filter((m) => m.gpuUuid === g.uuid).sort((a, b) => a.device - b.device);
    if (own.length === 0) {
      out.push(g);
      continue;
    }
    for (const m of own) {
      const memoryTotalMb = migMemoryMb(m.profile);
      if (memoryTotalMb === undefined || memoryTotalMb <= 0) continue;
      out.push({
        index: 100 * (g.index + 1) + m.device,
        uuid: m.uuid,
        name: `${g.name} MIG ${m.profile}`,
        memoryTotalMb,
        mig: true,
        parentUuid: g.uuid,
      });
    }
  }
  return out.sort((a, b) => a.index - b.index);
}

export class NvidiaSmiProbe implements GpuProbe {
  constructor(
    private readonly binary: string,
    private readonly onError: (err: unknown) => void = () => undefined,
    /** `nvidia-smi -L` failed: whole GPUs are used, MIG instances (if any) are not seen. */
    private readonly onMigError: (err: unknown) => void = () => undefined,
  ) {}

  async discover(): Promise<GpuInfo[]> {
    let gpus: GpuInfo[];
    try {
      const { stdout } = await execa(this.binary, [...NVIDIA_SMI_ARGS], { timeout: 15_000 });
      gpus = parseNvidiaSmi(stdout);
    } catch (err) {
      this.onError(err);
      return [];
    }
    if (gpus.length === 0) return gpus;
    let migs: MigListing[] = [];
    try {
      const { stdout } = await execa(this.binary, ['-L'], { timeout: 15_000 });
      migs = parseMigListing(stdout);
    } catch (err) {
      this.onMigError(err);
    }
    return schedulableDevices(gpus, migs);
  }
}

export const noGpus: GpuProbe = { discover: async () => [] };
