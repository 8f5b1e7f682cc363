/**
 * The KEDA demand gauge: for each pool, the durable consumer `demand_<pool>` on GANTRY_DEMAND_V1 is never consumed,
 * so its pending count is the number of messages on `gantry.v1.demand.<pool>.*`. The leader keeps that number equal
 * to the pool's queued jobs, capped at DEMAND_GAUGE_CAP, and KEDA's `nats-jetstream` scaler reads it as lag.
 *
 * Rising: one message per missing unit, each on a subject never used before (so no message replaces another).
 * Falling: one purge of the pool's subjects keeping the newest `target` messages. Only the count matters, not which
 * units are left. A new leader starts from an empty gauge (purge all, then publish), since it cannot know what its
 * predecessor's last update was.
 */
import { demandConsumer, STREAMS, SUBJECTS } from '@gantry/contracts';
import { ensureConsumer, type NatsHandle } from '@gantry/jetstream';
import type { Logger } from '@gantry/telemetry';

export class DemandGauge {
  /** Units believed to be in the stream per pool; absent = unknown (purge before publishing). */
  private readonly current = new Map<string, number>();
  private nextUnit = 0;
  private busy = false;

  constructor(
    private readonly nats: NatsHandle,
    private readonly cap: number,
    private readonly logger: Logger,
  ) {}

  /** Forgets what it believed (a takeover): the next update rewrites every pool's gauge. */
  async reset(): Promise<void> {
    this.current.clear();
    // Unit subjects only need to be fresh: start past anything the stream ever stored.
    const info = await this.nats.jsm.streams.info(STREAMS.demand);
    this.nextUnit = Math.max(this.nextUnit, info.state.last_seq + 1);
  }

  /** Brings every pool's gauge to its queued depth (capped). Skipped while a previous update still runs. */
  async update(depths: ReadonlyMap<string, number>): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const pools = new Set([...depths.keys(), ...this.current.keys()]);
      for (const pool of pools) {
        const target = Math.min(this.cap, Math.max(0, depths.get(pool) ?? 0));
        try {
          await this.set(pool, target);
        } catch (err) {
          this.current.delete(pool);
          this.logger.warn({ err: String(err), pool }, 'demand gauge update failed; will rewrite it');
        }
      }
    } finally {
      this.busy = false;
    }
  }

  private async set(pool: string, target: number): Promise<void> {
    let cur = this.current.get(pool);
    if (cur === target) return;
    if (cur === undefined) {
      await ensureConsumer(this.nats.jsm, demandConsumer(pool), this.logger);
      await this.nats.jsm.streams.purge(STREAMS.demand, { filter: SUBJECTS.demandPool(pool) });
      cur = 0;
    }
    if (target > cur) {
      const units = Array.from({ length: target - cur }, () => this.nextUnit++);
      await Promise.all(units.map((n) => this.nats.js.publish(SUBJECTS.demandUnit(pool, n))));
    } else if (target < cur) {
      await this.nats.jsm.streams.purge(STREAMS.demand, { filter: SUBJECTS.demandPool(pool), keep: target });
    }
    this.current.set(pool, target);
  }
}
