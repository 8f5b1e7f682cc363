/**
 * What this replica does when it wins or loses the lease. Taking over: catch the projection up with the jobs stream,
 * fence and adopt the dispatches in the stream (the dispatcher), then start the leader-only duties (retry timers,
 * the listing index writer, the retention sweeper, statistics and the dispatch reconciliation). Standing down stops
 * them all. Changes run one after another, so a quick stand-down never interleaves with a slow takeover.
 */
import { STREAMS, SUBJECTS, type Clock, type ListSyncReply, type QueueStatsBroadcast } from '@gantry/contracts';
import { encodeJson, RpcError, type NatsHandle } from '@gantry/jetstream';
import type { JobStore } from '@gantry/job-store';
import type { Logger } from '@gantry/telemetry';
import type { SchedulerConfig } from '../config';
import type { DemandGauge } from '../demand/demand-gauge';
import type { DispatchReconciler } from '../dispatch/dispatch-reconciler';
import type { Dispatcher } from '../dispatch/dispatcher';
import type { QueueReadModel } from '../domain/queue-read-model';
import type { SchedulerState } from '../domain/scheduler-state';
import { ListIndexWriter, ListingBehindError } from '../listing/list-index-writer';
import { ProjectionBehindError, type JobProjection } from '../projection/job-projection';
import { RetentionSweeper, type OutputsPort } from '../retention/retention-sweeper';
import type { RetryTimer } from '../retries/retry-timer';
import type { DelayTimer } from '../delays/delay-timer';
import type { DependencyTracker } from '../dependencies/dependency-tracker';
import type { ScheduleTimer } from '../schedules/schedule-timer';
import type { SchedulerMetrics } from '../stats/metrics';
import type { WorkerMonitor } from '../workers/worker-monitor';
import type { LeaderElection } from './leader-election';

/** How long a `list-sync` may wait for the listing index (the gateway's RPC timeout is 2 s by default). */
const LIST_SYNC_TIMEOUT_MS = 1_500;

export type LeadershipSettings = Pick<
  SchedulerConfig,
  | 'TAKEOVER_SYNC_TIMEOUT_MS'
  | 'JOB_RETENTION_HOURS'
  | 'RETENTION_SWEEP_INTERVAL_MS'
  | 'STATS_INTERVAL_MS'
  | 'WORKER_LOST_AFTER_MS'
>;

/** The parts a leader drives; all built (and warm) before the first election. */
export interface LeadershipParts {
  election: LeaderElection;
  state: SchedulerState;
  read: QueueReadModel;
  projection: JobProjection;
  dispatcher: Dispatcher;
  monitor: WorkerMonitor;
  retries: RetryTimer;
  /** Delayed jobs (`scheduled` until `runAt`). */
  delays: DelayTimer;
  /** Jobs waiting for their parents (`waiting`, `dependsOn`). */
  dependencies: DependencyTracker;
  /** Cron schedules: watched and fired by the leader only, rebuilt from their bucket on every takeover. */
  schedules: ScheduleTimer;
  demand: DemandGauge;
  reconciler: DispatchReconciler;
  metrics: SchedulerMetrics;
}

/** The I/O the leader-only duties use. */
export interface LeadershipPorts {
  nats: NatsHandle;
  jobs: JobStore;
  clock: Clock;
  logger: Logger;
  outputs?: OutputsPort;
}

export class Leadership {
  private listWriter: ListIndexWriter | undefined;
  private sweeper: RetentionSweeper | undefined;
  private statsTimer: NodeJS.Timeout | undefined;
  private reconcileTimer: NodeJS.Timeout | undefined;
  private changes: Promise<void> = Promise.resolve();

  constructor(
    private readonly parts: LeadershipParts,
    private readonly ports: LeadershipPorts,
    private readonly settings: LeadershipSettings,
  ) {}

  /** Won the lease with this epoch: take over once the changes before it are done. */
  lead(epoch: number): Promise<void> {
    const run = this.changes.then(() => this.takeOver(epoch));
    // The next change waits for this one, failed or not; the failure itself goes to the caller (the election logs a
    // failed takeover and steps down).
    this.changes = run.catch(() => undefined);
    return run;
  }

  /** Lost or gave up the lease. */
  follow(): Promise<void> {
    // Stop dispatching at once (not after a takeover still in progress); the rest waits its turn.
    this.parts.dispatcher.deactivate();
    const run = this.changes.then(() => this.standDown());
    this.changes = run.catch(() => undefined);
    return run;
  }

  /** Publishes the leader's queue statistics (gateways' backpressure) and the per-pool demand gauge. */
  broadcastStats(): void {
    const { election, state, read, demand } = this.parts;
    if (!election.isLeader) return;
    const msg: QueueStatsBroadcast = {
      v: 1,
      epoch: election.epoch,
      at: this.ports.clock.now().toISOString(),
      ...read.queueState(),
      // Gateways need the totals only; the per-pool lines are for `GET /v1/queue` (JSON drops the undefined key).
      pools: undefined,
      tenants: state.tenantDepths(),
      appliedSeq: state.lastApplied,
    };
    this.ports.nats.nc.publish(SUBJECTS.queueStats, encodeJson(msg));
    void demand.update(read.poolDepths());
  }

  /**
   * `list-sync`: brings the listing index up to every job revision stored before this request and writes it, so the
   * gateway that asked reads its own writes (and every other replica's) from the index pages. Answered within
   * LIST_SYNC_TIMEOUT_MS (inside the gateway's RPC timeout) or refused with a 503 the gateway passes on.
   */
  async listSync(): Promise<ListSyncReply> {
    const { election } = this.parts;
    const deadline = Date.now() + LIST_SYNC_TIMEOUT_MS;
    const target = (await this.ports.nats.jsm.streams.info(STREAMS.jobs)).state.last_seq;
    // Right after a takeover the writer starts a moment after leadership: wait for it within the same budget.
    let writer = this.listWriter;
    while (!writer && election.isLeader && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      writer = this.listWriter;
    }
    if (!writer || !election.isLeader)
      throw new RpcError(503, 'Listing unavailable', 'no listing index writer is running; try again');
    try {
      return { seq: await writer.syncTo(target, Math.max(1, deadline - Date.now())) };
    } catch (err) {
      if (err instanceof ListingBehindError) throw new RpcError(503, 'Listing behind', `${err.message}; try again`);
      throw err;
    }
  }

  /**
   * The projection up to the stream's end before anything is dispatched; if it cannot get there, the takeover fails
   * (the leader steps down: LeaderElection deposes on a failed takeover) with a log line and a metric.
   */
  private async syncForTakeover(epoch: number): Promise<void> {
    try {
      await this.parts.projection.sync(this.settings.TAKEOVER_SYNC_TIMEOUT_MS);
    } catch (err) {
      if (!(err instanceof ProjectionBehindError)) throw err;
      this.parts.metrics.takeoverAborted('projection_behind');
      this.ports.logger.error(
        { epoch, applied: err.applied, target: err.target, waitedMs: err.waitedMs },
        'takeover aborted: the projection did not catch up with the jobs stream; stepping down without dispatching',
      );
      throw err;
    }
  }

  private async takeOver(epoch: number): Promise<void> {
    const {
      election,
      state,
      projection,
      dispatcher,
      monitor,
      retries,
      delays,
      dependencies,
      schedules,
      demand,
      metrics,
    } = this.parts;
    const { nats, jobs, clock, logger, outputs } = this.ports;
    const current = () => election.epoch === epoch;
    if (!current()) return;
    await this.syncForTakeover(epoch);
    if (!current()) return;
    monitor.refreshAll();
    await dispatcher.activate(epoch, () => this.syncForTakeover(epoch));
    if (!current()) {
      dispatcher.deactivate();
      return;
    }
    monitor.referenceHoldings();
    retries.activate();
    delays.activate();
    // Every waiting job is evaluated against its parents' current state (a parent may have ended while no leader ran).
    dependencies.activate();
    await schedules.start();
    await demand.reset();
    const writer = new ListIndexWriter(nats, logger, projection);
    await writer.start();
    this.listWriter = writer;
    this.sweeper = new RetentionSweeper(
      nats,
      jobs,
      clock,
      {
        retentionMs: this.settings.JOB_RETENTION_HOURS * 3_600_000,
        intervalMs: this.settings.RETENTION_SWEEP_INTERVAL_MS,
        ...(outputs ? { outputs } : {}),
        listing: () => this.listWriter,
        removed: (n) => metrics.retentionRemoved(n),
      },
      logger,
    );
    this.sweeper.start();
    if (!current()) {
      await this.standDown();
      return;
    }
    this.statsTimer = setInterval(() => this.broadcastStats(), this.settings.STATS_INTERVAL_MS);
    this.reconcileTimer = setInterval(
      () => void this.reconcileDispatches(),
      Math.max(1_000, this.settings.WORKER_LOST_AFTER_MS),
    );
    this.broadcastStats();
    logger.info({ epoch, queued: state.index.size, held: state.holdings.size }, 'leading');
  }

  private async standDown(): Promise<void> {
    this.parts.dispatcher.deactivate();
    this.parts.retries.deactivate();
    this.parts.delays.deactivate();
    this.parts.dependencies.deactivate();
    this.parts.schedules.stop();
    this.stopTimers();
    this.parts.demand.stop();
    const sweeper = this.sweeper;
    this.sweeper = undefined;
    await sweeper?.stop();
    const w = this.listWriter;
    this.listWriter = undefined;
    await w?.stop();
  }

  /** Stops the periodic duties at once (shutdown calls it before the stand-down that follows the lease's release). */
  stopTimers(): void {
    if (this.statsTimer) clearInterval(this.statsTimer);
    if (this.reconcileTimer) clearInterval(this.reconcileTimer);
    this.statsTimer = undefined;
    this.reconcileTimer = undefined;
  }

  /** See {@link DispatchReconciler}: only a "not found" dispatch message is given back to the queue. */
  private async reconcileDispatches(): Promise<void> {
    if (!this.parts.election.isLeader) return;
    await this.parts.reconciler.run();
  }
}
