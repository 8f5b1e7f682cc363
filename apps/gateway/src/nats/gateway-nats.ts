/**
 * The gateway's NATS side, connected in the background so the HTTP server answers (`/healthz` 200, `/readyz` 503,
 * write routes 503 + Retry-After) while NATS is away. It also keeps three small read models warm:
 * the leader's queue statistics (backpressure without a round trip), the queue config (drain), and the GPU inventory
 * that live workers report per pool (refusing at submit a job no GPU of its pool can fit).
 */
import {
  CHANNELS,
  BUCKETS,
  topologyFor,
  SUBJECTS,
  bucketDeclarations,
  consumerDeclarations,
  streamDeclarations,
  type QueueConfigRecord,
  type QueueStatsBroadcast,
  type WorkerHeartbeat,
} from '@gantry/contracts';
import { exitOnBootError } from '@gantry/config';
import {
  Backoff,
  decodePayload,
  NatsHandle,
  QueueConfigStore,
  UnsupportedServerError,
  provision,
  sleep,
} from '@gantry/jetstream';
import type { Logger } from '@gantry/telemetry';
import type { GatewayConfig } from '../config';
import { problems } from '../http/problem';
import { AdmissionLedger } from './admission-ledger';

export class GatewayNats {
  private handleValue: NatsHandle | undefined;
  private provisioned = false;
  readonly ready: Promise<NatsHandle>;
  stats: QueueStatsBroadcast | undefined;
  private statsAt = 0;
  /** Jobs admitted here that the latest broadcast may not count yet (see {@link AdmissionLedger}). */
  readonly admissions = new AdmissionLedger();
  queueConfig: QueueConfigRecord | undefined;
  private readonly workers = new Map<string, WorkerHeartbeat>();
  private readonly statsListeners = new Set<(b: QueueStatsBroadcast) => void>();
  private closed = false;

  constructor(
    private readonly config: GatewayConfig,
    private readonly logger: Logger,
  ) {
    this.ready = this.connect();
    this.ready.catch((err: unknown) => {
      // A server that cannot make the configured replicas safe: fatal, like a bad variable (exit 69, not a retry loop).
      if (err instanceof UnsupportedServerError) exitOnBootError('gateway', err);
      logger.error({ err }, 'NATS setup failed');
    });
  }

  private async connect(): Promise<NatsHandle> {
    const nats = await NatsHandle.connect({
      servers: this.config.NATS_URL,
      name: 'gateway',
      logger: this.logger,
      auth: this.config,
    });
    this.handleValue = nats;
    const topology = topologyFor(this.config);
    const s = streamDeclarations(topology);
    const b = bucketDeclarations(topology);
    const backoff = new Backoff({ initialMs: 200, maxMs: 5_000, jitter: false });
    while (!this.closed) {
      try {
        await provision(
          nats,
          {
            streams: [s.jobs, s.batches, s.list, s.webhookDlq],
            consumers: [consumerDeclarations(topology).batchRepair],
            buckets: [b.idempotency, b.rateLimit, b.config, b.workers, b.schedules],
          },
          this.logger,
        );
        break;
      } catch (err) {
        if (err instanceof UnsupportedServerError) throw err;
        this.logger.warn({ err: String(err) }, 'provisioning failed; retrying');
        await sleep(backoff.next());
      }
    }
    nats.nc.subscribe(SUBJECTS.queueStats, {
      callback: (_e, m) => {
        try {
          this.stats = decodePayload(CHANNELS.queueStats, m.data);
          this.statsAt = Date.now();
          this.admissions.onBroadcast(this.stats.appliedSeq);
          for (const l of this.statsListeners) l(this.stats);
        } catch (err) {
          // Core NATS, nothing to redeliver: keep the last good figures until the next broadcast.
          this.logger.warn({ subject: m.subject, reason: String(err) }, 'malformed queue statistics; ignoring them');
        }
      },
    });
    void this.watchConfig(nats);
    void this.watchWorkers(nats);
    this.provisioned = true;
    return nats;
  }

  private async watchConfig(nats: NatsHandle): Promise<void> {
    const store = await QueueConfigStore.open(nats, this.logger);
    await store.watch((c) => (this.queueConfig = c));
  }

  private async watchWorkers(nats: NatsHandle): Promise<void> {
    const kv = await nats.kvm.open(BUCKETS.workers);
    const iter = await kv.watch({ key: '>' });
    for await (const e of iter) {
      if (e.operation === 'PUT') {
        try {
          this.workers.set(e.key, decodePayload(CHANNELS.workerHeartbeats, e.value));
        } catch (err) {
          this.logger.warn({ key: e.key, reason: String(err) }, 'malformed worker heartbeat; ignoring it');
        }
      } else {
        this.workers.delete(e.key);
      }
    }
  }

  /** The connection for a request; a 503 problem while NATS is away. */
  handle(): NatsHandle {
    if (!this.handleValue || !this.provisioned || !this.handleValue.connected) {
      throw problems.unavailable('NATS is unavailable; nothing was changed', 2, 'nats-unavailable');
    }
    return this.handleValue;
  }

  get isReady(): boolean {
    return !!this.handleValue && this.provisioned && this.handleValue.connected;
  }

  /** Calls `listener` with each statistics broadcast from the leader; returns the unsubscribe. */
  onStats(listener: (b: QueueStatsBroadcast) => void): () => void {
    this.statsListeners.add(listener);
    return () => this.statsListeners.delete(listener);
  }

  /** Fresh statistics from the leading scheduler (undefined when none arrived lately). */
  freshStats(maxAgeMs = 5_000): QueueStatsBroadcast | undefined {
    return this.stats && Date.now() - this.statsAt <= maxAgeMs ? this.stats : undefined;
  }

  get draining(): boolean {
    return this.queueConfig?.draining ?? this.stats?.draining ?? false;
  }

  /** The largest GPU (count and memory) that a live worker of the pool has, from heartbeats seen lately. */
  poolCapability(pool: string): { gpus: number; memoryMb: number } | undefined {
    let best: { gpus: number; memoryMb: number } | undefined;
    const now = Date.now();
    for (const w of this.workers.values()) {
      if (w.pool !== pool || now - Date.parse(w.heartbeatAt) > 60_000) continue;
      const mem = Math.max(0, ...w.gpus.map((g) => g.memoryTotalMb));
      best = { gpus: Math.max(best?.gpus ?? 0, w.gpus.length), memoryMb: Math.max(best?.memoryMb ?? 0, mem) };
    }
    return best;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.handleValue?.drain();
  }
}
