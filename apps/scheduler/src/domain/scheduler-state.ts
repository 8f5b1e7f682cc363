/**
 * Everything a scheduler knows, kept by every replica (the leader and its warm standbys) as a projection of the jobs
 * stream: the queue order, the tokens held (dispatched or running attempts), the retries waiting out their delay and
 * measured durations. `apply` is pure bookkeeping (no I/O), so the whole state machine is unit-testable.
 */
import { priorityLevel, type StoredJob } from '@gantry/contracts';
import { Capacity, type Reservation } from './capacity';
import { DependencyIndex } from './dependency-index';
import { DueSet } from './due-set';
import { DurationStats } from './eta';
import { FairShare, slotsOf } from './fair-share';
import { OrderIndex } from './order-index';
import type { Entry } from './ordered-set';

export interface Holding {
  state: 'dispatched' | 'running';
  pool: string;
  tenant: string;
  level: number;
  entry: Entry;
  workerId: string;
  /** The attempt this token is for. */
  attempt: number;
  generation: number;
  since: number;
  /** Dispatch stream sequence, for dispatched holdings. */
  dispatchSeq?: number;
}

export interface Counters {
  completed: number;
  failed: number;
  cancelled: number;
  retried: number;
  processingSecondsSum: number;
  processingCount: number;
  waitSecondsSum: number;
  waitCount: number;
}

export interface StateHooks {
  /** A revision put the job in the queue order (the dispatcher keeps recent ones to skip re-reading them). */
  onQueued?(s: StoredJob): void;
  /** Something changed that may let more work run. */
  onWorkAvailable?(): void;
  /** A retry now waits until `retryAt` (epoch ms). */
  onRetryScheduled?(jobId: string, retryAt: number): void;
  /** A `scheduled` job now waits until `runAt` (epoch ms). */
  onDelayScheduled?(jobId: string, runAt: number): void;
  /**
   * Waiting children that a revision may have made decidable (a job entered `waiting`, or a parent of waiting jobs
   * ended): the leader's dependency tracker evaluates them.
   */
  onDependencies?(childIds: readonly string[]): void;
  /** A worker is named by a running attempt (so its liveness gets watched even if it never heartbeats again). */
  onWorkerReferenced?(workerId: string): void;
  /** An attempt started (for metrics; live revisions only). */
  onStarted?(job: StoredJob): void;
  /** A job reached a terminal state (for metrics). */
  onTerminal?(job: StoredJob): void;
  /** Default GPU memory of a job of this pool and type that declares none (the learned peak), if any. */
  defaultGpuMemoryMb?(pool: string, type: string): number | undefined;
}

/**
 * The queue entry of a job. A job that needs GPUs but declares no memory (no `gpu`, or `memoryMb: 0`) reserves the
 * learned peak of its type when one is known (`defaultGpuMemoryMb`), else nothing.
 */
export function entryOf(
  s: StoredJob,
  hooks?: Pick<StateHooks, 'defaultGpuMemoryMb'>,
  oomCapMb?: (pool: string) => number | undefined,
): Entry {
  const r = s.record;
  let declared = r.gpu?.memoryMb ?? 0;
  // A request raised after a GPU_OOM never asks for more than the pool's largest GPU can give (see oomCapMb).
  if (r.gpu?.declaredMemoryMb !== undefined) declared = Math.min(declared, oomCapMb?.(r.pool) ?? declared);
  const wantsGpu = !r.gpu || r.gpu.count > 0;
  return {
    seq: r.queueSeq ?? s.revision,
    id: r.id,
    enqueuedAt: Date.parse(r.enqueuedAt),
    gpuCount: r.gpu ? r.gpu.count : -1,
    gpuMemoryMb: declared > 0 || !wantsGpu ? declared : (hooks?.defaultGpuMemoryMb?.(r.pool, r.type) ?? 0),
    generation: r.generation,
    attempts: r.attempts,
  };
}

export class SchedulerState {
  readonly index = new OrderIndex();
  readonly capacity: Capacity;
  readonly holdings = new Map<string, Holding>();
  readonly retrying = new Map<string, number>();
  /** The tenant of each job in `retrying` (for the per-tenant depth gateways enforce TENANT_MAX_QUEUED_JOBS with). */
  private readonly retryTenants = new Map<string, string>();
  /**
   * `scheduled` jobs and their due time (epoch ms): one compact entry per job ({@link DueSet}, ~60 bytes), no queue
   * entry and no token, so a million scheduled jobs cost no more than a million queued ones. Their counts per tenant
   * and pool are kept as counters (a job's tenant and pool never change, so the revision that ends the wait names them).
   */
  readonly scheduled = new DueSet();
  private readonly scheduledByTenant = new Map<string, number>();
  private readonly scheduledByPool = new Map<string, number>();
  /** `waiting` jobs and their dependency edges (parent → waiting children), with counts per tenant and pool. */
  readonly dependencies = new DependencyIndex();
  readonly durations = new DurationStats();
  readonly counters: Counters = {
    completed: 0,
    failed: 0,
    cancelled: 0,
    retried: 0,
    processingSecondsSum: 0,
    processingCount: 0,
    waitSecondsSum: 0,
    waitCount: 0,
  };
  /** Highest jobs-stream sequence applied. */
  lastApplied = 0;

  constructor(
    maxConcurrent: number,
    tenantCap: number | undefined,
    private hooks: StateHooks = {},
    /** Weighted fair share between tenants (every weight 1, half-life 300 s, wall clock when not given). */
    readonly fair: FairShare = new FairShare(),
  ) {
    this.capacity = new Capacity(maxConcurrent, tenantCap);
    this.capacity.onReservation = (r, delta) =>
      delta > 0 ? fair.acquire(r.tenant, slotsOf(r.gpuIndices)) : fair.release(r.tenant, slotsOf(r.gpuIndices));
  }

  /** Fair-share rank of a tenant's head job (of `headGpuCount` GPUs, -1 = unspecified) at `now` (FairShare.rank). */
  rank(tenant: string, headGpuCount: number, now: number): readonly [number, number] {
    return this.fair.rank(tenant, slotsOf(headGpuCount), now);
  }

  /**
   * Connects the state's events to the parts that react to them, once they exist (they read the state, so they are
   * built after it). Events before this call go nowhere; the composition root wires before anything is applied.
   */
  wire(hooks: StateHooks): void {
    this.hooks = hooks;
  }

  /**
   * Applies one record revision. `live` is false while replaying the stream's snapshot at start, when counters
   * are not incremented (they count what this replica saw happen).
   */
  apply(s: StoredJob, live: boolean): void {
    if (s.revision <= this.lastApplied) return;
    this.lastApplied = s.revision;
    const r = s.record;
    const level = priorityLevel(r.priority);
    const fromLevel = s.event.change?.fromPriority ? priorityLevel(s.event.change.fromPriority) : level;
    const entry = entryOf(s, this.hooks, (pool) => this.capacity.oomCapMb(pool));
    const held = this.holdings.get(r.id);
    const decidable = this.dependencies.apply(s);
    if (decidable.length > 0) this.hooks.onDependencies?.(decidable);

    // Whatever the new status, a previous retry wait is over (a retrying revision sets a new one below).
    this.retrying.delete(r.id);
    this.retryTenants.delete(r.id);
    // Likewise a previous delay (a scheduled revision — e.g. a priority change — sets it again below).
    if (this.scheduled.delete(r.id)) {
      bump(this.scheduledByTenant, r.tenant, -1);
      bump(this.scheduledByPool, r.pool, -1);
    }

    switch (r.status) {
      case 'scheduled':
      case 'waiting': {
        // Not in the queue order and holding nothing (a revision never moves a started job back here; a stale
        // holding or index entry from an earlier generation is dropped all the same).
        if (held) this.releaseHolding(r.id);
        this.index.removeAnywhere(r.pool, r.tenant, entry.seq);
        if (r.status === 'scheduled') {
          const runAt = r.runAt ? Date.parse(r.runAt) : Date.parse(r.updatedAt);
          this.scheduled.set(r.id, runAt);
          bump(this.scheduledByTenant, r.tenant, 1);
          bump(this.scheduledByPool, r.pool, 1);
          this.hooks.onDelayScheduled?.(r.id, runAt);
        }
        return;
      }
      case 'queued': {
        if (held) {
          if (held.state === 'dispatched' && held.generation === r.generation && held.attempt === r.attempts + 1) {
            // Still waiting for its worker (e.g. a priority change of a dispatched job): the dispatch stands.
            held.level = level;
            held.entry = entry;
            return;
          }
          this.releaseHolding(r.id);
        }
        if (!this.index.remove(r.pool, r.tenant, fromLevel, entry.seq))
          this.index.removeAnywhere(r.pool, r.tenant, entry.seq);
        this.index.add(r.pool, r.tenant, level, entry);
        this.hooks.onQueued?.(s);
        this.hooks.onWorkAvailable?.();
        return;
      }
      case 'running': {
        if (!this.index.remove(r.pool, r.tenant, level, entry.seq))
          this.index.removeAnywhere(r.pool, r.tenant, entry.seq);
        const workerId = r.workerId ?? 'unknown';
        const same =
          held && held.workerId === workerId && held.generation === r.generation && held.attempt === r.attempts;
        if (!same) {
          if (held) this.releaseHolding(r.id);
          this.capacity.reserve({
            jobId: r.id,
            tenant: r.tenant,
            pool: r.pool,
            workerId,
            gpuIndices: r.gpuIndices ?? [],
            memoryMb: r.gpu && r.gpu.count >= 1 ? r.gpu.memoryMb : 0,
          });
          this.hooks.onWorkerReferenced?.(workerId);
        }
        if (s.event.type === 'job.started' && live) this.started(s, entry);
        this.holdings.set(r.id, {
          state: 'running',
          pool: r.pool,
          tenant: r.tenant,
          level,
          entry,
          workerId,
          attempt: r.attempts,
          generation: r.generation,
          since: held && same ? held.since : Date.parse(r.startedAt ?? r.updatedAt),
        });
        return;
      }
      case 'retrying': {
        // An attempt recorded by its outcome alone (no running revision: WORKER_STARTED_REVISION_DELAY_MS) started
        // here too; its token, held since the dispatch, is released the same way.
        if (s.event.started && live) this.started(s, entry);
        if (held) this.releaseHolding(r.id);
        this.index.removeAnywhere(r.pool, r.tenant, entry.seq);
        const retryAt = r.retryAt ? Date.parse(r.retryAt) : Date.parse(r.updatedAt);
        this.retrying.set(r.id, retryAt);
        this.retryTenants.set(r.id, r.tenant);
        if (live && s.event.type === 'job.retrying') this.counters.retried++;
        this.hooks.onRetryScheduled?.(r.id, retryAt);
        this.hooks.onWorkAvailable?.();
        return;
      }
      case 'completed':
      case 'failed':
      case 'cancelled': {
        if (s.event.started && live) this.started(s, entry);
        if (held) this.releaseHolding(r.id);
        this.index.removeAnywhere(r.pool, r.tenant, entry.seq);
        const seconds =
          r.startedAt && r.finishedAt && r.status !== 'cancelled'
            ? (Date.parse(r.finishedAt) - Date.parse(r.startedAt)) / 1000
            : undefined;
        // Durations seen in the snapshot feed the estimate too, so a restarted scheduler has one at once.
        if (seconds !== undefined) this.durations.observe(r.pool, seconds);
        if (live) {
          if (r.status === 'completed') this.counters.completed++;
          else if (r.status === 'failed') this.counters.failed++;
          else this.counters.cancelled++;
          if (seconds !== undefined) {
            this.counters.processingSecondsSum += seconds;
            this.counters.processingCount++;
          }
          this.hooks.onTerminal?.(s);
        }
        this.hooks.onWorkAvailable?.();
        return;
      }
    }
  }

  /** An attempt started: the metrics' hook and the wait-time counters (live revisions only). */
  private started(s: StoredJob, entry: Entry): void {
    const r = s.record;
    this.hooks.onStarted?.(s);
    this.counters.waitSecondsSum += Math.max(0, (Date.parse(r.startedAt ?? r.updatedAt) - entry.enqueuedAt) / 1000);
    this.counters.waitCount++;
  }

  /** Drops a token (the attempt ended, or the dispatch went stale). */
  releaseHolding(jobId: string): Holding | undefined {
    const h = this.holdings.get(jobId);
    if (!h) return undefined;
    this.holdings.delete(jobId);
    this.capacity.release(jobId);
    this.hooks.onWorkAvailable?.();
    return h;
  }

  /** Takes a queued job out of the order and holds a token for it on a worker (the leader dispatching). */
  hold(
    c: { pool: string; tenant: string; level: number; entry: Entry },
    placement: Omit<Reservation, 'jobId' | 'tenant' | 'pool'>,
    now: number,
  ): Holding {
    this.index.remove(c.pool, c.tenant, c.level, c.entry.seq);
    this.capacity.reserve({ jobId: c.entry.id, tenant: c.tenant, pool: c.pool, ...placement });
    const h: Holding = {
      state: 'dispatched',
      pool: c.pool,
      tenant: c.tenant,
      level: c.level,
      entry: c.entry,
      workerId: placement.workerId,
      attempt: c.entry.attempts + 1,
      generation: c.entry.generation,
      since: now,
    };
    this.holdings.set(c.entry.id, h);
    return h;
  }

  /** Gives a dispatched job back to the queue at its place (its worker dropped it, died or the publish failed). */
  requeue(jobId: string): boolean {
    const h = this.holdings.get(jobId);
    if (!h || h.state !== 'dispatched') return false;
    this.releaseHolding(jobId);
    this.index.add(h.pool, h.tenant, h.level, h.entry);
    this.hooks.onWorkAvailable?.();
    return true;
  }

  /**
   * Queued (dispatched-not-started included), retrying, scheduled and waiting jobs per tenant (what
   * TENANT_MAX_QUEUED_JOBS counts), tenants with none left out.
   * O(pools × levels × tenants + holdings + retrying): computed for the stats broadcast, not per decision.
   */
  tenantDepths(): Record<string, number> {
    const m = this.index.tenantDepths();
    for (const h of this.holdings.values()) if (h.state === 'dispatched') m.set(h.tenant, (m.get(h.tenant) ?? 0) + 1);
    for (const t of this.retryTenants.values()) m.set(t, (m.get(t) ?? 0) + 1);
    for (const [t, n] of this.scheduledByTenant) m.set(t, (m.get(t) ?? 0) + n);
    for (const [t, n] of this.dependencies.tenantCounts()) m.set(t, (m.get(t) ?? 0) + n);
    return Object.fromEntries(m);
  }

  /** `scheduled` jobs per pool (pools with none left out). */
  scheduledDepths(): ReadonlyMap<string, number> {
    return this.scheduledByPool;
  }

  /** `waiting` jobs per pool (pools with none left out). */
  waitingDepths(): ReadonlyMap<string, number> {
    return this.dependencies.poolCounts();
  }

  /** Queued jobs per level, counting dispatched-not-started ones (they are still `queued`). */
  depth(): { byLevel: number[]; total: number } {
    const d = this.index.depth();
    for (const h of this.holdings.values()) {
      if (h.state === 'dispatched') {
        d.byLevel[h.level]!++;
        d.total++;
      }
    }
    return d;
  }

  runningCount(): number {
    let n = 0;
    for (const h of this.holdings.values()) if (h.state === 'running') n++;
    return n;
  }
}

/** Adds `by` to a counter, dropping it at zero (the maps list only tenants and pools with scheduled jobs). */
function bump(m: Map<string, number>, key: string, by: number): void {
  const n = (m.get(key) ?? 0) + by;
  if (n > 0) m.set(key, n);
  else m.delete(key);
}
