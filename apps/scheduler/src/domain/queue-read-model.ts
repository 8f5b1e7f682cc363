/**
 * What the scheduler answers about its queue: state, depths, positions, metrics, concurrency and worker views. Pure
 * reads of {@link SchedulerState} plus three plain inputs (the queue config in force, the live workers' heartbeats
 * and the time), so every figure is unit-testable without a broker.
 */
import {
  priorityLevel,
  type ConcurrencyStats,
  type GpuStatus,
  type GpuView,
  type PoolQueueState,
  type PositionsReply,
  type PositionsRequest,
  type QueueMetrics,
  type QueueState,
  type WorkerHeartbeat,
  type WorkerView,
} from '@gantry/contracts';
import type { SchedulerState } from './scheduler-state';

/** The inputs a read needs besides the state; read at each call (they change under the state). */
export interface ReadModelSources {
  /** The queue config in force: the stored record over the environment's defaults. */
  queueConfig(): { paused: boolean; draining: boolean; maxQueueSize: number };
  /** Heartbeats of the workers judged alive. */
  liveWorkers(): readonly WorkerHeartbeat[];
  /** Epoch ms. */
  now(): number;
}

export interface ReadModelSettings {
  /** `AGING_SECONDS` in ms: how positions age. */
  agingMs: number;
  /** Epoch ms this replica started (uptime). */
  startedAt: number;
}

export class QueueReadModel {
  constructor(
    private readonly state: SchedulerState,
    private readonly sources: ReadModelSources,
    private readonly settings: ReadModelSettings,
  ) {}

  queueState(): QueueState {
    const d = this.state.depth();
    const c = this.sources.queueConfig();
    return {
      paused: c.paused,
      draining: c.draining,
      depth: { urgent: d.byLevel[0]!, high: d.byLevel[1]!, normal: d.byLevel[2]!, low: d.byLevel[3]!, total: d.total },
      running: this.state.runningCount(),
      retrying: this.state.retrying.size,
      maxConcurrentJobs: this.state.capacity.maxConcurrent,
      availableTokens: this.state.capacity.globalFree,
      maxQueueSize: c.maxQueueSize,
      workers: this.sources.liveWorkers().length,
      scheduled: this.state.scheduled.size,
      waiting: [...this.state.waitingDepths().values()].reduce((a, b) => a + b, 0),
      pools: this.poolStates(),
    };
  }

  /**
   * Queued jobs per pool and priority (dispatched-not-started included) and each pool's scheduled jobs, for every
   * pool a worker serves or a queued or scheduled job names, sorted by name: O(pools × levels + tokens held), never
   * O(queued jobs), so `GET /v1/queue` stays cheap at a million queued.
   */
  poolStates(): PoolQueueState[] {
    const levels = new Map<string, number[]>();
    const of = (pool: string) => {
      let l = levels.get(pool);
      if (!l) levels.set(pool, (l = [0, 0, 0, 0]));
      return l;
    };
    for (const w of this.state.capacity.allWorkers()) of(w.pool);
    for (const pool of this.state.index.poolNames()) {
      const d = this.state.index.depth(pool).byLevel;
      const l = of(pool);
      for (let i = 0; i < l.length; i++) l[i]! += d[i] ?? 0;
    }
    for (const h of this.state.holdings.values()) if (h.state === 'dispatched') of(h.pool)[h.level]!++;
    const scheduled = this.state.scheduledDepths();
    for (const pool of scheduled.keys()) of(pool);
    const waiting = this.state.waitingDepths();
    for (const pool of waiting.keys()) of(pool);
    return [...levels.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([pool, l]) => ({
        pool,
        depth: { urgent: l[0]!, high: l[1]!, normal: l[2]!, low: l[3]!, total: l[0]! + l[1]! + l[2]! + l[3]! },
        scheduled: scheduled.get(pool) ?? 0,
        waiting: waiting.get(pool) ?? 0,
      }));
  }

  queueMetrics(): QueueMetrics {
    const q = this.queueState();
    const c = this.state.counters;
    return {
      queueLength: q.depth.total,
      activeJobs: q.running,
      activeWorkers: q.workers,
      utilizationPercent: q.maxConcurrentJobs > 0 ? round((this.state.capacity.used / q.maxConcurrentJobs) * 100) : 0,
      queueUtilizationPercent: round(((q.depth.total + q.retrying) / q.maxQueueSize) * 100),
      performance: {
        totalJobsProcessed: c.completed + c.failed,
        totalJobsFailed: c.failed,
        totalJobsRetried: c.retried,
        averageProcessingSeconds: c.processingCount ? round(c.processingSecondsSum / c.processingCount) : 0,
        averageWaitSeconds: c.waitCount ? round(c.waitSecondsSum / c.waitCount) : 0,
        uptimeSeconds: round((this.sources.now() - this.settings.startedAt) / 1000),
      },
    };
  }

  concurrency(): ConcurrencyStats {
    const q = this.queueState();
    return {
      maxParallelJobs: q.maxConcurrentJobs,
      queueSize: q.depth.total,
      activeJobs: this.state.capacity.used,
      availableTokens: q.availableTokens,
      workers: q.workers,
    };
  }

  /** Live workers by id; `busy` is the tokens this scheduler holds on it (the worker's own count if it holds none). */
  workers(): WorkerView[] {
    return this.sources
      .liveWorkers()
      .map((hb) => ({
        id: hb.id,
        pool: hb.pool,
        slots: hb.slots,
        busy: this.state.capacity.worker(hb.id)?.used ?? hb.runningJobs.length,
        gpus: hb.gpus.map(gpuView),
        runningJobs: hb.runningJobs,
        lastHeartbeatAt: hb.heartbeatAt,
        draining: hb.draining,
      }))
      .sort((a, b) => a.id.localeCompare(b.id));
  }

  /**
   * Queue positions of the jobs asked about: 0 for a job holding a token (dispatched or running), none for a job not
   * in the queue order; the wait estimate is null while the queue is paused.
   */
  positions(req: PositionsRequest): PositionsReply {
    const now = this.sources.now();
    const paused = this.sources.queueConfig().paused;
    const { index, capacity, durations, holdings } = this.state;
    const out: PositionsReply['positions'] = {};
    for (const j of req.ids ?? []) {
      if (holdings.has(j.id)) {
        out[j.id] = { queuePosition: 0, estimatedWaitSeconds: paused ? null : 0 };
        continue;
      }
      const position = index.position(
        j.pool,
        j.tenant,
        priorityLevel(j.priority),
        j.queueSeq,
        now,
        this.settings.agingMs,
        this.state.fair,
      );
      if (position === undefined) continue;
      const slots = Math.min(capacity.maxConcurrent, capacity.poolSlots(j.pool));
      const free = Math.min(capacity.globalFree, capacity.poolFreeSlots(j.pool));
      out[j.id] = {
        queuePosition: position,
        estimatedWaitSeconds: paused ? null : durations.estimate(j.pool, position, slots, free),
      };
    }
    return { positions: out };
  }

  /** Queued jobs per pool (dispatched-not-started included), every pool a worker serves listed even when empty. */
  poolDepths(): Map<string, number> {
    const out = new Map<string, number>();
    for (const w of this.state.capacity.allWorkers()) out.set(w.pool, 0);
    for (const pool of this.state.index.poolNames()) out.set(pool, this.state.index.depth(pool).total);
    for (const h of this.state.holdings.values())
      if (h.state === 'dispatched') out.set(h.pool, (out.get(h.pool) ?? 0) + 1);
    return out;
  }

  /**
   * The default memory request of a job of this type that declares none: the largest peak live workers of its pool
   * measured for the type, never more than the pool's largest GPU (a hint must not make a job unplaceable).
   */
  learnedPeakMb(pool: string, type: string): number | undefined {
    let peak: number | undefined;
    for (const hb of this.sources.liveWorkers()) {
      const v = hb.pool === pool ? hb.learnedPeaksMb?.[type] : undefined;
      if (typeof v === 'number' && v > 0) peak = Math.max(peak ?? 0, Math.ceil(v));
    }
    const largest = this.state.capacity.poolLargestGpuMb(pool);
    return peak === undefined || largest === undefined ? undefined : Math.min(peak, largest);
  }
}

/** A GPU on `GET /v1/workers`: what the worker reported, unknown live figures as null (older workers send none). */
export function gpuView(g: GpuStatus): GpuView {
  return {
    index: g.index,
    uuid: g.uuid,
    name: g.name,
    memoryTotalMb: g.memoryTotalMb,
    ...(g.parentUuid ? { parentUuid: g.parentUuid } : {}),
    memoryUsedMb: g.memoryUsedMb ?? null,
    memoryFreeMb: g.memoryFreeMb ?? null,
    utilizationPercent: g.utilizationPercent ?? null,
    temperatureC: g.temperatureC ?? null,
    eccErrors: g.eccErrors ?? null,
    xidErrors: g.xidErrors ?? 0,
    sampledAt: g.sampledAt ?? null,
    mig: g.mig === true,
    health: g.health === 'cordoned' ? 'cordoned' : 'ok',
    ...(g.health === 'cordoned' && g.cordonReason ? { cordonReason: g.cordonReason } : {}),
  };
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}
