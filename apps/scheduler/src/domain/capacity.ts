/**
 * Concurrency tokens and placement. A reservation is held from dispatch until the attempt ends; it counts against
 * the global cap, the tenant cap, one slot of its worker and, per assigned GPU, one GPU slot and its memory.
 * Placement never oversubscribes a GPU's memory budget or slots; the record is the truth, so a reservation that the
 * record contradicts (a job found running elsewhere) is moved as the record says, even past a limit, and is counted.
 *
 * Since v1.1 placement also respects what the worker last saw on each GPU: a cordoned GPU gets nothing new, and a
 * job with declared memory `m` goes on a GPU only when, besides the reservation budget (`m ≤ total − reserved`),
 * `m ≤ free − max(0, reserved − used) − margin` — the live free memory, less what reservations on it have not yet
 * claimed, less a safety margin. GPUs without a live sample (MIG instances, a stale or missing sample) are judged on
 * the reservation budget alone.
 */
import type { GpuStatus } from '@gantry/contracts';

export interface GpuState {
  index: number;
  uuid: string;
  memoryTotalMb: number;
  reservedMb: number;
  jobs: number;
  /** The worker's last sample (null: none, or not for this device). */
  memoryUsedMb: number | null;
  memoryFreeMb: number | null;
  cordoned: boolean;
}

export interface WorkerState {
  id: string;
  pool: string;
  slots: number;
  slotsPerGpu: number;
  used: number;
  gpus: GpuState[];
  draining: boolean;
  /**
   * Its dispatch consumer is known to exist. A worker declared lost has its consumer deleted; if it comes back (a
   * zombie resumed), anything dispatched to it would wait forever holding a token, so it gets nothing until the
   * consumer is seen again.
   */
  ready: boolean;
  /**
   * Most attempts it accepts in one dispatch message, from its heartbeat (since v1.1; 1 when absent: a worker of an
   * older release reads only the single-attempt form).
   */
  dispatchBatchMax: number;
  /**
   * Whether its dispatches carry the job's record and revision (its start's compare-and-set hint), from its heartbeat
   * (`dispatchRecordHint`; true when absent: a worker of an older release uses the hint).
   */
  dispatchRecordHint: boolean;
}

export interface Reservation {
  jobId: string;
  tenant: string;
  pool: string;
  workerId: string;
  gpuIndices: number[];
  memoryMb: number;
}

export interface PlacementRequest {
  pool: string;
  /** -1 = unspecified (one GPU of a GPU worker, or a CPU slot), 0 = CPU only, n = n GPUs. */
  gpuCount: number;
  gpuMemoryMb: number;
}

export type Placement =
  | { ok: true; workerId: string; gpuIndices: number[]; memoryMb: number }
  | { ok: false; reason: 'no-worker' | 'no-slot' | 'no-memory' | 'never-fits' };

export class Capacity {
  private readonly workers = new Map<string, WorkerState>();
  private readonly reservations = new Map<string, Reservation>();
  private readonly perTenant = new Map<string, number>();
  /** Told of every reservation recorded (+1) and released (−1): fair share counts the slots tenants hold. */
  onReservation: ((r: Reservation, delta: 1 | -1) => void) | undefined;

  constructor(
    public maxConcurrent: number,
    public tenantCap?: number,
    /** Memory kept free on every GPU beyond what jobs declared, when its live free memory is known. */
    public gpuMarginMb = 0,
  ) {}

  get used(): number {
    return this.reservations.size;
  }

  get globalFree(): number {
    return Math.max(0, this.maxConcurrent - this.reservations.size);
  }

  tenantUsed(tenant: string): number {
    return this.perTenant.get(tenant) ?? 0;
  }

  tenantBlocked(tenant: string): boolean {
    return this.tenantCap !== undefined && this.tenantUsed(tenant) >= this.tenantCap;
  }

  reservation(jobId: string): Reservation | undefined {
    return this.reservations.get(jobId);
  }

  allReservations(): IterableIterator<Reservation> {
    return this.reservations.values();
  }

  worker(id: string): WorkerState | undefined {
    return this.workers.get(id);
  }

  allWorkers(): IterableIterator<WorkerState> {
    return this.workers.values();
  }

  /** Adds or refreshes a worker from its heartbeat, keeping what is reserved on it. */
  upsertWorker(w: {
    id: string;
    pool: string;
    slots: number;
    slotsPerGpu: number;
    gpus: GpuStatus[];
    draining: boolean;
    /** Known to have its dispatch consumer (kept from before when absent). */
    ready?: boolean;
    /** Most attempts per dispatch message it accepts (absent: 1, an older worker). */
    dispatchBatchMax?: number;
    /** Whether it uses the record a dispatch carries (absent: true, an older worker). */
    dispatchRecordHint?: boolean;
  }): void {
    const cur = this.workers.get(w.id);
    const gpus: GpuState[] = w.gpus.map((g) => {
      const old = cur?.gpus.find((x) => x.index === g.index);
      return {
        index: g.index,
        uuid: g.uuid,
        memoryTotalMb: g.memoryTotalMb,
        reservedMb: old?.reservedMb ?? 0,
        jobs: old?.jobs ?? 0,
        memoryUsedMb: g.memoryUsedMb ?? null,
        memoryFreeMb: g.memoryFreeMb ?? null,
        cordoned: g.health === 'cordoned',
      };
    });
    const state: WorkerState = {
      id: w.id,
      pool: w.pool,
      slots: w.slots,
      slotsPerGpu: Math.max(1, w.slotsPerGpu),
      used: cur?.used ?? 0,
      gpus,
      draining: w.draining,
      ready: w.ready ?? cur?.ready ?? false,
      dispatchBatchMax: Math.max(1, Math.floor(w.dispatchBatchMax ?? 1)),
      dispatchRecordHint: w.dispatchRecordHint !== false,
    };
    if (!cur) {
      // A worker first heard of after reservations naming it (e.g. jobs found running at takeover).
      for (const r of this.reservations.values()) {
        if (r.workerId !== w.id) continue;
        state.used++;
        for (const i of r.gpuIndices) {
          const g = gpus.find((x) => x.index === i);
          if (g) {
            g.jobs++;
            g.reservedMb += r.memoryMb;
          }
        }
      }
    }
    this.workers.set(w.id, state);
  }

  /** Marks whether the worker can receive dispatches (its consumer exists). Returns true when this changed. */
  setReady(id: string, ready: boolean): boolean {
    const w = this.workers.get(id);
    if (!w || w.ready === ready) return false;
    w.ready = ready;
    return true;
  }

  /** Forgets a worker; returns the reservations that were on it (still held until the caller releases them). */
  removeWorker(id: string): Reservation[] {
    this.workers.delete(id);
    return [...this.reservations.values()].filter((r) => r.workerId === id);
  }

  /** Free slots of a pool's live, non-draining workers. */
  poolFreeSlots(pool: string): number {
    let free = 0;
    for (const w of this.workers.values())
      if (w.pool === pool && !w.draining && w.ready) free += Math.max(0, w.slots - w.used);
    return free;
  }

  poolSlots(pool: string): number {
    let slots = 0;
    for (const w of this.workers.values()) if (w.pool === pool) slots += w.slots;
    return slots;
  }

  /**
   * The most a request raised after a GPU_OOM may reserve per GPU: the pool's largest GPU less the live-memory margin
   * (an idle GPU of that size can then take it); undefined while no worker of the pool reports a GPU.
   */
  oomCapMb(pool: string): number | undefined {
    const largest = this.poolLargestGpuMb(pool);
    return largest === undefined ? undefined : Math.max(1, largest - this.gpuMarginMb);
  }

  /** Largest GPU memory any live worker of the pool reported (undefined when none has a GPU). */
  poolLargestGpuMb(pool: string): number | undefined {
    let max: number | undefined;
    for (const w of this.workers.values()) {
      if (w.pool !== pool) continue;
      for (const g of w.gpus) max = Math.max(max ?? 0, g.memoryTotalMb);
    }
    return max;
  }

  /** Where a job of this shape would run now, or why it cannot (without reserving anything). */
  place(req: PlacementRequest): Placement {
    let anyWorker = false;
    let everFits = false;
    let slotFree = false;
    let best: { workerId: string; gpuIndices: number[]; score: number } | undefined;
    for (const w of this.workers.values()) {
      if (w.pool !== req.pool) continue;
      anyWorker = true;
      if (req.gpuCount >= 1) {
        const big = w.gpus.filter((g) => g.memoryTotalMb >= req.gpuMemoryMb);
        if (big.length >= req.gpuCount) everFits = true;
        else continue;
      } else {
        everFits = true;
      }
      if (w.draining || !w.ready || w.used >= w.slots) continue;
      slotFree = true;
      const pick = this.pickGpus(w, req);
      if (!pick) continue;
      if (!best || pick.score < best.score) best = { workerId: w.id, gpuIndices: pick.indices, score: pick.score };
    }
    if (best)
      return {
        ok: true,
        workerId: best.workerId,
        gpuIndices: best.gpuIndices,
        memoryMb: best.gpuIndices.length > 0 ? req.gpuMemoryMb : 0,
      };
    if (!anyWorker) return { ok: false, reason: 'no-worker' };
    if (!everFits) return { ok: false, reason: 'never-fits' };
    return { ok: false, reason: slotFree ? 'no-memory' : 'no-slot' };
  }

  /** GPUs for the job on one worker; lower score = better (best fit on memory, then the emptier worker). */
  private pickGpus(w: WorkerState, req: PlacementRequest): { indices: number[]; score: number } | undefined {
    const freeSlotsScore = w.used / Math.max(1, w.slots);
    if (req.gpuCount === 0 || (req.gpuCount < 0 && w.gpus.length === 0)) return { indices: [], score: freeSlotsScore };
    const open = w.gpus.filter((x) => !x.cordoned && x.jobs < w.slotsPerGpu);
    if (req.gpuCount < 0) {
      // Unspecified: the least busy GPU with a free GPU slot and room for the default (learned) memory, if any.
      const m = req.gpuMemoryMb;
      const g = open
        .filter((x) => x.memoryTotalMb - x.reservedMb >= m && this.liveHeadroomMb(x) >= m)
        .sort((a, b) => a.jobs - b.jobs || a.index - b.index)[0];
      return g ? { indices: [g.index], score: freeSlotsScore } : undefined;
    }
    const fits = open
      .filter((g) => g.memoryTotalMb - g.reservedMb >= req.gpuMemoryMb && this.liveHeadroomMb(g) >= req.gpuMemoryMb)
      .sort((a, b) => a.memoryTotalMb - a.reservedMb - (b.memoryTotalMb - b.reservedMb) || a.index - b.index);
    if (fits.length < req.gpuCount) return undefined;
    const chosen = fits.slice(0, req.gpuCount);
    const leftover = chosen.reduce((s, g) => s + (g.memoryTotalMb - g.reservedMb - req.gpuMemoryMb), 0);
    return { indices: chosen.map((g) => g.index).sort((a, b) => a - b), score: leftover + freeSlotsScore };
  }

  /**
   * Memory a new job may still take on this GPU by its live figures: `free − max(0, reserved − used) − margin`
   * (Infinity when the worker reported no live figures for it).
   */
  liveHeadroomMb(g: GpuState): number {
    if (g.memoryFreeMb === null) return Infinity;
    const unclaimed = Math.max(0, g.reservedMb - (g.memoryUsedMb ?? 0));
    return g.memoryFreeMb - unclaimed - this.gpuMarginMb;
  }

  /** Records a reservation (dispatch) or one the record proves (a job running on a worker). Idempotent per job. */
  reserve(r: Reservation): void {
    if (this.reservations.has(r.jobId)) this.release(r.jobId);
    this.reservations.set(r.jobId, r);
    this.perTenant.set(r.tenant, this.tenantUsed(r.tenant) + 1);
    this.onReservation?.(r, 1);
    const w = this.workers.get(r.workerId);
    if (!w) return;
    w.used++;
    for (const i of r.gpuIndices) {
      const g = w.gpus.find((x) => x.index === i);
      if (g) {
        g.jobs++;
        g.reservedMb += r.memoryMb;
      }
    }
  }

  release(jobId: string): Reservation | undefined {
    const r = this.reservations.get(jobId);
    if (!r) return undefined;
    this.reservations.delete(jobId);
    const t = this.tenantUsed(r.tenant) - 1;
    if (t > 0) this.perTenant.set(r.tenant, t);
    else this.perTenant.delete(r.tenant);
    this.onReservation?.(r, -1);
    const w = this.workers.get(r.workerId);
    if (w) {
      w.used = Math.max(0, w.used - 1);
      for (const i of r.gpuIndices) {
        const g = w.gpus.find((x) => x.index === i);
        if (g) {
          g.jobs = Math.max(0, g.jobs - 1);
          g.reservedMb = Math.max(0, g.reservedMb - r.memoryMb);
        }
      }
    }
    return r;
  }
}
