/**
 * The worker process: registers and heartbeats (the lease), listens for cancels, checks its attempts' records on every
 * beat, kills its own work when it cannot renew the lease, and shuts down gracefully.
 */
import {
  BUCKETS,
  SUBJECTS,
  type Clock,
  type GpuInfo,
  type WorkerControl,
  type WorkerHeartbeat,
} from '@gantry/contracts';
import { decodeJson, encodeJson, type NatsHandle } from '@gantry/jetstream';
import type { Logger } from '@gantry/telemetry';
import { Kvm, type KV } from '@nats-io/kv';
import { jetstream } from '@nats-io/jetstream';
import type { Subscription } from '@nats-io/transport-node';
import type { AttemptRunner, LeaseTicker } from './runner/attempt-runner';

export interface WorkerIdentity {
  id: string;
  pool: string;
  slots: number;
  slotsPerGpu: number;
  gpus: GpuInfo[];
  jobTypes: string[];
  version: string;
}

export class WorkerService {
  private kv: KV | undefined;
  private timer: NodeJS.Timeout | undefined;
  private control: Subscription | undefined;
  private lastBeat = 0;
  private beating = false;
  draining = false;
  private readonly startedAt: string;

  constructor(
    readonly identity: WorkerIdentity,
    private readonly nats: NatsHandle,
    private readonly runner: AttemptRunner,
    private readonly clock: Clock,
    private readonly timings: { heartbeatMs: number; lostAfterMs: number },
    private readonly logger: Logger,
    private readonly lease?: LeaseTicker,
    /**
     * Re-creates this worker's dispatch consumer. A worker silent for WORKER_LOST_AFTER_MS was (or is being) declared
     * lost: the scheduler deleted its consumer and purged its dispatches. When its heartbeats succeed again (a frozen
     * process resumed, a partition healed) it rejoins as a fresh worker under the same id — its attempts were already
     * killed — so its consumer must exist again, or dispatches addressed to it would wait forever.
     */
    private readonly rejoin?: () => Promise<void>,
  ) {
    this.startedAt = clock.now().toISOString();
  }

  /** Until when successful beats also re-create the consumer (the scheduler may delete it late, after a first rejoin). */
  private rejoinUntil = 0;

  get registered(): boolean {
    return this.lastBeat > 0 && Date.now() - this.lastBeat < this.timings.lostAfterMs;
  }

  async start(): Promise<void> {
    // Heartbeats get their own short request timeout: a beat stuck for the client's default 5 s would outlast the
    // lost-after period itself (2 s in tests), so a brief NATS hiccup would get a healthy worker declared lost.
    const beatTimeoutMs = Math.max(250, Math.min(5_000, Math.floor(this.timings.lostAfterMs / 3)));
    this.kv = await new Kvm(jetstream(this.nats.nc, { timeout: beatTimeoutMs })).open(BUCKETS.workers);
    this.control = this.nats.nc.subscribe(SUBJECTS.workerControl(this.identity.id), {
      callback: (_err, msg) => {
        try {
          const c = decodeJson<WorkerControl>(msg.data);
          if (c.type === 'cancel' && this.runner.abortJob(c.jobId, 'cancel', c.generation)) {
            this.logger.info({ jobId: c.jobId }, 'cancel requested; killing the job');
          }
        } catch {
          // ignore malformed control messages
        }
      },
    });
    await this.beat();
    this.timer = setInterval(() => {
      this.watchdog();
      void this.beat();
    }, this.timings.heartbeatMs);
  }

  /**
   * If the lease has not been renewed for most of the lost-after period (60 %), the scheduler is about to hand this
   * worker's attempts to others: kill them first (even when a heartbeat is stuck rather than failing). The job
   * processes' guards apply the same deadline on their own, in case this process cannot run at all.
   */
  private watchdog(): void {
    const silentFor = Date.now() - this.lastBeat;
    if (this.lastBeat > 0 && silentFor > this.timings.lostAfterMs * 0.6 && this.runner.running.size > 0) {
      this.logger.error(
        { silentForMs: silentFor },
        'lease cannot be renewed; killing running attempts before they are reassigned',
      );
      this.runner.abortAll('fenced');
    }
  }

  heartbeat(): WorkerHeartbeat {
    return {
      v: 1,
      id: this.identity.id,
      pool: this.identity.pool,
      slots: this.identity.slots,
      slotsPerGpu: this.identity.slotsPerGpu,
      gpus: this.identity.gpus,
      runningJobs: [...this.runner.running.keys()],
      inflight: [...this.runner.inflight.values()],
      jobTypes: this.identity.jobTypes,
      draining: this.draining,
      startedAt: this.startedAt,
      heartbeatAt: this.clock.now().toISOString(),
      version: this.identity.version,
    };
  }

  /** One heartbeat: renew the registration, then check the attempts' records. */
  private async beat(): Promise<void> {
    if (this.beating || !this.kv) return;
    this.beating = true;
    try {
      await this.kv.put(this.identity.id, encodeJson(this.heartbeat()));
      const now = Date.now();
      if (this.lastBeat > 0 && now - this.lastBeat >= this.timings.lostAfterMs) {
        this.logger.warn(
          { silentForMs: now - this.lastBeat },
          'heartbeats resumed after this worker was declared lost; rejoining',
        );
        this.rejoinUntil = now + 2 * this.timings.lostAfterMs;
      }
      this.lastBeat = now;
      // Only a heartbeat the broker stored renews the job processes' guards.
      this.lease?.renewed();
      if (this.rejoin && now < this.rejoinUntil) {
        await this.rejoin().catch((err: unknown) => this.logger.warn({ err: String(err) }, 'rejoin failed; retrying'));
      }
      await this.runner.checkOwnership().catch((err: unknown) => this.logger.warn({ err }, 'ownership check failed'));
    } catch (err) {
      this.logger.warn({ err: String(err), silentForMs: Date.now() - this.lastBeat }, 'heartbeat failed');
      this.watchdog();
    } finally {
      this.beating = false;
    }
  }

  /** Stops heartbeating and removes the registration so the scheduler re-queues anything still addressed here. */
  async deregister(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.control?.unsubscribe();
    await this.kv?.delete(this.identity.id).catch(() => undefined);
  }

  /** Announces draining (no new dispatches) with an immediate heartbeat. */
  async drain(): Promise<void> {
    this.draining = true;
    await this.beat();
  }
}
