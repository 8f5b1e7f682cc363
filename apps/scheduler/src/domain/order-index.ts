/**
 * The queue order: per pool, per priority level, per tenant, an {@link OrderedSet} by queue sequence.
 *
 * Order is strict priority (urgent < high < normal < low). With aging on, a job's effective level drops by one per
 * `agingMs` waited, never below `high` (aging never lifts a job into urgent). Within one set, older entries are always
 * at least as promoted as newer ones, so each tenant's next job is the head of one of its sets (FIFO within a tenant),
 * and the jobs ahead of a given job form a prefix of each set.
 *
 * Between tenants at one effective level the order is weighted fair share (see {@link FairShare}): `best` takes a
 * `rank` of each competing tenant's head and picks the lowest, then the lowest queue sequence; without one it is FIFO
 * by queue sequence. Both the next job and a queue position cost O(levels × tenants × log n).
 */
import { compareRanks } from './fair-share';
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

/** Fair-share rank of a tenant's head (lower first; see FairShare.rank). */
export type Rank = readonly [number, number];
export type RankFn = (tenant: string, headGpuCount: number) => Rank;

export interface Candidate {
  pool: string;
  tenant: string;
  level: number;
  effective: number;
  entry: Entry;
  /** The fair-share rank it was chosen with (absent without fair share). */
  rank?: Rank;
}

/** Negative when candidate a runs before b: effective level, then fair-share rank, then queue sequence. */
export function compareCandidates(a: Candidate, b: Candidate): number {
  if (a.effective !== b.effective) return a.effective - b.effective;
  if (a.rank && b.rank) {
    const r = compareRanks(a.rank, b.rank);
    if (r !== 0) return r;
  }
  return a.entry.seq - b.entry.seq;
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

  /**
   * Queued jobs of `pool` filed at a base level better (lower) than `level`, tenants for which `tenantBlocked` is true
   * left out: O(levels × tenants), no entry is visited.
   */
  countAbove(pool: string, level: number, tenantBlocked: (tenant: string) => boolean = () => false): number {
    const q = this.pools.get(pool);
    if (!q) return 0;
    let n = 0;
    for (let l = 0; l < Math.min(level, LEVELS); l++)
      for (const [tenant, set] of q.levels[l]!) if (!tenantBlocked(tenant)) n += set.size;
    return n;
  }

  /**
   * Queued jobs of one tenant in `pool` filed at `level` or above (the jobs of that tenant a job filed at `level`
   * cannot overtake: FIFO within a tenant, strict priority between levels), itself included when queued. O(levels).
   */
  tenantQueued(pool: string, tenant: string, level: number): number {
    const q = this.pools.get(pool);
    if (!q) return 0;
    let n = 0;
    for (let l = 0; l <= Math.min(level, LEVELS - 1); l++) n += q.levels[l]!.get(tenant)?.size ?? 0;
    return n;
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
   * (jobs that can never be placed). Each tenant's candidate is its best head (effective level, then FIFO); between
   * tenants at the best effective level the lowest `rank` wins, then the lowest sequence. Undefined when nothing is
   * eligible.
   */
  best(
    pool: string,
    now: number,
    agingMs: number,
    tenantBlocked: (tenant: string) => boolean = () => false,
    skip?: ReadonlySet<string>,
    rank?: RankFn,
  ): Candidate | undefined {
    const q = this.pools.get(pool);
    if (!q) return undefined;
    if (agingMs > 0 || (skip && skip.size > 0))
      return this.bestGeneral(q, pool, now, agingMs, tenantBlocked, skip, rank);
    // Without aging a job's effective level is its base level, and a tenant has one set per level: the first level
    // with an eligible tenant wins, and each tenant's head there is its candidate. Only the winner's entry is built.
    for (let level = 0; level < LEVELS; level++) {
      let bestSet: OrderedSet | undefined;
      let bestTenant = '';
      let bestSeq = 0;
      let bestRank: Rank | undefined;
      for (const [tenant, set] of q.levels[level]!) {
        if (tenantBlocked(tenant)) continue;
        const seq = set.firstSeq();
        if (seq === undefined) continue;
        const r = rank?.(tenant, set.firstGpuCount());
        if (bestSet) {
          const c = r && bestRank ? compareRanks(r, bestRank) : 0;
          if (c > 0 || (c === 0 && seq > bestSeq)) continue;
        }
        bestSet = set;
        bestTenant = tenant;
        bestSeq = seq;
        bestRank = r;
      }
      if (bestSet) {
        const entry = bestSet.first()!;
        return { pool, tenant: bestTenant, level, effective: level, entry, ...(bestRank ? { rank: bestRank } : {}) };
      }
    }
    return undefined;
  }

  /** `best` with aging on or jobs to skip: each tenant's best head over its levels, then the fair-share rank. */
  private bestGeneral(
    q: PoolQueue,
    pool: string,
    now: number,
    agingMs: number,
    tenantBlocked: (tenant: string) => boolean,
    skip: ReadonlySet<string> | undefined,
    rank: RankFn | undefined,
  ): Candidate | undefined {
    const perTenant = new Map<string, Candidate>();
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
        const cur = perTenant.get(tenant);
        if (!cur || compareKeys(effective, head.seq, cur.effective, cur.entry.seq) < 0)
          perTenant.set(tenant, { pool, tenant, level, effective, entry: head });
      }
    }
    let best: Candidate | undefined;
    for (const c of perTenant.values()) {
      if (best && c.effective > best.effective) continue;
      if (rank) c.rank = rank(c.tenant, c.entry.gpuCount);
      if (!best || compareCandidates(c, best) < 0) best = c;
    }
    return best;
  }

  /**
   * Number of queued jobs of the pool that run before this one (0 = next), or undefined when the job is not in the
   * index. The job's own aging clock is read from the index (it may have been clamped on insert).
   *
   * Without `fair` (FIFO between tenants) it is exact. With it, jobs at a higher effective level all count, and so do
   * the `k` jobs of its own tenant ahead of it at its level (FIFO); another tenant `u` with `n_u` jobs at that level
   * counts its jobs `j` (1-based) with `(h_u + j) / w_u < (h_t + k + 1) / w_t` (h: slots held now; a tie counts when
   * u's job was queued first), at most `n_u` — the order the dispatcher hands tokens out in, taking every job as one
   * slot and leaving out decayed usage (which only breaks ties of held share) and what changes later: jobs
   * arriving, tokens returning in a different order (docs/fair-share.md).
   */
  position(
    pool: string,
    tenant: string,
    level: number,
    seq: number,
    now: number,
    agingMs: number,
    fair?: { weight(tenant: string): number; held(tenant: string): number },
  ): number | undefined {
    const q = this.pools.get(pool);
    const own = q?.levels[level]?.get(tenant)?.get(seq);
    if (!q || !own) return undefined;
    const mine = effectiveLevel(level, own.enqueuedAt, now, agingMs);
    if (!fair) {
      let ahead = 0;
      for (let l = 0; l < LEVELS; l++) {
        for (const set of q.levels[l]!.values()) {
          ahead += set.prefixWhile((s, enq) => compareKeys(effectiveLevel(l, enq, now, agingMs), s, mine, seq) < 0);
        }
      }
      return ahead;
    }
    let higher = 0;
    let ownAhead = 0;
    /** Per other tenant: its jobs at this effective level, as (set, offset, count) runs. */
    const atLevel = new Map<string, { n: number; runs: { set: OrderedSet; from: number }[] }>();
    for (let l = 0; l < LEVELS; l++) {
      for (const [t, set] of q.levels[l]!) {
        const above = set.prefixWhile((_s, enq) => effectiveLevel(l, enq, now, agingMs) < mine);
        higher += above;
        if (t === tenant) {
          ownAhead +=
            set.prefixWhile((s, enq) => compareKeys(effectiveLevel(l, enq, now, agingMs), s, mine, seq) < 0) - above;
        } else {
          const same = set.prefixWhile((_s, enq) => effectiveLevel(l, enq, now, agingMs) <= mine) - above;
          if (same <= 0) continue;
          const cur = atLevel.get(t) ?? { n: 0, runs: [] };
          cur.n += same;
          cur.runs.push({ set, from: above });
          atLevel.set(t, cur);
        }
      }
    }
    const w = fair.weight(tenant);
    const mineAt = fair.held(tenant) + ownAhead + 1;
    let others = 0;
    for (const [t, u] of atLevel) {
      // u's j-th job (1-based) comes before this one, the (k+1)-th of its tenant, when (h_u + j) / w_u <
      // (h_t + k + 1) / w_t; on a tie, when it was queued first (the dispatcher's last word).
      const num = mineAt * fair.weight(t);
      const hu = fair.held(t);
      let before = Math.max(0, Math.ceil(num / w) - 1 - hu);
      if (num % w === 0 && num / w - hu >= 1 && before < u.n) {
        const tie = u.runs.length === 1 ? u.runs[0]!.set.slice(u.runs[0]!.from + before, 1)[0] : undefined;
        if (!tie || tie.seq < seq) before++;
      }
      others += Math.min(u.n, before);
    }
    return higher + ownAhead + others;
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
