/**
 * The queue order: per pool, per priority level, per tenant, an {@link OrderedSet} by queue sequence.
 *
 * Order is strict priority (urgent < high < normal < low), FIFO within a level by queue sequence (the order in which
 * submissions were accepted). With aging on, a job's effective level drops by one per `agingMs` waited, never below
 * `high` (aging never lifts a job into urgent). Within one set, older entries are always at least as promoted as
 * newer ones, so the best job of a pool is always the head of one of its sets and the jobs ahead of a given job form
 * a prefix of each set: both the next job and an exact queue position cost O(sets × log n).
 */
import { OrderedSet, type Entry } from './ordered-set';

export const LEVELS = 4;
export const URGENT = 0;
export const HIGH = 1;

export function effectiveLevel(level: number, enqueuedAt: number, now: number, agingMs: number): number {
  if (agingMs <= 0 || level <= HIGH) return level;
  const steps = Math.floor(Math.max(0, now - enqueuedAt) / agingMs);
  return Math.max(HIGH, level - steps);
}

/** (effective level, seq) ordering: negative when a runs before b. */
export function compareKeys(aLevel: number, aSeq: number, bLevel: number, bSeq: number): number {
  return aLevel !== bLevel ? aLevel - bLevel : aSeq - bSeq;
}

export interface Candidate {
  pool: string;
  tenant: string;
  level: number;
  effective: number;
  entry: Entry;
}

class PoolQueue {
  readonly levels: Map<string, OrderedSet>[] = Array.from({ length: LEVELS }, () => new Map());
  readonly depth = new Array<number>(LEVELS).fill(0);
  size = 0;
}

export class OrderIndex {
  private readonly pools = new Map<string, PoolQueue>();
  private total = 0;

  get size(): number {
    return this.total;
  }

  add(pool: string, tenant: string, level: number, entry: Entry): boolean {
    let q = this.pools.get(pool);
    if (!q) {
      q = new PoolQueue();
      this.pools.set(pool, q);
    }
    let set = q.levels[level]!.get(tenant);
    if (!set) {
      set = new OrderedSet();
      q.levels[level]!.set(tenant, set);
    }
    if (!set.insert(entry)) return false;
    q.depth[level]!++;
    q.size++;
    this.total++;
    return true;
  }

  remove(pool: string, tenant: string, level: number, seq: number): Entry | undefined {
    const q = this.pools.get(pool);
    const set = q?.levels[level]?.get(tenant);
    if (!q || !set) return undefined;
    const e = set.remove(seq);
    if (!e) return undefined;
    q.depth[level]!--;
    q.size--;
    this.total--;
    if (set.size === 0) q.levels[level]!.delete(tenant);
    if (q.size === 0) this.pools.delete(pool);
    return e;
  }

  /** Removes wherever it is in the pool (when the level it was filed under is unknown). */
  removeAnywhere(pool: string, tenant: string, seq: number): { level: number; entry: Entry } | undefined {
    for (let level = 0; level < LEVELS; level++) {
      const entry = this.remove(pool, tenant, level, seq);
      if (entry) return { level, entry };
    }
    return undefined;
  }

  has(pool: string, tenant: string, level: number, seq: number): boolean {
    return this.pools.get(pool)?.levels[level]?.get(tenant)?.has(seq) ?? false;
  }

  poolNames(): string[] {
    return [...this.pools.keys()];
  }

  /** Queued jobs per tenant over every pool and level: O(pools × levels × tenants), not O(jobs). */
  tenantDepths(into = new Map<string, number>()): Map<string, number> {
    for (const q of this.pools.values())
      for (const level of q.levels)
        for (const [tenant, set] of level) into.set(tenant, (into.get(tenant) ?? 0) + set.size);
    return into;
  }

  /** Queued jobs per base level (and total), over every pool or one. */
  depth(pool?: string): { byLevel: number[]; total: number } {
    const byLevel = new Array<number>(LEVELS).fill(0);
    const qs = pool ? [this.pools.get(pool)].filter((q): q is PoolQueue => !!q) : [...this.pools.values()];
    for (const q of qs) for (let l = 0; l < LEVELS; l++) byLevel[l]! += q.depth[l]!;
    return { byLevel, total: byLevel.reduce((a, b) => a + b, 0) };
  }

  /**
   * The job of `pool` that runs next, skipping tenants for which `tenantBlocked` is true and ids in `skip`
   * (jobs that can never be placed). Undefined when nothing is eligible.
   */
  best(
    pool: string,
    now: number,
    agingMs: number,
    tenantBlocked: (tenant: string) => boolean = () => false,
    skip?: ReadonlySet<string>,
  ): Candidate | undefined {
    const q = this.pools.get(pool);
    if (!q) return undefined;
    let best: Candidate | undefined;
    for (let level = 0; level < LEVELS; level++) {
      for (const [tenant, set] of q.levels[level]!) {
        if (tenantBlocked(tenant)) continue;
        let head: Entry | undefined;
        if (skip && skip.size > 0) {
          for (const e of set.entries()) {
            if (!skip.has(e.id)) {
              head = e;
              break;
            }
          }
        } else {
          head = set.first();
        }
        if (!head) continue;
        const effective = effectiveLevel(level, head.enqueuedAt, now, agingMs);
        if (!best || compareKeys(effective, head.seq, best.effective, best.entry.seq) < 0) {
          best = { pool, tenant, level, effective, entry: head };
        }
      }
    }
    return best;
  }

  /**
   * Exact number of queued jobs of the pool that run before this one (0 = next), or undefined when the job is not in
   * the index. The job's own aging clock is read from the index (it may have been clamped on insert).
   */
  position(pool: string, tenant: string, level: number, seq: number, now: number, agingMs: number): number | undefined {
    const q = this.pools.get(pool);
    const own = q?.levels[level]?.get(tenant)?.get(seq);
    if (!q || !own) return undefined;
    const mine = effectiveLevel(level, own.enqueuedAt, now, agingMs);
    let ahead = 0;
    for (let l = 0; l < LEVELS; l++) {
      for (const set of q.levels[l]!.values()) {
        ahead += set.prefixWhile((s, enq) => compareKeys(effectiveLevel(l, enq, now, agingMs), s, mine, seq) < 0);
      }
    }
    return ahead;
  }

  /** Every queued entry of a pool (or all pools), for clearing the queue. */
  *all(): IterableIterator<{ pool: string; tenant: string; level: number; entry: Entry }> {
    for (const [pool, q] of this.pools) {
      for (let level = 0; level < LEVELS; level++) {
        for (const [tenant, set] of q.levels[level]!)
          for (const entry of set.entries()) yield { pool, tenant, level, entry };
      }
    }
  }
}
