/**
 * Weighted fair share between tenants inside a priority level (API §3 "Tenants and fair share").
 *
 * Two figures per tenant, both kept in O(1) per change:
 * - `held`: GPU slots its tokens hold now (a reservation counts `max(1, GPUs)`: a CPU job or an unspecified one
 *   holds one slot), over every pool;
 * - `usage`: GPU-slot-seconds decayed with half-life `h`: `u(t) = Σ slots × ∫ 2^-((t − s)/h) ds` over the time those
 *   slots were held. Held slots are piecewise constant between changes, so advancing from `a` to `t` is exact:
 *   `u(t) = u(a)·f + held·(1 − f)·h/ln 2` with `f = 2^-((t − a)/h)`.
 *
 * The dispatcher ranks the heads of the tenants competing at the best effective level by `rank(tenant, slots)`:
 * first `(held + slots) / weight` — the tenant whose share, once given this job, would be the smallest (Jefferson /
 * D'Hondt apportionment; it yields the bound in docs/fair-share.md) — then `usage / weight` (of two tenants holding
 * the same share now, the one that used less lately goes first), then the head's queue sequence (FIFO across tenants
 * as the last word). Holding the same share of tokens at every moment is holding the same share of slot-seconds, so
 * the slot-seconds two backlogged tenants accrue stay in proportion to their weights whatever their jobs' durations.
 */

export const DEFAULT_WEIGHT = 1;

interface TenantUsage {
  held: number;
  usage: number;
  /** Epoch ms `usage` is exact at. */
  at: number;
}

export interface TenantShare {
  tenant: string;
  weight: number;
  heldSlots: number;
  /** Decayed GPU-slot-seconds, running attempts included up to now. */
  usedSlotSeconds: number;
}

/** GPU slots a reservation holds: one per GPU, at least one (a CPU job holds a worker slot). */
export function slotsOf(gpuIndices: readonly number[] | number): number {
  const n = typeof gpuIndices === 'number' ? gpuIndices : gpuIndices.length;
  return Math.max(1, n);
}

export class FairShare {
  private readonly tenants = new Map<string, TenantUsage>();
  private readonly halfLifeSeconds: number;
  private readonly weights: ReadonlyMap<string, number>;

  constructor(
    weights: Readonly<Record<string, number>> = {},
    halfLifeSeconds = 300,
    private readonly now: () => number = Date.now,
  ) {
    this.weights = new Map(Object.entries(weights));
    this.halfLifeSeconds = Math.max(1e-3, halfLifeSeconds);
  }

  /** Its clock (epoch ms). */
  time(): number {
    return this.now();
  }

  weight(tenant: string): number {
    return this.weights.get(tenant) ?? DEFAULT_WEIGHT;
  }

  /** Tenants named in the configured weights (listed by `GET /v1/tenants` even while idle). */
  configuredTenants(): IterableIterator<string> {
    return this.weights.keys();
  }

  held(tenant: string): number {
    return this.tenants.get(tenant)?.held ?? 0;
  }

  /** Decayed GPU-slot-seconds of the tenant at `at` (default now). */
  usage(tenant: string, at = this.now()): number {
    const u = this.tenants.get(tenant);
    if (!u) return 0;
    return this.advanced(u, at);
  }

  private advanced(u: TenantUsage, at: number): number {
    const dt = Math.max(0, at - u.at) / 1000;
    if (dt === 0) return u.usage;
    const f = Math.pow(2, -dt / this.halfLifeSeconds);
    return u.usage * f + (u.held * (1 - f) * this.halfLifeSeconds) / Math.LN2;
  }

  private advance(tenant: string, at: number): TenantUsage {
    let u = this.tenants.get(tenant);
    if (!u) {
      u = { held: 0, usage: 0, at };
      this.tenants.set(tenant, u);
      return u;
    }
    u.usage = this.advanced(u, at);
    u.at = Math.max(u.at, at);
    return u;
  }

  /** A token of `slots` GPU slots is now held by the tenant (dispatched, or found running). */
  acquire(tenant: string, slots: number): void {
    this.advance(tenant, this.now()).held += slots;
  }

  /** A token is given back. */
  release(tenant: string, slots: number): void {
    const u = this.advance(tenant, this.now());
    u.held = Math.max(0, u.held - slots);
  }

  /**
   * Rank of the tenant's head job of `slots` GPU slots among the heads competing at one effective level: lower runs
   * first (compare with {@link compareRanks}).
   */
  rank(tenant: string, slots: number, at: number): [share: number, usage: number] {
    const w = this.weight(tenant);
    const u = this.tenants.get(tenant);
    if (!u) return [slots / w, 0];
    return [(u.held + slots) / w, this.advanced(u, at) / w];
  }

  /** Every tenant with held slots or usage left, and every configured one; forgets those whose usage decayed away. */
  snapshot(at = this.now()): TenantShare[] {
    const out: TenantShare[] = [];
    for (const [tenant, u] of this.tenants) {
      const used = this.advanced(u, at);
      if (u.held === 0 && used < 1e-6) {
        this.tenants.delete(tenant);
        continue;
      }
      out.push({ tenant, weight: this.weight(tenant), heldSlots: u.held, usedSlotSeconds: used });
    }
    return out;
  }
}

/** Negative when rank a runs before rank b; ties compare equal (the caller then breaks them by queue sequence). */
export function compareRanks(a: readonly [number, number], b: readonly [number, number]): number {
  // Ratios of small integers: compare with a relative tolerance so 1/3 + 1/3 == 2/3 style sums do not flip order.
  const d0 = a[0] - b[0];
  if (Math.abs(d0) > 1e-9 * Math.max(1, Math.abs(a[0]), Math.abs(b[0]))) return d0;
  const d1 = a[1] - b[1];
  if (Math.abs(d1) > 1e-9 * Math.max(1, Math.abs(a[1]), Math.abs(b[1]))) return d1;
  return 0;
}
