/**
 * The KEDA demand gauge: for each pool, the durable consumer `demand_<pool>` on GANTRY_DEMAND_V1 is never consumed,
 * so its pending count is the number of messages on `gantry.v1.demand.<pool>.*`. The leader keeps that number equal
 * to the pool's queued jobs, capped at DEMAND_GAUGE_CAP, and KEDA's `nats-jetstream` scaler reads it as lag.
 *
 * Rising: one message per missing unit, each on a subject never used before (so no message replaces another).
 * Falling: one purge of the pool's subjects keeping the newest `target` messages. Only the count matters, not which
 * units are left. A new leader starts from an empty gauge (purge all, then publish), since it cannot know what its
 * predecessor's last update was.
 *
 * Coalesced: at most one write pass per `minIntervalMs` (1 s by default). Depths reported in between replace each
 * other and the newest is written when the interval is up (a trailing pass), so the gauge shows a depth at most about
 * one interval old — KEDA polls it every few seconds — while a queue that rises and falls between passes costs no
 * writes for the swings it never shows (issue 16, lever 4: 0.2–0.8 durable writes per job in bursty runs before).
 */
import { demandConsumer, STREAMS, SUBJECTS } from '@gantry/contracts';
import { ensureConsumer, jsPublish, type NatsHandle } from '@gantry/jetstream';
import type { Logger } from '@gantry/telemetry';

/** Default spacing of the gauge's write passes. */
export const DEMAND_GAUGE_MIN_INTERVAL_MS = 1_000;

export class DemandGauge {
  /** Units believed to be in the stream per pool; absent = unknown (purge before publishing). */
  private readonly current = new Map<string, number>();
  private nextUnit = 0;
  private busy = false;
  /** The newest depths reported and not yet written (undefined: nothing waiting). */
  private latest: ReadonlyMap<string, number> | undefined;
  /** When the last write pass started (monotonic ms); passes start at least `minIntervalMs` apart. */
  private lastPassAt = -Infinity;
  private timer: NodeJS.Timeout | undefined;
  /** Callers waiting for the pass that will write what they reported. */
  private waiters: (() => void)[] = [];

  constructor(
    private readonly nats: NatsHandle,
    private readonly cap: number,
    private readonly logger: Logger,
    private readonly minIntervalMs = DEMAND_GAUGE_MIN_INTERVAL_MS,
  ) {}

  /** Stops any pending pass (stand-down): a deposed leader must not write the gauge its successor owns. */
  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.latest = undefined;
    this.release();
  }

  /** Forgets what it believed (a takeover): the next update rewrites every pool's gauge. */
  async reset(): Promise<void> {
    this.current.clear();
    // Unit subjects only need to be fresh: start past anything the stream ever stored.
    const info = await this.nats.jsm.streams.info(STREAMS.demand);
    this.nextUnit = Math.max(this.nextUnit, info.state.last_seq + 1);
  }

  /**
   * Reports every pool's queued depth. Written at once when the last pass is at least `minIntervalMs` old, else by a
   * trailing pass when it is (a newer report replaces this one). Resolves once a pass has written these depths or
   * newer ones (or the gauge was stopped).
   */
  update(depths: ReadonlyMap<string, number>): Promise<void> {
    this.latest = depths;
    const done = new Promise<void>((resolve) => this.waiters.push(resolve));
    this.schedule();
    return done;
  }

  private schedule(): void {
    if (this.busy || this.timer || !this.latest) return;
    const wait = this.lastPassAt + this.minIntervalMs - performance.now();
    if (wait <= 0) {
      void this.pass();
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.schedule();
    }, wait);
    this.timer.unref();
  }

  private release(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** One write pass over the newest depths; then the next, if newer ones came in meanwhile. */
  private async pass(): Promise<void> {
    const depths = this.latest!;
    const waiters = this.waiters;
    this.latest = undefined;
    this.waiters = [];
    this.busy = true;
    this.lastPassAt = performance.now();
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
      for (const w of waiters) w();
      this.schedule();
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
      await Promise.all(units.map((n) => jsPublish(this.nats.js, SUBJECTS.demandUnit(pool, n))));
    } else if (target < cur) {
      await this.nats.jsm.streams.purge(STREAMS.demand, { filter: SUBJECTS.demandPool(pool), keep: target });
    }
    this.current.set(pool, target);
  }
}
