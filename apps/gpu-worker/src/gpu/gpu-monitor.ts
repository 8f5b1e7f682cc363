/**
 * The worker's live view of its GPUs: every `intervalMs` it samples telemetry, reads new XID lines, and updates
 * health; heartbeats carry {@link GpuMonitor.statuses}. Health changes go to `onChange` (the worker logs them, counts
 * them, hands back attempts on a newly cordoned device and heartbeats at once).
 */
import type { GpuInfo, GpuStatus } from '@gantry/contracts';
import type { GpuHealthTracker, HealthChange } from './gpu-health';
import type { ComputeApp, TelemetrySampler } from './gpu-telemetry';
import type { PeakMemory, RunningOnGpus } from './peak-memory';
import type { XidLogTail } from './xid-log';

export interface GpuMonitorDeps {
  devices: readonly GpuInfo[];
  sampler?: TelemetrySampler;
  xid?: XidLogTail;
  health: GpuHealthTracker;
  /** Per-process memory, the attempts running now, and what is learned from both (absent: nothing learned). */
  peaks?: { apps: { sample(): Promise<ComputeApp[]> }; running: () => RunningOnGpus[]; memory: PeakMemory };
  intervalMs: number;
  now?: () => number;
  onChange: (changes: HealthChange[]) => void;
  onXidError?: (err: unknown) => void;
}

export class GpuMonitor {
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private readonly xidCounts = new Map<string, number>();
  private readonly now: () => number;

  constructor(private readonly d: GpuMonitorDeps) {
    this.now = d.now ?? Date.now;
  }

  get devices(): readonly GpuInfo[] {
    return this.d.devices;
  }

  async start(): Promise<void> {
    if (this.d.devices.length === 0) return;
    await this.d.xid?.init().catch((err: unknown) => this.d.onXidError?.(err));
    await this.tick();
    this.timer = setInterval(() => void this.tick(), this.d.intervalMs);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.ticking;
  }

  /** One round: telemetry, XIDs, health. Never two at once; never throws. */
  tick(): Promise<void> {
    this.ticking ??= (async () => {
      try {
        const changes: HealthChange[] = [];
        const samples = await this.d.sampler?.sampleNow();
        if (this.d.xid && this.d.sampler) {
          const events = await this.d.xid.read().catch((err: unknown) => {
            this.d.onXidError?.(err);
            return [];
          });
          for (const e of events) {
            const physical = this.d.sampler.byPciBusId(e.pciBusId);
            if (!physical) continue;
            this.xidCounts.set(physical, (this.xidCounts.get(physical) ?? 0) + 1);
            changes.push(...this.d.health.xid(physical, e.code, this.now()));
          }
        }
        if (samples) changes.push(...this.d.health.observe(samples, this.now()));
        const p = this.d.peaks;
        if (p) {
          const running = p.running();
          if (running.some((a) => a.gpus.length > 0)) {
            // Peak memory is advisory: a failed sample only skips this observation.
            const apps = await p.apps.sample().catch(() => undefined);
            if (apps) p.memory.observe(running, apps);
          }
        }
        if (changes.length > 0) this.d.onChange(changes);
      } finally {
        this.ticking = undefined;
      }
    })();
    return this.ticking;
  }

  /** What heartbeats report: each device with its live figures (its physical GPU's, for a MIG instance) and health. */
  statuses(): GpuStatus[] {
    return this.d.devices.map((g) => {
      const physical = g.parentUuid ?? g.uuid;
      const s = this.d.sampler?.get(physical);
      const whole = !g.mig;
      return {
        ...g,
        // A MIG instance's memory and utilization are not in the per-GPU query: null rather than the GPU's figures.
        memoryUsedMb: whole ? (s?.memoryUsedMb ?? null) : null,
        memoryFreeMb: whole ? (s?.memoryFreeMb ?? null) : null,
        utilizationPercent: whole ? (s?.utilizationPercent ?? null) : null,
        temperatureC: s?.temperatureC ?? null,
        eccErrors: s?.eccErrors ?? null,
        xidErrors: this.xidCounts.get(physical) ?? 0,
        sampledAt: s?.sampledAt ?? null,
        ...this.d.health.status(g.uuid),
      };
    });
  }

  isCordoned(uuid: string): boolean {
    return this.d.health.isCordoned(uuid);
  }

  /** Admin cordon; undefined when the UUID names no device of this worker. */
  cordon(uuid: string, reason: string): GpuStatus[] | undefined {
    const changes = this.d.health.cordon(uuid, reason);
    if (!changes) return undefined;
    if (changes.length > 0) this.d.onChange(changes);
    return this.statusesOf(uuid);
  }

  uncordon(uuid: string): GpuStatus[] | undefined {
    const changes = this.d.health.uncordon(uuid);
    if (!changes) return undefined;
    if (changes.length > 0) this.d.onChange(changes);
    return this.statusesOf(uuid);
  }

  private statusesOf(uuid: string): GpuStatus[] {
    return this.statuses().filter((s) => s.uuid === uuid || s.parentUuid === uuid);
  }

  /**
   * An attempt ended, whatever its outcome: its measured peak is learned for its type — or, when it died of
   * `GPU_OOM`, the raised request its retry makes (so the type's default rises too).
   */
  attemptFinished(jobId: string, oom?: { type: string; requestMb: number }): void {
    this.d.peaks?.memory.ended(jobId, oom);
  }

  /** Peak GPU memory measured for a running attempt so far (MiB). */
  peakOf(jobId: string): number | undefined {
    return this.d.peaks?.memory.peakOf(jobId);
  }

  /** Learned peak memory per job type (MiB), for heartbeats. */
  learnedPeaks(): Record<string, number> {
    return this.d.peaks?.memory.learned() ?? {};
  }

  /** An attempt on these devices ended (see {@link GpuHealthTracker.attemptEnded}). */
  attemptEnded(uuids: readonly string[], jobId: string, failedEarly: boolean): void {
    const changes = this.d.health.attemptEnded(uuids, jobId, failedEarly, this.now());
    if (changes.length > 0) this.d.onChange(changes);
  }
}
