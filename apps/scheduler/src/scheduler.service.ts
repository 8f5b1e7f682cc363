/**
 * Wires the scheduler together: every replica keeps the state warm (projection, workers, retry timers, config);
 * the elected leader alone dispatches, re-queues retries, declares workers lost, writes the listing index and
 * broadcasts queue statistics.
 */
import {
  BUCKETS,
  CONFIG_KEYS,
  STREAMS,
  SUBJECTS,
  TransitionRefused,
  priorityLevel,
  requestCancel,
  type Clock,
  type ConcurrencyStats,
  type DispatchReleased,
  type ListSyncReply,
  type PositionsReply,
  type PositionsRequest,
  type QueueConfigRecord,
  type QueueConfigUpdate,
  type QueueMetrics,
  type QueueState,
  type QueueStatsBroadcast,
  type GpuStatus,
  type GpuView,
  type WorkerView,
} from '@gantry/contracts';
import { decodeJson, encodeJson, RpcError, type NatsHandle } from '@gantry/jetstream';
import type { JobStore } from '@gantry/job-store';
import type { Logger, Registry } from '@gantry/telemetry';
import type { KV } from '@nats-io/kv';
import type { Subscription } from '@nats-io/transport-node';
import type { SchedulerConfig } from './config';
import { DemandGauge } from './demand/demand-gauge';
import { DispatchReconciler } from './dispatch/dispatch-reconciler';
import { Dispatcher } from './dispatch/dispatcher';
import { registerRecordCacheGauges } from './dispatch/record-cache';
import { SchedulerState } from './domain/scheduler-state';
import { LeaderElection } from './leader/leader-election';
import { ListIndexWriter, ListingBehindError } from './listing/list-index-writer';
import { JobProjection, ProjectionBehindError } from './projection/job-projection';
import { RetentionSweeper, type OutputsPort } from './retention/retention-sweeper';
import { RetryTimer } from './retries/retry-timer';
import { SchedulerMetrics } from './stats/metrics';
import { WorkerMonitor } from './workers/worker-monitor';

/** How long a `list-sync` may wait for the listing index (the gateway's RPC timeout is 2 s by default). */
const LIST_SYNC_TIMEOUT_MS = 1_500;

export class SchedulerService {
  readonly state: SchedulerState;
  private readonly projection: JobProjection;
  private readonly leader: LeaderElection;
  private readonly dispatcher: Dispatcher;
  private readonly monitor: WorkerMonitor;
  private readonly retries: RetryTimer;
  private readonly metrics: SchedulerMetrics;
  private listWriter: ListIndexWriter | undefined;
  private sweeper: RetentionSweeper | undefined;
  private configKv: KV | undefined;
  private queueConfig: QueueConfigRecord;
  private statsTimer: NodeJS.Timeout | undefined;
  private reconcileTimer: NodeJS.Timeout | undefined;
  private releasedSub: Subscription | undefined;
  private configWatch: Promise<void> | undefined;
  private leadership: Promise<void> = Promise.resolve();
  private readonly demand: DemandGauge;
  private readonly reconciler: DispatchReconciler;
  private stopConfigWatch: (() => void) | undefined;
  private readonly startedAt: number;

  constructor(
    readonly id: string,
    private readonly config: SchedulerConfig,
    private readonly nats: NatsHandle,
    private readonly jobs: JobStore,
    private readonly clock: Clock,
    registry: Registry,
    private readonly logger: Logger,
    private readonly outputs?: OutputsPort,
  ) {
    this.startedAt = clock.now().getTime();
    this.queueConfig = { paused: false, draining: false, updatedAt: new Date(0).toISOString() };
    this.state = new SchedulerState(config.MAX_CONCURRENT_JOBS, config.TENANT_MAX_CONCURRENT_JOBS, {
      onQueued: (stored) => this.dispatcher?.remember(stored),
      onWorkAvailable: () => this.dispatcher?.kick(),
      onRetryScheduled: (id, at) => this.retries?.scheduled(id, at),
      onWorkerReferenced: (w) => this.monitor?.reference(w),
      onStarted: (s) => this.metrics?.started(s),
      onTerminal: (s) => this.metrics?.finished(s),
      defaultGpuMemoryMb: (pool, type) => this.learnedPeakMb(pool, type),
    });
    this.state.capacity.gpuMarginMb = config.GPU_MEMORY_MARGIN_MB;
    this.metrics = new SchedulerMetrics(
      registry,
      this.state,
      () => this.leader.isLeader,
      () => ({ maxQueueSize: this.maxQueueSize }),
    );
    this.projection = new JobProjection(nats, this.state, logger);
    this.retries = new RetryTimer(jobs, this.state, clock, logger);
    this.dispatcher = new Dispatcher(
      nats,
      jobs,
      this.state,
      clock,
      { agingMs: config.AGING_SECONDS * 1000, batch: 256, recordCacheBytes: config.SCHEDULER_RECORD_CACHE_BYTES },
      this.metrics,
      logger,
      (reason) => {
        this.metrics.fenced();
        void this.leader.depose(reason);
      },
    );
    registerRecordCacheGauges(registry, () => this.dispatcher.cachedRecordBytes, config.SCHEDULER_RECORD_CACHE_BYTES);
    this.demand = new DemandGauge(nats, config.DEMAND_GAUGE_CAP, logger);
    this.reconciler = new DispatchReconciler({
      state: this.state,
      readDispatch: (seq) => nats.jsm.direct.getMessage(STREAMS.dispatch, { seq }),
      inFlightOn: (workerId, jobId) =>
        this.monitor.heartbeats.get(workerId)?.inflight.some((i) => i.jobId === jobId) ?? false,
      lostAfterMs: config.WORKER_LOST_AFTER_MS,
      now: () => clock.now().getTime(),
      logger,
    });
    this.monitor = new WorkerMonitor(
      nats,
      jobs,
      this.state,
      clock,
      config.WORKER_LOST_AFTER_MS,
      {
        isLeader: () => this.leader.isLeader,
        verifyLeadership: () => this.leader.verify(),
        workersChanged: () => this.dispatcher.workersChanged(),
        lost: () => this.metrics.workerLost(),
      },
      logger,
    );
    this.leader = new LeaderElection(
      nats,
      id,
      config.LEADER_LEASE_MS,
      {
        onElected: (epoch) => this.lead(epoch),
        onDeposed: () => this.follow(),
        onLeaseError: (op) => this.metrics.leaseError(op),
      },
      logger,
    );
  }

  get isLeader(): boolean {
    return this.leader.isLeader;
  }

  get ready(): boolean {
    return this.projection.caughtUp && this.nats.connected;
  }

  get maxQueueSize(): number {
    return this.queueConfig.maxQueueSize ?? this.config.MAX_QUEUE_SIZE;
  }

  async start(): Promise<void> {
    this.configKv = await this.nats.kvm.open(BUCKETS.config);
    await this.watchConfig();
    await this.monitor.start();
    await this.projection.start();
    await this.projection.whenCaughtUp();
    this.releasedSub = this.nats.nc.subscribe(SUBJECTS.dispatchReleased, {
      callback: (_err, msg) => {
        if (!this.leader.isLeader) return;
        try {
          const r = decodeJson<DispatchReleased>(msg.data);
          const h = this.state.holdings.get(r.jobId);
          if (h?.state === 'dispatched' && h.generation === r.generation && h.attempt === r.attempt)
            this.state.requeue(r.jobId);
        } catch {
          // malformed notice: the reconciliation timer covers it
        }
      },
    });
    await this.leader.start();
  }

  private async watchConfig(): Promise<void> {
    const kv = this.configKv!;
    const iter = await kv.watch({ key: CONFIG_KEYS.queue });
    this.stopConfigWatch = () => iter.stop();
    this.configWatch = (async () => {
      for await (const e of iter) {
        if (e.operation !== 'PUT') continue;
        try {
          this.applyConfig(e.json<QueueConfigRecord>());
        } catch (err) {
          this.logger.error({ err }, 'bad queue config record');
        }
      }
    })();
  }

  private applyConfig(c: QueueConfigRecord): void {
    this.queueConfig = c;
    this.state.capacity.maxConcurrent = c.maxConcurrentJobs ?? this.config.MAX_CONCURRENT_JOBS;
    this.dispatcher.paused = c.paused;
    this.dispatcher.kick();
  }

  /** Leadership changes run one after another, so a quick depose never interleaves with a slow takeover. */
  private lead(epoch: number): Promise<void> {
    const run = this.leadership.then(() => this.takeOver(epoch));
    this.leadership = run.catch(() => undefined);
    return run;
  }

  private follow(): Promise<void> {
    // Stop dispatching at once (not after a takeover still in progress); the rest waits its turn.
    this.dispatcher.deactivate();
    const run = this.leadership.then(() => this.standDown());
    this.leadership = run.catch(() => undefined);
    return run;
  }

  /**
   * The projection up to the stream's end before anything is dispatched; if it cannot get there, the takeover fails
   * (the leader steps down: LeaderElection deposes on a failed takeover) with a log line and a metric.
   */
  private async syncForTakeover(epoch: number): Promise<void> {
    try {
      await this.projection.sync(this.config.TAKEOVER_SYNC_TIMEOUT_MS);
    } catch (err) {
      if (!(err instanceof ProjectionBehindError)) throw err;
      this.metrics.takeoverAborted('projection_behind');
      this.logger.error(
        { epoch, applied: err.applied, target: err.target, waitedMs: err.waitedMs },
        'takeover aborted: the projection did not catch up with the jobs stream; stepping down without dispatching',
      );
      throw err;
    }
  }

  private async takeOver(epoch: number): Promise<void> {
    const current = () => this.leader.epoch === epoch;
    if (!current()) return;
    await this.syncForTakeover(epoch);
    if (!current()) return;
    this.monitor.refreshAll();
    await this.dispatcher.activate(epoch, () => this.syncForTakeover(epoch));
    if (!current()) {
      this.dispatcher.deactivate();
      return;
    }
    this.monitor.referenceHoldings();
    this.retries.activate();
    await this.demand.reset();
    const writer = new ListIndexWriter(this.nats, this.logger, this.projection);
    await writer.start();
    this.listWriter = writer;
    this.sweeper = new RetentionSweeper(
      this.nats,
      this.jobs,
      this.clock,
      {
        retentionMs: this.config.JOB_RETENTION_HOURS * 3_600_000,
        intervalMs: this.config.RETENTION_SWEEP_INTERVAL_MS,
        ...(this.outputs ? { outputs: this.outputs } : {}),
        listing: () => this.listWriter,
        removed: (n) => this.metrics.retentionRemoved(n),
      },
      this.logger,
    );
    this.sweeper.start();
    if (!current()) {
      await this.standDown();
      return;
    }
    this.statsTimer = setInterval(() => this.broadcastStats(), this.config.STATS_INTERVAL_MS);
    this.reconcileTimer = setInterval(
      () => void this.reconcileDispatches(),
      Math.max(1_000, this.config.WORKER_LOST_AFTER_MS),
    );
    this.broadcastStats();
    this.logger.info({ epoch, queued: this.state.index.size, held: this.state.holdings.size }, 'leading');
  }

  private async standDown(): Promise<void> {
    this.dispatcher.deactivate();
    this.retries.deactivate();
    if (this.statsTimer) clearInterval(this.statsTimer);
    if (this.reconcileTimer) clearInterval(this.reconcileTimer);
    this.statsTimer = undefined;
    this.reconcileTimer = undefined;
    const sweeper = this.sweeper;
    this.sweeper = undefined;
    await sweeper?.stop();
    const w = this.listWriter;
    this.listWriter = undefined;
    await w?.stop();
  }

  /** See {@link DispatchReconciler}: only a "not found" dispatch message is given back to the queue. */
  private async reconcileDispatches(): Promise<void> {
    if (!this.leader.isLeader) return;
    await this.reconciler.run();
  }

  queueState(): QueueState {
    const d = this.state.depth();
    return {
      paused: this.queueConfig.paused,
      draining: this.queueConfig.draining,
      depth: { urgent: d.byLevel[0]!, high: d.byLevel[1]!, normal: d.byLevel[2]!, low: d.byLevel[3]!, total: d.total },
      running: this.state.runningCount(),
      retrying: this.state.retrying.size,
      maxConcurrentJobs: this.state.capacity.maxConcurrent,
      availableTokens: this.state.capacity.globalFree,
      maxQueueSize: this.maxQueueSize,
      workers: this.monitor.liveWorkers().length,
    };
  }

  private broadcastStats(): void {
    if (!this.leader.isLeader) return;
    const msg: QueueStatsBroadcast = {
      v: 1,
      epoch: this.leader.epoch,
      at: this.clock.now().toISOString(),
      ...this.queueState(),
      tenants: this.state.tenantDepths(),
      appliedSeq: this.state.lastApplied,
    };
    this.nats.nc.publish(SUBJECTS.queueStats, encodeJson(msg));
    void this.demand.update(this.poolDepths());
  }

  /** Queued jobs per pool (dispatched-not-started included), every pool a worker serves listed even when empty. */
  private poolDepths(): Map<string, number> {
    const out = new Map<string, number>();
    for (const w of this.state.capacity.allWorkers()) out.set(w.pool, 0);
    for (const pool of this.state.index.poolNames()) out.set(pool, this.state.index.depth(pool).total);
    for (const h of this.state.holdings.values())
      if (h.state === 'dispatched') out.set(h.pool, (out.get(h.pool) ?? 0) + 1);
    return out;
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
        uptimeSeconds: round((this.clock.now().getTime() - this.startedAt) / 1000),
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

  /**
   * The default memory request of a job of this type that declares none: the largest peak live workers of its pool
   * measured for the type, never more than the pool's largest GPU (a hint must not make a job unplaceable).
   */
  learnedPeakMb(pool: string, type: string): number | undefined {
    let peak: number | undefined;
    for (const hb of this.monitor?.liveWorkers() ?? []) {
      const v = hb.pool === pool ? hb.learnedPeaksMb?.[type] : undefined;
      if (typeof v === 'number' && v > 0) peak = Math.max(peak ?? 0, Math.ceil(v));
    }
    const largest = this.state.capacity.poolLargestGpuMb(pool);
    return peak === undefined || largest === undefined ? undefined : Math.min(peak, largest);
  }

  workers(): WorkerView[] {
    return this.monitor
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

  positions(req: PositionsRequest): PositionsReply {
    const now = this.clock.now().getTime();
    const out: PositionsReply['positions'] = {};
    const agingMs = this.config.AGING_SECONDS * 1000;
    for (const j of req.ids ?? []) {
      const h = this.state.holdings.get(j.id);
      if (h) {
        out[j.id] = { queuePosition: 0, estimatedWaitSeconds: this.queueConfig.paused ? null : 0 };
        continue;
      }
      const level = priorityLevel(j.priority);
      const position = this.state.index.position(j.pool, j.tenant, level, j.queueSeq, now, agingMs);
      if (position === undefined) continue;
      const capacity = Math.min(this.state.capacity.maxConcurrent, this.state.capacity.poolSlots(j.pool));
      const free = Math.min(this.state.capacity.globalFree, this.state.capacity.poolFreeSlots(j.pool));
      out[j.id] = {
        queuePosition: position,
        estimatedWaitSeconds: this.queueConfig.paused
          ? null
          : this.state.durations.estimate(j.pool, position, capacity, free),
      };
    }
    return { positions: out };
  }

  /**
   * `list-sync`: brings the listing index up to every job revision stored before this request and writes it, so the
   * gateway that asked reads its own writes (and every other replica's) from the index pages. Answered within
   * LIST_SYNC_TIMEOUT_MS (inside the gateway's RPC timeout) or refused with a 503 the gateway passes on.
   */
  async listSync(): Promise<ListSyncReply> {
    const deadline = Date.now() + LIST_SYNC_TIMEOUT_MS;
    const target = (await this.nats.jsm.streams.info(STREAMS.jobs)).state.last_seq;
    // Right after a takeover the writer starts a moment after leadership: wait for it within the same budget.
    let writer = this.listWriter;
    while (!writer && this.leader.isLeader && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      writer = this.listWriter;
    }
    if (!writer || !this.leader.isLeader)
      throw new RpcError(503, 'Listing unavailable', 'no listing index writer is running; try again');
    try {
      return { seq: await writer.syncTo(target, Math.max(1, deadline - Date.now())) };
    } catch (err) {
      if (err instanceof ListingBehindError) throw new RpcError(503, 'Listing behind', `${err.message}; try again`);
      throw err;
    }
  }

  private async writeConfig(patch: Partial<QueueConfigRecord>): Promise<QueueState> {
    if (!this.leader.isLeader) throw new RpcError(503, 'Not the leader', 'this scheduler is a standby');
    const kv = this.configKv!;
    for (let i = 0; i < 10; i++) {
      const cur = await kv.get(CONFIG_KEYS.queue);
      const base: QueueConfigRecord =
        cur?.operation === 'PUT' ? cur.json<QueueConfigRecord>() : { ...this.queueConfig };
      const next: QueueConfigRecord = { ...base, ...patch, updatedAt: this.clock.now().toISOString() };
      try {
        if (cur?.operation === 'PUT') await kv.update(CONFIG_KEYS.queue, encodeJson(next), cur.revision);
        else await kv.create(CONFIG_KEYS.queue, encodeJson(next));
        this.applyConfig(next);
        this.broadcastStats();
        return this.queueState();
      } catch {
        // lost a race with another writer; read again
      }
    }
    throw new RpcError(503, 'Config busy', 'could not update the queue configuration; try again');
  }

  pause(): Promise<QueueState> {
    return this.writeConfig({ paused: true });
  }

  resume(): Promise<QueueState> {
    return this.writeConfig({ paused: false, draining: false });
  }

  drain(): Promise<QueueState> {
    return this.writeConfig({ draining: true });
  }

  async updateConfig(u: QueueConfigUpdate): Promise<QueueState> {
    return this.writeConfig({
      ...(u.maxConcurrentJobs !== undefined ? { maxConcurrentJobs: u.maxConcurrentJobs } : {}),
      ...(u.maxQueueSize !== undefined ? { maxQueueSize: u.maxQueueSize } : {}),
    });
  }

  /** Cancels every queued job (dispatched-not-started ones included; their workers skip them). */
  async clear(): Promise<QueueState> {
    if (!this.leader.isLeader) throw new RpcError(503, 'Not the leader', 'this scheduler is a standby');
    const now = this.clock.now();
    const ids = [...this.state.index.all()].map((q) => q.entry.id);
    for (const [id, h] of this.state.holdings) if (h.state === 'dispatched') ids.push(id);
    let i = 0;
    const worker = async () => {
      while (i < ids.length) {
        const id = ids[i++]!;
        await this.jobs
          .tryTransition(id, (cur) => {
            if (cur.record.status !== 'queued')
              throw new TransitionRefused('CONFLICT', `job ${id} is no longer queued`);
            return requestCancel(cur.record, now, 'cancelled: queue cleared by an admin');
          })
          .catch((err: unknown) => this.logger.warn({ err, jobId: id }, 'clear: could not cancel a job'));
      }
    };
    await Promise.all(Array.from({ length: Math.min(64, ids.length) }, worker));
    await this.projection.sync().catch((err: unknown) => {
      // The jobs were cancelled; only the counts in the answer may lag.
      if (!(err instanceof ProjectionBehindError)) throw err;
      this.logger.warn({ err }, 'clear: the projection is behind; the queue state answered may lag');
    });
    this.logger.info({ cancelled: ids.length }, 'queue cleared');
    return this.queueState();
  }

  async stop(): Promise<void> {
    if (this.statsTimer) clearInterval(this.statsTimer);
    if (this.reconcileTimer) clearInterval(this.reconcileTimer);
    await this.leader.stop();
    await this.follow();
    this.releasedSub?.unsubscribe();
    this.stopConfigWatch?.();
    await this.configWatch?.catch(() => undefined);
    await this.monitor.stop();
    await this.projection.stop();
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
