/**
 * Live GPU figures: a periodic `nvidia-smi --query-gpu=…` with a hard timeout. A periodic query rather than one
 * long-running `-lms` child: each sample is a fresh process, so a tool that hangs or dies costs one sample (it is
 * killed at the timeout) and needs no supervision, restart or partial-line handling; at the default 5 s interval the
 * cost is one short process per interval.
 */
import { execa } from 'execa';

/** The exact telemetry query (memory in MiB, utilization in %, temperature in °C). */
export const TELEMETRY_FIELDS = [
  'uuid',
  'pci.bus_id',
  'memory.used',
  'memory.free',
  'utilization.gpu',
  'temperature.gpu',
  'ecc.errors.uncorrected.volatile.total',
] as const;
export const TELEMETRY_ARGS = [`--query-gpu=${TELEMETRY_FIELDS.join(',')}`, '--format=csv,noheader,nounits'] as const;

/** One physical GPU's sample. */
export interface PhysicalSample {
  uuid: string;
  /** Normalized PCI address `dddd:bb:dd` (lower case), to match kernel XID lines. */
  pciBusId: string | null;
  memoryUsedMb: number | null;
  memoryFreeMb: number | null;
  utilizationPercent: number | null;
  temperatureC: number | null;
  eccErrors: number | null;
}

/** `[N/A]`, `[Not Supported]`, `N/A`, empty or negative → null; numbers are floored. */
function num(s: string | undefined): number | null {
  if (s === undefined) return null;
  const t = s.trim();
  if (!/^\d+(\.\d+)?$/.test(t)) return null;
  return Math.floor(Number(t));
}

/**
 * `00000000:3B:00.0` (nvidia-smi) and `0000:3b:00` (kernel `NVRM: Xid (PCI:0000:3b:00)`) both become `0000:3b:00`.
 */
export function normalizePciBusId(s: string): string | null {
  const m = /^(?:([0-9a-f]{4,8}):)?([0-9a-f]{2}):([0-9a-f]{2})(?:\.[0-7])?$/i.exec(s.trim());
  if (!m) return null;
  const domain = (m[1] ?? '0000').slice(-4).toLowerCase();
  return `${domain}:${m[2]!.toLowerCase()}:${m[3]!.toLowerCase()}`;
}

/** Parses the telemetry CSV; lines with another field count or without a GPU UUID are skipped. */
export function parseTelemetry(csv: string): PhysicalSample[] {
  const out: PhysicalSample[] = [];
  for (const line of csv.split('\n')) {
    if (!line.trim()) continue;
    const f = line.split(',').map((s) => s.trim());
    if (f.length !== TELEMETRY_FIELDS.length) continue;
    const uuid = f[0]!;
    if (!/^GPU-[\w-]+$/.test(uuid)) continue;
    out.push({
      uuid,
      pciBusId: normalizePciBusId(f[1]!),
      memoryUsedMb: num(f[2]),
      memoryFreeMb: num(f[3]),
      utilizationPercent: num(f[4]),
      temperatureC: num(f[5]),
      eccErrors: num(f[6]),
    });
  }
  return out;
}

export interface TelemetryPort {
  /** One sample of every physical GPU; rejects when the tool fails or times out. */
  sample(): Promise<PhysicalSample[]>;
}

export class NvidiaSmiTelemetry implements TelemetryPort {
  constructor(
    private readonly binary: string,
    private readonly timeoutMs: number,
  ) {}

  async sample(): Promise<PhysicalSample[]> {
    const { stdout } = await execa(this.binary, [...TELEMETRY_ARGS], {
      timeout: this.timeoutMs,
      killSignal: 'SIGKILL',
      stdin: 'ignore',
      maxBuffer: 1024 * 1024,
    });
    return parseTelemetry(stdout);
  }
}

/**
 * Keeps the last good sample (never two samples at once). A sample older than `staleAfterMs` is not reported (figures
 * become null), so a hung or dead tool never shows old numbers as live.
 */
export class TelemetrySampler {
  private sampling: Promise<PhysicalSample[] | undefined> | undefined;
  private last: { at: number; byUuid: Map<string, PhysicalSample> } | undefined;
  private failures = 0;

  constructor(
    private readonly port: TelemetryPort,
    private readonly staleAfterMs: number,
    private readonly onError: (err: unknown, consecutive: number) => void = () => undefined,
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes a sample; resolves with it, or undefined when the tool failed or timed out (the error is reported). */
  sampleNow(): Promise<PhysicalSample[] | undefined> {
    this.sampling ??= (async () => {
      try {
        const samples = await this.port.sample();
        this.last = { at: this.now(), byUuid: new Map(samples.map((s) => [s.uuid, s])) };
        this.failures = 0;
        return samples;
      } catch (err) {
        this.failures++;
        this.onError(err, this.failures);
        return undefined;
      } finally {
        this.sampling = undefined;
      }
    })();
    return this.sampling;
  }

  /** The live sample of a physical GPU, or undefined when there is none or it is stale. */
  get(uuid: string): (PhysicalSample & { sampledAt: string }) | undefined {
    if (!this.last || this.now() - this.last.at > this.staleAfterMs) return undefined;
    const s = this.last.byUuid.get(uuid);
    return s ? { ...s, sampledAt: new Date(this.last.at).toISOString() } : undefined;
  }

  /** Physical GPU by its normalized PCI address (XID lines name GPUs that way). */
  byPciBusId(bus: string): string | undefined {
    for (const s of this.last?.byUuid.values() ?? []) if (s.pciBusId === bus) return s.uuid;
    return undefined;
  }
}

/** The per-process query (memory in MiB): what each CUDA process holds on which GPU. */
export const COMPUTE_APPS_ARGS = [
  '--query-compute-apps=pid,gpu_uuid,used_memory',
  '--format=csv,noheader,nounits',
] as const;

export interface ComputeApp {
  pid: number;
  gpuUuid: string;
  usedMb: number;
}

/** Parses the per-process query; `[N/A]` memory (e.g. no permission to see another container's process) is skipped. */
export function parseComputeApps(csv: string): ComputeApp[] {
  const out: ComputeApp[] = [];
  for (const line of csv.split('\n')) {
    const f = line.split(',').map((s) => s.trim());
    if (f.length !== 3) continue;
    const pid = num(f[0]);
    const usedMb = num(f[2]);
    if (pid === null || usedMb === null || !/^GPU-[\w-]+$/.test(f[1]!)) continue;
    out.push({ pid, gpuUuid: f[1]!, usedMb });
  }
  return out;
}

export class NvidiaSmiComputeApps {
  constructor(
    private readonly binary: string,
    private readonly timeoutMs: number,
  ) {}

  async sample(): Promise<ComputeApp[]> {
    const { stdout } = await execa(this.binary, [...COMPUTE_APPS_ARGS], {
      timeout: this.timeoutMs,
      killSignal: 'SIGKILL',
      stdin: 'ignore',
      maxBuffer: 1024 * 1024,
    });
    return parseComputeApps(stdout);
  }
}
