/**
 * Learned GPU memory per job type. Every sample, the memory CUDA processes hold on each whole GPU (nvidia-smi
 * `--query-compute-apps`) is attributed to the attempt running there — only when it is the GPU's one attempt, since
 * processes cannot be told apart by job from the tool alone — and each attempt keeps its peak. When the attempt ends,
 * its peak joins its job type's last {@link WINDOW} peaks; the type's learned peak is the largest of them (so a type
 * whose jobs shrink follows within a window). Workers report the learned peaks in their heartbeats; the scheduler
 * uses them as the default memory request of jobs that declare none.
 */
import type { ComputeApp } from './gpu-telemetry';

export const WINDOW = 20;

export interface RunningOnGpus {
  jobId: string;
  type: string;
  gpus: readonly string[];
}

export class PeakMemory {
  private readonly peaks = new Map<string, { type: string; peakMb: number }>();
  private readonly byType = new Map<string, number[]>();

  /** One sample of the processes on the GPUs, against the attempts running now. */
  observe(running: readonly RunningOnGpus[], apps: readonly ComputeApp[]): void {
    const attemptsOn = new Map<string, number>();
    for (const a of running) for (const g of a.gpus) attemptsOn.set(g, (attemptsOn.get(g) ?? 0) + 1);
    const usedOn = new Map<string, number>();
    for (const p of apps) usedOn.set(p.gpuUuid, (usedOn.get(p.gpuUuid) ?? 0) + p.usedMb);
    for (const a of running) {
      if (a.gpus.length === 0 || a.gpus.some((g) => attemptsOn.get(g) !== 1)) continue;
      // Per GPU, as requests are: the most the attempt holds on any one of its GPUs.
      const used = Math.max(...a.gpus.map((g) => usedOn.get(g) ?? 0));
      const cur = this.peaks.get(a.jobId);
      if (!cur || used > cur.peakMb) this.peaks.set(a.jobId, { type: a.type, peakMb: used });
    }
  }

  /**
   * The attempt ended: its peak (when one was measured and is above 0) is learned for its type. An attempt that died of
   * GPU out-of-memory (`oom`) did not show its real need: the raised request of its retry is learned instead, when
   * larger (so the type's default rises with it).
   */
  ended(jobId: string, oom?: { type: string; requestMb: number }): void {
    const p = this.peaks.get(jobId);
    this.peaks.delete(jobId);
    const type = p?.type ?? oom?.type;
    const mb = Math.max(p?.peakMb ?? 0, oom?.requestMb ?? 0);
    if (type === undefined || mb <= 0) return;
    const list = this.byType.get(type) ?? [];
    list.push(mb);
    if (list.length > WINDOW) list.shift();
    this.byType.set(type, list);
  }

  /** Peak of the running attempt so far (undefined when none was measured). */
  peakOf(jobId: string): number | undefined {
    return this.peaks.get(jobId)?.peakMb;
  }

  /** Learned peak per job type (MiB). */
  learned(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [type, list] of this.byType) out[type] = Math.max(...list);
    return out;
  }
}
