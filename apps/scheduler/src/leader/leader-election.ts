/**
 * Leader election on a KV lease. The leader renews its key (compare-and-set on the revision) every quarter of the
 * lease (at least every 100 ms); when it stops, the key expires with the bucket's TTL and a standby's create
 * succeeds. The revision of the winning create is the new leader's epoch. A lease is not a fence by itself: the
 * dispatcher fences its writes on the dispatch stream's last sequence (see dispatcher.ts).
 *
 * Only a refused compare-and-set means "another replica holds the lease" (on create) or "the lease was taken over"
 * (on renewal). Any other error (NATS unreachable, a timeout) is not read as either: it is logged and counted, a
 * leader steps down (it cannot prove its lease), and the next lease call waits out an exponential backoff with
 * jitter, so replicas do not hammer a broker that is down and do not retry in lockstep when it comes back.
 */
import { BUCKETS, LEADER_KEY } from '@gantry/contracts';
import { Backoff, isWrongLastSequence, type NatsHandle } from '@gantry/jetstream';
import type { Logger } from '@gantry/telemetry';
import type { KV } from '@nats-io/kv';

export interface LeaderHooks {
  onElected(epoch: number): Promise<void> | void;
  onDeposed(reason: string): Promise<void> | void;
  /** A lease call failed for another reason than a lost compare-and-set; the next one waits `retryInMs`. */
  onLeaseError?(op: 'acquire' | 'renew', err: unknown, retryInMs: number): void;
}

export class LeaderElection {
  private kv: KV | undefined;
  private timer: NodeJS.Timeout | undefined;
  private revision = 0;
  private epochValue = 0;
  private stopped = false;
  private busy = false;
  private readonly backoff: Backoff;
  /** Epoch ms before which no lease call is made (backing off after an error). */
  private notBefore = 0;

  constructor(
    private readonly nats: NatsHandle,
    readonly id: string,
    private readonly leaseMs: number,
    private readonly hooks: LeaderHooks,
    private readonly logger: Logger,
    random?: () => number,
  ) {
    // From one tick up to five leases: a broker that is down sees a few calls per replica, and one that is back is
    // found within a few leases.
    this.backoff = new Backoff({
      initialMs: this.tickMs,
      maxMs: 5 * leaseMs,
      ...(random ? { random } : {}),
    });
  }

  private get tickMs(): number {
    return Math.max(100, Math.floor(this.leaseMs / 4));
  }

  /** Records a lease call that failed with something else than a lost race; returns the wait before the next. */
  private failed(op: 'acquire' | 'renew', err: unknown): number {
    const waitMs = this.backoff.next();
    this.notBefore = Date.now() + waitMs;
    this.hooks.onLeaseError?.(op, err, waitMs);
    this.logger.warn(
      { err, op, failures: this.backoff.attempts, retryInMs: waitMs, schedulerId: this.id },
      'leader lease: NATS call failed (not a lost race); backing off',
    );
    return waitMs;
  }

  get isLeader(): boolean {
    return this.epochValue > 0;
  }

  get epoch(): number {
    return this.epochValue;
  }

  async start(): Promise<void> {
    this.kv = await this.nats.kvm.open(BUCKETS.leader);
    await this.tick();
    this.timer = setInterval(() => void this.tick(), this.tickMs);
  }

  private value(): Uint8Array {
    return new TextEncoder().encode(
      JSON.stringify({ id: this.id, epoch: this.epochValue, renewedAt: new Date().toISOString() }),
    );
  }

  private async tick(): Promise<void> {
    if (this.busy || this.stopped || !this.kv || Date.now() < this.notBefore) return;
    this.busy = true;
    try {
      if (this.isLeader) {
        try {
          this.revision = await this.kv.update(LEADER_KEY, this.value(), this.revision);
          this.backoff.reset();
        } catch (err) {
          if (isWrongLastSequence(err)) {
            await this.depose('lease lost: another replica holds it (compare-and-set refused)');
          } else {
            const waitMs = this.failed('renew', err);
            await this.depose(`lease renewal failed (NATS error; next try in ${waitMs} ms): ${String(err)}`);
          }
        }
        return;
      }
      let rev: number;
      try {
        rev = await this.kv.create(LEADER_KEY, new TextEncoder().encode(JSON.stringify({ id: this.id })));
      } catch (err) {
        if (isWrongLastSequence(err)) {
          this.backoff.reset();
          return; // someone else holds the lease
        }
        this.failed('acquire', err);
        return;
      }
      this.backoff.reset();
      this.revision = rev;
      this.epochValue = rev;
      this.logger.info({ epoch: rev, schedulerId: this.id }, 'elected scheduler leader');
      // The takeover (catching up, fencing, adopting) runs beside the renewals: a takeover slower than the lease
      // must not let the lease lapse under it.
      void this.takeOver(rev);
    } finally {
      this.busy = false;
    }
  }

  private async takeOver(epoch: number): Promise<void> {
    try {
      await this.hooks.onElected(epoch);
    } catch (err) {
      this.logger.error({ err, epoch }, 'takeover failed');
      if (this.epochValue === epoch) await this.depose('takeover failed');
    }
  }

  /**
   * Gives up leadership (fenced, a failed renewal or takeover, or a graceful stop) and releases the lease if it is
   * still ours, so that a healthy replica (or this one, after a fresh fence) takes over at once instead of after
   * the lease runs out.
   */
  async depose(reason: string): Promise<void> {
    if (!this.isLeader) return;
    const rev = this.revision;
    this.epochValue = 0;
    this.logger.warn({ reason, schedulerId: this.id }, 'no longer the scheduler leader');
    await this.hooks.onDeposed(reason);
    // A courtesy so another replica takes over at once: when it fails (the lease moved on, NATS away) the lease
    // simply runs out.
    await this.kv?.delete(LEADER_KEY, { previousSeq: rev }).catch(() => undefined);
  }

  /** True only if the lease still carries our last renewal (checked before writes that are not fenced otherwise). */
  async verify(): Promise<boolean> {
    if (!this.isLeader || !this.kv) return false;
    try {
      const e = await this.kv.get(LEADER_KEY);
      return !!e && e.revision === this.revision && e.operation === 'PUT';
    } catch {
      return false;
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.depose('shutting down');
  }
}
