/**
 * The notifier's delivery slots (`WEBHOOK_MAX_IN_FLIGHT` per replica), shared **fairly across tenants**: while slots are
 * short, they are handed out round-robin over the tenants that wait for one — one slot per tenant per turn, in the
 * order the tenants started waiting — so a tenant with thousands of due deliveries (or 32 hanging endpoints of its
 * own) gets no more turns than a tenant with one. A tenant's own ceiling (`WEBHOOK_TENANT_MAX_IN_FLIGHT`) is enforced
 * by its lane, which never holds more messages than that; this class only orders the turns.
 *
 * Hand-written (a few lines): the queue libraries on npm (p-limit, p-queue) order by arrival or priority, not by key.
 */
export type Release = () => void;

export class FairSlots {
  private free: number;
  /** Waiters per tenant; the map's order is the rotation (a served tenant with more waiters moves to the back). */
  private readonly waiting = new Map<string, Array<(r: Release) => void>>();
  private readonly held = new Map<string, number>();

  constructor(readonly capacity: number) {
    this.free = capacity;
  }

  /** Resolves with the release of one slot, when it is this tenant's turn. */
  acquire(tenant: string): Promise<Release> {
    if (this.free > 0 && this.waiting.size === 0) return Promise.resolve(this.take(tenant));
    return new Promise((resolve) => {
      const q = this.waiting.get(tenant);
      if (q) q.push(resolve);
      else this.waiting.set(tenant, [resolve]);
      this.grant();
    });
  }

  private take(tenant: string): Release {
    this.free--;
    this.held.set(tenant, (this.held.get(tenant) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.free++;
      const n = (this.held.get(tenant) ?? 1) - 1;
      if (n > 0) this.held.set(tenant, n);
      else this.held.delete(tenant);
      this.grant();
    };
  }

  private grant(): void {
    while (this.free > 0 && this.waiting.size > 0) {
      const [tenant, q] = this.waiting.entries().next().value!;
      const resolve = q.shift()!;
      this.waiting.delete(tenant);
      if (q.length > 0) this.waiting.set(tenant, q);
      resolve(this.take(tenant));
    }
  }

  /** Slots held now by `tenant` (for tests and metrics). */
  heldBy(tenant: string): number {
    return this.held.get(tenant) ?? 0;
  }

  get inUse(): number {
    return this.capacity - this.free;
  }

  /** Tenants waiting for a slot now. */
  get waitingTenants(): number {
    return this.waiting.size;
  }
}
