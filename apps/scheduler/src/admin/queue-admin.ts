/**
 * The queue config in force and the admin commands (pause, resume, drain, caps, clear). Every replica applies the
 * stored config as it changes (the {@link QueueConfigStore} watch); only the leader writes it or clears the queue,
 * a standby refuses with a 503.
 */
import {
  INITIAL_QUEUE_CONFIG,
  InvalidQueueConfigError,
  TransitionRefused,
  requestCancel,
  type Clock,
  type QueueConfigRecord,
  type QueueConfigUpdate,
} from '@gantry/contracts';
import {
  QueueConfigConflictError,
  QueueConfigStore,
  RpcError,
  type NatsHandle,
  type QueueConfigPatch,
} from '@gantry/jetstream';
import type { JobStore } from '@gantry/job-store';
import type { Logger } from '@gantry/telemetry';
import type { Dispatcher } from '../dispatch/dispatcher';
import type { SchedulerState } from '../domain/scheduler-state';
import { ProjectionBehindError, type JobProjection } from '../projection/job-projection';

/** Jobs cancelled at once by `clear`. */
const CLEAR_CONCURRENCY = 64;

export interface QueueAdminParts {
  state: SchedulerState;
  dispatcher: Dispatcher;
  projection: JobProjection;
  isLeader(): boolean;
  /** Called after a config write this replica made (the leader broadcasts the new state at once). */
  changed(): void;
}

export interface QueueAdminPorts {
  nats: NatsHandle;
  jobs: JobStore;
  clock: Clock;
  logger: Logger;
}

/** The environment's values, in force until a stored record overrides them. */
export interface QueueAdminDefaults {
  maxConcurrentJobs: number;
  maxQueueSize: number;
}

export class QueueAdmin {
  private store: QueueConfigStore | undefined;
  private current: QueueConfigRecord = INITIAL_QUEUE_CONFIG;

  constructor(
    private readonly parts: QueueAdminParts,
    private readonly ports: QueueAdminPorts,
    private readonly defaults: QueueAdminDefaults,
  ) {}

  /** Opens the store and applies the stored record (if any), then every change. */
  async start(): Promise<void> {
    this.store = await QueueConfigStore.open(this.ports.nats, this.ports.logger);
    await this.store.watch((c) => this.apply(c));
  }

  async stop(): Promise<void> {
    await this.store?.stop();
  }

  get paused(): boolean {
    return this.current.paused;
  }

  get draining(): boolean {
    return this.current.draining;
  }

  get maxQueueSize(): number {
    return this.current.maxQueueSize ?? this.defaults.maxQueueSize;
  }

  pause(): Promise<void> {
    return this.write({ paused: true });
  }

  resume(): Promise<void> {
    return this.write({ paused: false, draining: false });
  }

  drain(): Promise<void> {
    return this.write({ draining: true });
  }

  updateConfig(u: QueueConfigUpdate): Promise<void> {
    return this.write(u);
  }

  /** Cancels every queued job (dispatched-not-started ones included; their workers skip them). */
  async clear(): Promise<void> {
    this.assertLeader();
    const { state, projection } = this.parts;
    const { jobs, clock, logger } = this.ports;
    const now = clock.now();
    const ids = [...state.index.all()].map((q) => q.entry.id);
    for (const [id, h] of state.holdings) if (h.state === 'dispatched') ids.push(id);
    let i = 0;
    const worker = async () => {
      while (i < ids.length) {
        const id = ids[i++]!;
        await jobs
          .tryTransition(id, (cur) => {
            if (cur.record.status !== 'queued')
              throw new TransitionRefused('CONFLICT', `job ${id} is no longer queued`);
            return requestCancel(cur.record, now, 'cancelled: queue cleared by an admin');
          })
          .catch((err: unknown) => logger.warn({ err, jobId: id }, 'clear: could not cancel a job'));
      }
    };
    await Promise.all(Array.from({ length: Math.min(CLEAR_CONCURRENCY, ids.length) }, worker));
    await projection.sync().catch((err: unknown) => {
      // The jobs were cancelled; only the counts in the answer may lag.
      if (!(err instanceof ProjectionBehindError)) throw err;
      logger.warn({ err }, 'clear: the projection is behind; the queue state answered may lag');
    });
    logger.info({ cancelled: ids.length }, 'queue cleared');
  }

  private apply(c: QueueConfigRecord): void {
    const { state, dispatcher } = this.parts;
    this.current = c;
    state.capacity.maxConcurrent = c.maxConcurrentJobs ?? this.defaults.maxConcurrentJobs;
    dispatcher.paused = c.paused;
    dispatcher.kick();
  }

  private async write(patch: QueueConfigPatch): Promise<void> {
    this.assertLeader();
    if (!this.store) throw new RpcError(503, 'Not started', 'the scheduler is starting; try again');
    try {
      this.apply(await this.store.update(patch, this.current, this.ports.clock.now()));
    } catch (err) {
      if (err instanceof InvalidQueueConfigError) throw new RpcError(400, 'Invalid configuration', err.message);
      if (err instanceof QueueConfigConflictError)
        throw new RpcError(503, 'Config busy', 'could not update the queue configuration; try again');
      throw err;
    }
    this.parts.changed();
  }

  private assertLeader(): void {
    if (!this.parts.isLeader()) throw new RpcError(503, 'Not the leader', 'this scheduler is a standby');
  }
}
