/**
 * The worker process: registers and heartbeats (the lease), listens for cancels, checks its attempts' records on every
 * beat, kills its own work when it cannot renew the lease, and shuts down gracefully.
 */
import {
  BUCKETS,
  CHANNELS,
  DISPATCH_BATCH_LIMIT,
  SUBJECTS,
  type Clock,
  type GpuInfo,
  type GpuStatus,
  type RpcReply,
  type WorkerControl,
  type WorkerHeartbeat,
} from '@gantry/contracts';
import { decodePayload, encodeJson, replyError, type NatsHandle } from '@gantry/jetstream';
import type { Logger } from '@gantry/telemetry';
import { Kvm, type KV } from '@nats-io/kv';
import { jetstream } from '@nats-io/jetstream';
import type { Msg, Subscription } from '@nats-io/transport-node';
import type { HealthChange } from './gpu/gpu-health';
import type { GpuMetrics } from './gpu/gpu-metrics';
import type { GpuMonitor } from './gpu/gpu-monitor';
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
    /** Live GPU figures and health (absent: the discovered GPUs as they are). */
    private readonly gpus?: { monitor: GpuMonitor; metrics?: GpuMetrics },
  ) {
    this.startedAt = clock.now().toISOString();
  }

  /** Until when successful beats also re-create the consumer (the scheduler may delete it late, after a first rejoin). */
  private rejoinUntil = 0;

  get registered(): boolean {
    return this.lastBeat > 0 && this.clock.now().getTime() - this.lastBeat < this.timings.lostAfterMs;
  }

  async start(): Promise<void> {
    // Heartbeats get their own short request timeout: a beat stuck for the client's default 5 s would outlast the
    // lost-after period itself (2 s in tests), so a brief NATS hiccup would get a healthy worker declared lost.
    const beatTimeoutMs = Math.max(250, Math.min(5_000, Math.floor(this.timings.lostAfterMs / 3)));
    this.kv = await new Kvm(jetstream(this.nats.nc, { timeout: beatTimeoutMs })).open(BUCKETS.workers);
    this.control = this.nats.nc.subscribe(SUBJECTS.workerControl(this.identity.id), {
      callback: (_err, msg) => {
        let c: WorkerControl;
        try {
          c = decodePayload(CHANNELS.workerControl, msg.data);
        } catch (err) {
          // Core NATS: nothing to redeliver. A request gets a 400 naming the bad field; a publish is dropped.
          const reason = err instanceof Error ? err.message : String(err);
          this.logger.warn({ subject: msg.subject, reason }, 'malformed control message; ignoring it');
          if (msg.reply) replyError(msg, 400, 'Bad request', reason);
          return;
        }
        if (c.type === 'cancel') {
          if (this.runner.abortJob(c.jobId, 'cancel', c.generation)) {
            this.logger.info({ jobId: c.jobId }, 'cancel requested; killing the job');
          }
        } else if (c.type === 'cordon' || c.type === 'uncordon') {
          void this.cordonRequest(c.type, String(c.uuid), c.reason, msg);
        }
      },
    });
    await this.beat();
    this.lease?.explainLapse(() => this.lapseCause());
    this.lastTick = this.clock.now().getTime();
    this.timer = setInterval(() => {
      const now = this.clock.now().getTime();
      this.maxTickGap = Math.max(this.maxTickGap, now - this.lastTick);
      this.lastTick = now;
      this.watchdog();
      void this.beat();
    }, this.timings.heartbeatMs);
  }

  /** The last heartbeat tick, and the longest gap between ticks since the last heartbeat stored. */
  private lastTick = 0;
  private maxTickGap = 0;

  /**
   * Why the lease lapses, if it does now. `fenced` when this process stalled — a heartbeat tick came late by a third
   * of the lost period since the last beat stored (a freeze, a long pause: possibly the job's doing, so it costs the
   * attempt); `unreachable` when it kept trying and the broker did not store the beats (an error, or no answer) — a
   * broker outage or a cut-off worker, not the job's doing, so the attempt is handed back uncharged.
   */
  private lapseCause(): 'fenced' | 'unreachable' {
    const stall = Math.max(this.maxTickGap, this.clock.now().getTime() - this.lastTick);
    if (stall > this.timings.heartbeatMs + this.timings.lostAfterMs * 0.3) return 'fenced';
    return this.beatFailingSince !== undefined || this.inBeat !== undefined ? 'unreachable' : 'fenced';
  }

  /**
   * If the lease has not been renewed for most of the lost-after period (60 %), the scheduler is about to hand this
   * worker's attempts to others: kill them first (even when a heartbeat is stuck rather than failing). The job
   * processes' guards apply the same deadline on their own, in case this process cannot run at all.
   */
  private watchdog(): void {
    const silentFor = this.clock.now().getTime() - this.lastBeat;
    if (this.lastBeat > 0 && silentFor > this.timings.lostAfterMs * 0.6 && this.runner.running.size > 0) {
      // Heartbeats that failed or hang (the broker did not answer or refused) hand the attempts back uncharged; a
      // lease that lapsed because this process stalled costs them.
      const unreachable = this.lapseCause() === 'unreachable';
      this.logger.error(
        { silentForMs: silentFor, cause: unreachable ? 'broker unreachable' : 'worker stalled' },
        unreachable
          ? 'lease cannot be renewed (NATS out of reach); killing running attempts and handing them back'
          : 'lease cannot be renewed; killing running attempts before they are reassigned',
      );
      this.runner.abortAll(unreachable ? 'unreachable' : 'fenced');
    }
  }

  /** Since when heartbeats have failed (an error or no answer), reset by the next one stored. */
  private beatFailingSince: number | undefined;

  /** Admin cordon/uncordon of one of this worker's GPUs (answered after the heartbeat that announces it). */
  private async cordonRequest(type: 'cordon' | 'uncordon', uuid: string, reason: string | undefined, msg: Msg) {
    const monitor = this.gpus?.monitor;
    const reasonText =
      typeof reason === 'string' && reason.trim() ? reason.trim().slice(0, 200) : 'cordoned by an admin';
    const result = type === 'cordon' ? monitor?.cordon(uuid, reasonText) : monitor?.uncordon(uuid);
    let reply: RpcReply<GpuStatus[]>;
    if (!result) {
      reply = {
        ok: false,
        error: { status: 404, title: 'Not Found', detail: `worker ${this.identity.id} has no GPU ${uuid}` },
      };
    } else {
      await this.beatFresh();
      reply = { ok: true, data: result };
    }
    if (msg.reply) msg.respond(encodeJson(reply));
  }

  /**
   * GPU health changed: say so (log and metric), heartbeat at once so the scheduler stops placing work there, and
   * hand back the attempts running on newly cordoned GPUs — queued again without costing their attempt.
   */
  gpuHealthChanged(changes: HealthChange[]): void {
    for (const c of changes) {
      if (c.health === 'cordoned') {
        this.logger.warn({ event: 'gpu.cordoned', gpu: c.uuid, kind: c.kind, reason: c.reason }, 'GPU cordoned');
        this.gpus?.metrics?.cordoned(c.kind);
      } else {
        this.logger.info({ event: 'gpu.uncordoned', gpu: c.uuid, kind: c.kind, reason: c.reason }, 'GPU uncordoned');
      }
    }
    if (changes.some((c) => c.health === 'cordoned')) this.handBackFromCordoned();
    void this.beatFresh();
  }

  /** Hands back every running attempt that uses a cordoned GPU (also re-checked on every heartbeat). */
  private handBackFromCordoned(): void {
    const monitor = this.gpus?.monitor;
    if (!monitor) return;
    for (const [jobId, a] of this.runner.running) {
      const bad = (a.record.gpus ?? []).find((u) => monitor.isCordoned(u));
      if (bad && !a.reason && this.runner.abortJob(jobId, 'shutdown')) {
        this.logger.warn({ jobId, gpu: bad }, 'handing back an attempt running on a cordoned GPU');
      }
    }
  }

  heartbeat(): WorkerHeartbeat {
    return {
      v: 1,
      id: this.identity.id,
      pool: this.identity.pool,
      slots: this.identity.slots,
      slotsPerGpu: this.identity.slotsPerGpu,
      gpus: this.gpus?.monitor.statuses() ?? this.identity.gpus,
      learnedPeaksMb: this.gpus?.monitor.learnedPeaks() ?? {},
      // This release reads batched dispatches (up to the channel's limit): schedulers may batch to it.
      dispatchBatchMax: DISPATCH_BATCH_LIMIT,
      // Whether its starts read the record a dispatch carries (only without a started-revision delay): schedulers
      // leave the record out of the dispatches of a worker that says no.
      dispatchRecordHint: this.runner.usesDispatchRecordHint,
      runningJobs: [...this.runner.running.keys()],
      inflight: [...this.runner.inflight.values()],
      jobTypes: this.identity.jobTypes,
      draining: this.draining,
      startedAt: this.startedAt,
      heartbeatAt: this.clock.now().toISOString(),
      version: this.identity.version,
    };
  }

  /** A heartbeat that starts after now (waits out one in progress, which may carry older GPU states). */
  private async beatFresh(): Promise<void> {
    while (this.inBeat) await this.inBeat;
    await this.beat();
  }

  private inBeat: Promise<void> | undefined;

  /** One heartbeat: renew the registration, then check the attempts' records. */
  private beat(): Promise<void> {
    if (this.beating || !this.kv) return Promise.resolve();
    const p: Promise<void> = this.beatOnce().finally(() => {
      if (this.inBeat === p) this.inBeat = undefined;
    });
    this.inBeat = p;
    return p;
  }

  private async beatOnce(): Promise<void> {
    if (!this.kv) return;
    this.beating = true;
    try {
      await this.kv.put(this.identity.id, encodeJson(this.heartbeat()));
      const now = this.clock.now().getTime();
      if (this.lastBeat > 0 && now - this.lastBeat >= this.timings.lostAfterMs) {
        this.logger.warn(
          { silentForMs: now - this.lastBeat },
          'heartbeats resumed after this worker was declared lost; rejoining',
        );
        this.rejoinUntil = now + 2 * this.timings.lostAfterMs;
      }
      this.lastBeat = now;
      this.beatFailingSince = undefined;
      this.maxTickGap = 0;
      // Only a heartbeat the broker stored renews the job processes' guards.
      this.lease?.renewed();
      if (this.rejoin && now < this.rejoinUntil) {
        await this.rejoin().catch((err: unknown) => this.logger.warn({ err: String(err) }, 'rejoin failed; retrying'));
      }
      this.handBackFromCordoned();
      await this.runner.checkOwnership().catch((err: unknown) => this.logger.warn({ err }, 'ownership check failed'));
    } catch (err) {
      const at = this.clock.now().getTime();
      this.beatFailingSince ??= at;
      this.logger.warn({ err: String(err), silentForMs: at - this.lastBeat }, 'heartbeat failed');
      this.watchdog();
    } finally {
      this.beating = false;
    }
  }

  /** Stops heartbeating and removes the registration so the scheduler re-queues anything still addressed here. */
  async deregister(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.control?.unsubscribe();
    // Deregistering is a courtesy for a fast hand-over: if it fails the key's TTL and the scheduler's liveness
    // check remove this worker anyway.
    await this.kv?.delete(this.identity.id).catch(() => undefined);
  }

  /** Announces draining (no new dispatches) with an immediate heartbeat. */
  async drain(): Promise<void> {
    this.draining = true;
    await this.beat();
  }
}
