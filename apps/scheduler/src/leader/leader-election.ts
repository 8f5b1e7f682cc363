/**
 * Leader election on a KV lease. The leader renews its key (compare-and-set on the revision) every third of the
 * lease; when it stops, the key expires with the bucket's TTL and a standby's create succeeds. The revision of the
 * winning create is the new leader's epoch. A lease is not a fence by itself: the dispatcher fences its writes on the
 * dispatch stream's last sequence (see dispatcher.ts).
 */
import { BUCKETS, LEADER_KEY } from '@gantry/contracts';
import type { NatsHandle } from '@gantry/jetstream';
import type { Logger } from '@gantry/telemetry';
import type { KV } from '@nats-io/kv';

export interface LeaderHooks {
  onElected(epoch: number): Promise<void> | void;
  onDeposed(reason: string): Promise<void> | void;
}

export class LeaderElection {
  private kv: KV | undefined;
  private timer: NodeJS.Timeout | undefined;
  private revision = 0;
  private epochValue = 0;
  private stopped = false;
  private busy = false;

  constructor(
    private readonly nats: NatsHandle,
    readonly id: string,
    private readonly leaseMs: number,
    private readonly hooks: LeaderHooks,
    private readonly logger: Logger,
  ) {}

  get isLeader(): boolean {
    return this.epochValue > 0;
  }

  get epoch(): number {
    return this.epochValue;
  }

  async start(): Promise<void> {
    this.kv = await this.nats.kvm.open(BUCKETS.leader);
    await this.tick();
    this.timer = setInterval(() => void this.tick(), Math.max(100, Math.floor(this.leaseMs / 4)));
  }

  private value(): Uint8Array {
    return new TextEncoder().encode(
      JSON.stringify({ id: this.id, epoch: this.epochValue, renewedAt: new Date().toISOString() }),
    );
  }

  private async tick(): Promise<void> {
    if (this.busy || this.stopped || !this.kv) return;
    this.busy = true;
    try {
      if (this.isLeader) {
        try {
          this.revision = await this.kv.update(LEADER_KEY, this.value(), this.revision);
        } catch (err) {
          await this.depose(`lease renewal failed: ${String(err)}`);
        }
        return;
      }
      let rev: number;
      try {
        rev = await this.kv.create(LEADER_KEY, new TextEncoder().encode(JSON.stringify({ id: this.id })));
      } catch {
        return; // someone else holds the lease
      }
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
