/**
 * The scheduler's composition root: builds its parts in dependency order, wires the state's events to them, and
 * starts and stops them in order. Every replica keeps the state warm (projection, workers, retry timers, queue
 * config); the elected leader alone dispatches, re-queues retries, declares workers lost, writes the listing index
 * and broadcasts queue statistics ({@link Leadership}). Reads are answered by {@link QueueReadModel}, admin commands
 * by {@link QueueAdmin}. The methods below are what the RPC controller calls.
 */
import {
  STREAMS,
  type Clock,
  type ConcurrencyStats,
  type ListSyncReply,
  type PositionsReply,
  type PositionsRequest,
  type QueueConfigUpdate,
  type QueueMetrics,
  type QueueState,
  type TenantsRequest,
  type TenantView,
  type WorkerView,
} from '@gantry/contracts';
import type { NatsHandle } from '@gantry/jetstream';
import type { JobStore } from '@gantry/job-store';
import type { Logger, Registry } from '@gantry/telemetry';
import { QueueAdmin } from './admin/queue-admin';
import type { SchedulerConfig } from './config';
import { DemandGauge } from './demand/demand-gauge';
import { DispatchReconciler } from './dispatch/dispatch-reconciler';
import { Dispatcher } from './dispatch/dispatcher';
import { registerRecordCacheGauges } from './dispatch/record-cache';
import { ReleasedListener } from './dispatch/released-listener';
import { QueueReadModel } from './domain/queue-read-model';
import { FairShare } from './domain/fair-share';
import { SchedulerState } from './domain/scheduler-state';
import { tenantViews } from './domain/tenant-views';
import { LeaderElection } from './leader/leader-election';
import { Leadership } from './leader/leadership';
import { JobProjection } from './projection/job-projection';
import type { OutputsPort } from './retention/retention-sweeper';
import { RetryTimer } from './retries/retry-timer';
import { DelayTimer } from './delays/delay-timer';
import { DependencyMetrics, DependencyTracker } from './dependencies/dependency-tracker';
import { ScheduleMetrics, ScheduleTimer } from './schedules/schedule-timer';
import { SchedulerMetrics } from './stats/metrics';
import { WorkerMonitor } from './workers/worker-monitor';

export class SchedulerService {
  readonly state: SchedulerState;
  private readonly read: QueueReadModel;
  private readonly admin: QueueAdmin;
  private readonly election: LeaderElection;
  private readonly leadership: Leadership;
  private readonly projection: JobProjection;
  private readonly monitor: WorkerMonitor;
  private readonly released: ReleasedListener;

  constructor(
    readonly id: string,
    config: SchedulerConfig,
    private readonly nats: NatsHandle,
    jobs: JobStore,
    private readonly clock: Clock,
    registry: Registry,
    logger: Logger,
    outputs?: OutputsPort,
  ) {
    const state = new SchedulerState(
      config.MAX_CONCURRENT_JOBS,
      config.TENANT_MAX_CONCURRENT_JOBS,
      {},
      new FairShare(config.TENANT_WEIGHTS, config.FAIR_SHARE_HALF_LIFE_SECONDS, () => clock.now().getTime()),
    );
    state.capacity.gpuMarginMb = config.GPU_MEMORY_MARGIN_MB;
    this.state = state;
    // Parts reached through closures below (`election`, `admin`, `monitor`) are built before anything calls them:
    // nothing runs until start().
    const isLeader = () => this.election.isLeader;
    const metrics = new SchedulerMetrics(registry, state, isLeader, () => ({
      maxQueueSize: this.admin.maxQueueSize,
    }));
    const projection = new JobProjection(nats, state, logger, {}, {}, (r) => metrics.projectionRecreated(r.phase));
    const retries = new RetryTimer(jobs, state, clock, logger);
    /** Delayed jobs (`scheduled` until `runAt`), issue #17. */
    const delays = new DelayTimer(jobs, state, clock, logger);
    /** Jobs waiting for their parents (`waiting`, `dependsOn`), issue #17. */
    const dependencies = new DependencyTracker(jobs, state, clock, logger, {
      metrics: new DependencyMetrics(registry),
    });
    /** Cron schedules (issue #17): the leader fires their due times; the bounds a submit obeys apply. */
    const schedules: ScheduleTimer = new ScheduleTimer(
      nats,
      jobs,
      {
        refusal: (tenant) => {
          if (this.admin.draining) return 'draining';
          const q = this.read.queueState();
          if (q.depth.total + q.retrying >= this.admin.maxQueueSize) return 'queue_full';
          const cap = config.TENANT_MAX_QUEUED_JOBS;
          if (cap !== undefined && (state.tenantDepths()[tenant] ?? 0) >= cap) return 'tenant_queue_full';
          return undefined;
        },
      },
      new ScheduleMetrics(registry, () => schedules.size),
      clock,
      logger,
    );
    const dispatcher = new Dispatcher(
      nats,
      jobs,
      state,
      clock,
      {
        agingMs: config.AGING_SECONDS * 1000,
        batch: 256,
        recordCacheBytes: config.SCHEDULER_RECORD_CACHE_BYTES,
        attemptsPerMessage: config.DISPATCH_BATCH_MAX,
      },
      metrics,
      logger,
      (reason) => {
        metrics.fenced();
        void this.election.depose(reason);
      },
    );
    registerRecordCacheGauges(registry, () => dispatcher.cachedRecordBytes, config.SCHEDULER_RECORD_CACHE_BYTES);
    const monitor = new WorkerMonitor(
      nats,
      jobs,
      state,
      clock,
      config.WORKER_LOST_AFTER_MS,
      {
        isLeader,
        verifyLeadership: () => this.election.verify(),
        workersChanged: () => dispatcher.workersChanged(),
        lost: () => metrics.workerLost(),
      },
      logger,
    );
    const reconciler = new DispatchReconciler({
      state,
      readDispatch: (seq) => nats.jsm.direct.getMessage(STREAMS.dispatch, { seq }),
      inFlightOn: (workerId, jobId) =>
        monitor.heartbeats.get(workerId)?.inflight.some((i) => i.jobId === jobId) ?? false,
      lostAfterMs: config.WORKER_LOST_AFTER_MS,
      now: () => clock.now().getTime(),
      logger,
    });
    this.read = new QueueReadModel(
      state,
      {
        queueConfig: () => ({
          paused: this.admin.paused,
          draining: this.admin.draining,
          maxQueueSize: this.admin.maxQueueSize,
        }),
        liveWorkers: () => monitor.liveWorkers(),
        now: () => clock.now().getTime(),
      },
      { agingMs: config.AGING_SECONDS * 1000, startedAt: clock.now().getTime() },
    );
    this.election = new LeaderElection(
      nats,
      id,
      config.LEADER_LEASE_MS,
      {
        onElected: (epoch) => this.leadership.lead(epoch),
        onDeposed: () => this.leadership.follow(),
        onLeaseError: (op) => metrics.leaseError(op),
      },
      logger,
    );
    this.leadership = new Leadership(
      {
        election: this.election,
        state,
        read: this.read,
        projection,
        dispatcher,
        monitor,
        retries,
        delays,
        dependencies,
        schedules,
        demand: new DemandGauge(nats, config.DEMAND_GAUGE_CAP, logger),
        reconciler,
        metrics,
      },
      { nats, jobs, clock, logger, ...(outputs ? { outputs } : {}) },
      config,
    );
    this.admin = new QueueAdmin(
      { state, dispatcher, projection, isLeader, changed: () => this.leadership.broadcastStats() },
      { nats, jobs, clock, logger },
      { maxConcurrentJobs: config.MAX_CONCURRENT_JOBS, maxQueueSize: config.MAX_QUEUE_SIZE },
    );
    this.projection = projection;
    this.monitor = monitor;
    this.released = new ReleasedListener(nats, state, isLeader);

    state.wire({
      onQueued: (stored) => dispatcher.remember(stored),
      onWorkAvailable: () => dispatcher.kick(),
      onRetryScheduled: (id, at) => retries.scheduled(id, at),
      onDelayScheduled: (id, at) => delays.scheduled(id, at),
      onDependencies: (ids) => dependencies.mark(ids),
      onWorkerReferenced: (w) => monitor.reference(w),
      onStarted: (s) => metrics.started(s),
      onTerminal: (s) => metrics.finished(s),
      defaultGpuMemoryMb: (pool, type) => this.read.learnedPeakMb(pool, type),
    });
  }

  get isLeader(): boolean {
    return this.election.isLeader;
  }

  get ready(): boolean {
    return this.projection.caughtUp && this.nats.connected;
  }

  get maxQueueSize(): number {
    return this.admin.maxQueueSize;
  }

  /** Config, workers and the projection first (a warm standby), then the election. */
  async start(): Promise<void> {
    await this.admin.start();
    await this.monitor.start();
    await this.projection.start();
    await this.projection.whenCaughtUp();
    this.released.start();
    await this.election.start();
  }

  /** Gives up the lease (so another replica takes over at once), then stops every part in reverse order. */
  async stop(): Promise<void> {
    this.leadership.stopTimers();
    await this.election.stop();
    await this.leadership.follow();
    this.released.stop();
    await this.admin.stop();
    await this.monitor.stop();
    await this.projection.stop();
  }

  queueState(): QueueState {
    return this.read.queueState();
  }

  queueMetrics(): QueueMetrics {
    return this.read.queueMetrics();
  }

  concurrency(): ConcurrencyStats {
    return this.read.concurrency();
  }

  workers(): WorkerView[] {
    return this.read.workers();
  }

  positions(req: PositionsRequest): PositionsReply {
    return this.read.positions(req);
  }

  /** `GET /v1/tenants` (every tenant) and `/v1/tenants/me` (one). */
  tenants(req: TenantsRequest): TenantView[] {
    return tenantViews(this.state, this.clock.now().getTime(), req.tenant);
  }

  listSync(): Promise<ListSyncReply> {
    return this.leadership.listSync();
  }

  pause(): Promise<QueueState> {
    return this.admin.pause().then(() => this.queueState());
  }

  resume(): Promise<QueueState> {
    return this.admin.resume().then(() => this.queueState());
  }

  drain(): Promise<QueueState> {
    return this.admin.drain().then(() => this.queueState());
  }

  updateConfig(u: QueueConfigUpdate): Promise<QueueState> {
    return this.admin.updateConfig(u).then(() => this.queueState());
  }

  /** Cancels every queued job (dispatched-not-started ones included; their workers skip them). */
  clear(): Promise<QueueState> {
    return this.admin.clear().then(() => this.queueState());
  }
}
