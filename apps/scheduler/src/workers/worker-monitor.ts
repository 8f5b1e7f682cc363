/**
 * Tracks workers from their heartbeats (a watch on the workers bucket) and judges liveness by this process's own
 * clock: a worker unheard of for WORKER_LOST_AFTER_MS is lost. (KV TTL expiry sends no watch event on 2.9, so the
 * bucket's TTL is only a backstop for cleanup.) Every replica keeps the view warm; only the leader acts on a loss:
 * its dispatched-not-started jobs go back to the queue, its running attempts end WORKER_LOST (costing the attempt),
 * and its dispatch consumer and subject are removed so a zombie cannot pick up anything addressed to it.
 *
 * Silence is only counted while this scheduler can read the bucket (issue #19). Every sweep first looks at the bucket;
 * while it cannot (the node holding the bucket's stream is down, the whole cluster restarts, this process is cut
 * off), the loss clock is paused: no worker is judged, and once the bucket answers again every worker gets a full
 * period from that moment (workers cannot heartbeat into a broker that is away either, and their own watchdogs fence
 * their attempts meanwhile). A worker that looks overdue is read directly before the verdict: a heartbeat stored but
 * not (yet) delivered by the watch (a watch that stalls after a reconnect) is not silence — the beat counts and the
 * watch is re-opened.
 */
import {
  CHANNELS,
  BUCKETS,
  CONSUMERS,
  STREAMS,
  SUBJECTS,
  workerLost,
  type Clock,
  type WorkerHeartbeat,
} from '@gantry/contracts';
import { decodePayload, isNotFound, type NatsHandle } from '@gantry/jetstream';
import type { JobStore } from '@gantry/job-store';
import type { Logger } from '@gantry/telemetry';
import { jetstream } from '@nats-io/jetstream';
import { Kvm, type KvEntry, type KV } from '@nats-io/kv';
import type { SchedulerState } from '../domain/scheduler-state';

export interface WorkerMonitorHooks {
  isLeader(): boolean;
  /** Re-checks the lease right before acting on a loss (a lease is not a fence). */
  verifyLeadership(): Promise<boolean>;
  workersChanged(): void;
  lost(workerId: string): void;
}

export class WorkerMonitor {
  private kv: KV | undefined;
  /** The same bucket with a short request timeout: the sweep's look at the bucket and its direct reads. */
  private probeKv: KV | undefined;
  private readonly lastSeen = new Map<string, number>();
  /** The bucket revision of each worker's last heartbeat counted (a replayed or re-read one is not a new beat). */
  private readonly lastRevision = new Map<string, number>();
  /** Since when this scheduler cannot read the workers bucket (the loss clock is paused meanwhile). */
  private blindSince: number | undefined;
  /** Workers no longer tracked, and since when: their revisions are kept while their keys can still be replayed. */
  private readonly forgotten = new Map<string, number>();
  /** The bucket's TTL (how long a silent worker's key can still be replayed), from the last look at it. */
  private bucketTtlMs = 0;
  private sweeping = false;
  private stopped = false;
  readonly heartbeats = new Map<string, WorkerHeartbeat>();
  private timer: NodeJS.Timeout | undefined;
  private watching: Promise<void> | undefined;
  private stopWatch: (() => void) | undefined;
  private readonly handling = new Set<string>();
  private readonly checking = new Set<string>();

  constructor(
    private readonly nats: NatsHandle,
    private readonly jobs: JobStore,
    private readonly state: SchedulerState,
    private readonly clock: Clock,
    private readonly lostAfterMs: number,
    private readonly hooks: WorkerMonitorHooks,
    private readonly logger: Logger,
  ) {}

  async start(): Promise<void> {
    this.kv = await this.nats.kvm.open(BUCKETS.workers);
    // A look at the bucket must answer well inside a sweep period (the client's default is 5 s).
    const probeTimeoutMs = Math.max(250, Math.min(5_000, Math.floor(this.lostAfterMs / 3)));
    this.probeKv = await new Kvm(jetstream(this.nats.nc, { timeout: probeTimeoutMs })).open(BUCKETS.workers);
    await this.openWatch();
    this.timer = setInterval(() => void this.sweep(), Math.max(100, Math.floor(this.lostAfterMs / 5)));
  }

  /**
   * (Re-)opens the watch: it delivers the last heartbeat of every worker, then every new one. The new watch is open
   * before the old one stops (a failed open keeps the old one); beats both deliver are counted once (by revision).
   */
  private async openWatch(): Promise<void> {
    if (!this.kv || this.stopped) return;
    const iter = await this.kv.watch({ key: '>' });
    if (this.stopped) {
      iter.stop();
      return;
    }
    const previous = { stop: this.stopWatch, watching: this.watching };
    this.stopWatch = () => iter.stop();
    this.watching = (async () => {
      for await (const e of iter) this.onEntry(e);
    })();
    previous.stop?.();
    await previous.watching?.catch(() => undefined);
  }

  private onEntry(e: KvEntry): void {
    const id = e.key;
    // A replay (a re-opened watch) or a direct read of a heartbeat already counted is not a new beat.
    if (e.revision <= (this.lastRevision.get(id) ?? 0)) return;
    this.lastRevision.set(id, e.revision);
    if (e.operation !== 'PUT') {
      // A worker that stops gracefully deletes its key: treat it as gone at once.
      this.lastSeen.set(id, 0);
      void this.sweep();
      return;
    }
    let hb: WorkerHeartbeat;
    try {
      hb = decodePayload(CHANNELS.workerHeartbeats, e.value);
    } catch (err) {
      // Not counted as a beat: a worker that only writes malformed ones is lost after WORKER_LOST_AFTER_MS.
      this.logger.warn({ key: e.key, reason: String(err) }, 'malformed worker heartbeat; ignoring it');
      return;
    }
    const known = this.heartbeats.has(id);
    this.heartbeats.set(id, hb);
    this.lastSeen.set(id, this.clock.now().getTime());
    const before = this.state.capacity.worker(id);
    const wasGpus = before?.gpus.map((g) => [g.cordoned, g.memoryFreeMb]);
    this.state.capacity.upsertWorker(hb);
    const nowGpus = this.state.capacity.worker(id)?.gpus.map((g) => [g.cordoned, g.memoryFreeMb]);
    if (
      !known ||
      !before ||
      before.slots !== hb.slots ||
      before.draining !== hb.draining ||
      before.gpus.length !== hb.gpus.length ||
      // A GPU cordoned or uncordoned, or its live free memory moved: what fits where may have changed.
      JSON.stringify(wasGpus) !== JSON.stringify(nowGpus)
    ) {
      this.hooks.workersChanged();
    }
    if (!this.state.capacity.worker(id)?.ready) void this.checkReady(id);
  }

  /**
   * A worker gets dispatches only once its dispatch consumer exists: a fresh worker heartbeats before it creates it,
   * and a zombie that comes back after being declared lost has had it deleted (dispatching to it would strand the
   * job and its token). Checked again on every heartbeat until it is there.
   */
  private async checkReady(id: string): Promise<void> {
    if (this.checking.has(id) || this.handling.has(id)) return;
    this.checking.add(id);
    try {
      await this.nats.jsm.consumers.info(STREAMS.dispatch, CONSUMERS.worker(id));
      if (!this.handling.has(id) && this.heartbeats.has(id) && this.state.capacity.setReady(id, true)) {
        this.hooks.workersChanged();
      }
    } catch (err) {
      // Not there (yet), or NATS trouble: either way the next heartbeat looks again (heartbeat-paced, no tight loop).
      if (!isNotFound(err))
        this.logger.warn({ err, workerId: id }, 'could not check a worker consumer; will look again');
    } finally {
      this.checking.delete(id);
    }
  }

  /** A worker named by a running attempt gets watched even if it never heartbeats to us. */
  reference(workerId: string): void {
    if (!this.lastSeen.has(workerId)) this.lastSeen.set(workerId, this.clock.now().getTime());
  }

  /** After a takeover the new leader gives every known worker a full period before judging it. */
  refreshAll(): void {
    const now = this.clock.now().getTime();
    for (const id of this.lastSeen.keys()) if (this.lastSeen.get(id) !== 0) this.lastSeen.set(id, now);
    this.referenceHoldings();
  }

  /** Every worker named by a held token gets watched (adopted dispatches included). */
  referenceHoldings(): void {
    for (const h of this.state.holdings.values()) this.reference(h.workerId);
  }

  liveWorkers(): WorkerHeartbeat[] {
    return [...this.heartbeats.values()].filter((h) => this.lastSeen.get(h.id) !== 0);
  }

  /**
   * Whether this scheduler can read the workers bucket now. While it cannot, nothing is judged; when it can again,
   * every worker gets a full period from now (the loss clock was paused), and the watch is re-opened (a watch can
   * stay stalled long after a reconnect; re-opening it replays only each worker's last beat).
   */
  private async canSee(): Promise<boolean> {
    const now = this.clock.now().getTime();
    try {
      const status = await this.probeKv?.status();
      this.bucketTtlMs = status?.ttl ?? 0;
    } catch (err) {
      if (this.blindSince === undefined) {
        this.blindSince = now;
        this.logger.warn(
          { err: String(err) },
          'cannot read worker heartbeats; no worker is judged lost until the workers bucket answers again',
        );
      }
      return false;
    }
    if (this.blindSince === undefined) return true;
    const blindForMs = now - this.blindSince;
    this.blindSince = undefined;
    for (const [id, seen] of this.lastSeen) if (seen !== 0) this.lastSeen.set(id, Math.max(seen, now));
    this.logger.warn(
      { blindForMs, workers: this.lastSeen.size },
      'worker heartbeats readable again; every worker gets a full period from now',
    );
    await this.openWatch().catch((err: unknown) =>
      this.logger.warn({ err: String(err) }, 'could not re-open the worker heartbeat watch; keeping the old one'),
    );
    return false;
  }

  /**
   * Reads an overdue worker's heartbeat directly: true when a beat the watch has not delivered is there (then counted,
   * and the watch re-opened), false when the worker really is silent; throws when the bucket cannot be read.
   */
  private async beatMissedByWatch(id: string): Promise<boolean> {
    const e = await this.probeKv?.get(id);
    if (!e || e.revision <= (this.lastRevision.get(id) ?? 0)) return false;
    this.logger.warn(
      { workerId: id, revision: e.revision, watched: this.lastRevision.get(id) ?? 0 },
      'a worker heartbeat was stored but not delivered by the watch; counting it and re-opening the watch',
    );
    this.onEntry(e);
    await this.openWatch().catch((err: unknown) =>
      this.logger.warn({ err: String(err) }, 'could not re-open the worker heartbeat watch; keeping the old one'),
    );
    return true;
  }

  private async sweep(): Promise<void> {
    if (this.sweeping) return;
    this.sweeping = true;
    try {
      await this.sweepOnce();
    } finally {
      this.sweeping = false;
    }
  }

  private async sweepOnce(): Promise<void> {
    if (!(await this.canSee())) return;
    const now = this.clock.now().getTime();
    for (const [id, at] of this.forgotten) {
      if (this.lastSeen.has(id)) this.forgotten.delete(id);
      else if (now - at > 2 * Math.max(this.bucketTtlMs, this.lostAfterMs)) {
        this.forgotten.delete(id);
        this.lastRevision.delete(id);
      }
    }
    for (const id of [...this.lastSeen.keys()]) {
      // Looked at afresh after every await: a beat counted meanwhile (the watch, a re-opened watch's replay) saves it.
      if (!this.overdue(id) || this.handling.has(id)) continue;
      if (this.lastSeen.get(id) !== 0) {
        try {
          if (await this.beatMissedByWatch(id)) continue;
        } catch {
          // The bucket stopped answering between the look and the read: judge nobody now (the next sweep looks again).
          return;
        }
        if (!this.overdue(id)) continue;
      }
      if (!this.hooks.isLeader()) {
        // Standbys forget the worker from their capacity view; the leader's writes update the records.
        this.state.capacity.removeWorker(id);
        this.heartbeats.delete(id);
        this.lastSeen.delete(id);
        this.forgotten.set(id, now);
        continue;
      }
      this.handling.add(id);
      try {
        await this.declareLost(id);
      } catch (err) {
        this.logger.error({ err, workerId: id }, 'handling a lost worker failed; will retry');
      } finally {
        this.handling.delete(id);
      }
    }
  }

  /** Whether a tracked worker has been silent for longer than the lost period, by the clock now. */
  private overdue(id: string): boolean {
    const seen = this.lastSeen.get(id);
    return seen !== undefined && this.clock.now().getTime() - seen > this.lostAfterMs;
  }

  private async declareLost(workerId: string): Promise<void> {
    if (!(await this.hooks.verifyLeadership())) return;
    // A beat that arrived while the lease was checked saves the worker (it was seen declared lost 18 ms after a beat).
    if (!this.overdue(workerId)) return;
    const silentForMs = this.clock.now().getTime() - (this.lastSeen.get(workerId) ?? 0);
    this.logger.warn({ workerId, silentForMs }, 'worker lost');
    const reservations = this.state.capacity.removeWorker(workerId);
    this.heartbeats.delete(workerId);
    // Its dispatch queue first: nothing addressed to it may be picked up later by a zombie.
    // Already gone is fine; anything else is logged and left to the backstops (the consumer's inactivity threshold,
    // and a zombie's compare-and-set, which fails against a record that no longer names its attempt).
    const cleanUpFailed = (what: string) => (err: unknown) => {
      if (!isNotFound(err)) this.logger.warn({ err: String(err), workerId }, `could not ${what} of a lost worker`);
    };
    await this.nats.jsm.consumers
      .delete(STREAMS.dispatch, CONSUMERS.worker(workerId))
      .catch(cleanUpFailed('delete the dispatch consumer'));
    await this.nats.jsm.streams
      .purge(STREAMS.dispatch, { filter: SUBJECTS.dispatch(workerId) })
      .catch(cleanUpFailed('purge the dispatches'));
    const at = this.clock.now();
    for (const r of reservations) {
      const h = this.state.holdings.get(r.jobId);
      if (h?.state === 'dispatched') {
        this.state.requeue(r.jobId);
        continue;
      }
      const done = await this.jobs.tryTransition(r.jobId, (cur) => workerLost(cur.record, workerId, at));
      if (!done) this.state.releaseHolding(r.jobId);
    }
    this.lastSeen.delete(workerId);
    this.forgotten.set(workerId, this.clock.now().getTime());
    // A heartbeat that arrived while we were at it (a zombie waking up) must not make it dispatchable again.
    this.state.capacity.setReady(workerId, false);
    this.hooks.lost(workerId);
    this.hooks.workersChanged();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.stopWatch?.();
    // Stopping waits for the watch to end, not for it to succeed (its errors were logged where they happened).
    await this.watching?.catch(() => undefined);
  }
}
