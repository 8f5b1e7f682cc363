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

/** See {@link GatewayNats.pendingAccepts}. */
export const PENDING_ACCEPT_MAX_AGE_MS = 30_000;

export interface PendingAccept {
  tenant: string;
  count: number;
  /** Highest jobs-stream sequence of the accepted jobs, once all are written. */
  seq: number | undefined;
  at: number;
}

export class GatewayNats {
  private handleValue: NatsHandle | undefined;
  private provisioned = false;
  readonly ready: Promise<NatsHandle>;
  stats: QueueStatsBroadcast | undefined;
  private statsAt = 0;
  /**
   * Jobs this gateway admitted that the leader's broadcast counts may not include yet, so that a burst of submits
   * between two broadcasts can pass neither maxQueueSize nor TENANT_MAX_QUEUED_JOBS. An admission is dropped once a
   * broadcast's `appliedSeq` reaches its stream sequence (set once written), on a broadcast without `appliedSeq` (an
   * older scheduler), or after {@link PENDING_ACCEPT_MAX_AGE_MS} (a write that failed). Totals are kept as counters:
   * admission costs O(1), pruning O(admissions since the last broadcast) once per broadcast.
   */
  private readonly pendingAccepts = new Set<PendingAccept>();
  private pendingTotal = 0;
  private readonly pendingByTenant = new Map<string, number>();

  /** Counts `count` jobs of `tenant` as admitted here until a broadcast includes them. */
  noteAdmitted(tenant: string, count: number): PendingAccept {
    const a: PendingAccept = { tenant, count, seq: undefined, at: Date.now() };
    this.pendingAccepts.add(a);
    this.pendingTotal += count;
    this.pendingByTenant.set(tenant, (this.pendingByTenant.get(tenant) ?? 0) + count);
    return a;
  }

  /** Jobs admitted here that the latest broadcast does not count yet. */
  get acceptedSinceStats(): number {
    return this.pendingTotal;
  }

  /** Jobs of `tenant` admitted here that the latest broadcast does not count yet. */
  pendingOf(tenant: string): number {
    return this.pendingByTenant.get(tenant) ?? 0;
  }

  private dropPending(a: PendingAccept): void {
    if (!this.pendingAccepts.delete(a)) return;
    this.pendingTotal -= a.count;
    const left = (this.pendingByTenant.get(a.tenant) ?? 0) - a.count;
    if (left > 0) this.pendingByTenant.set(a.tenant, left);
    else this.pendingByTenant.delete(a.tenant);
  }
  queueConfig: QueueConfigRecord | undefined;
  private readonly workers = new Map<string, WorkerHeartbeat>();
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
          const applied = this.stats.appliedSeq;
          const now = Date.now();
          for (const a of this.pendingAccepts) {
            if (applied === undefined || (a.seq !== undefined && a.seq <= applied)) this.dropPending(a);
            else if (now - a.at > PENDING_ACCEPT_MAX_AGE_MS) this.dropPending(a);
          }
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
