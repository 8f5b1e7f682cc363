/** See {@link AdmissionLedger}: how long an admission whose write never reported back is counted. */
export const PENDING_ACCEPT_MAX_AGE_MS = 30_000;

export interface PendingAccept {
  tenant: string;
  count: number;
  /** Highest jobs-stream sequence of the accepted jobs, once all are written. */
  seq: number | undefined;
  at: number;
}

/**
 * Jobs this gateway admitted that the leader's statistics broadcast may not count yet, so that a burst of submits between
 * two broadcasts can pass neither maxQueueSize nor TENANT_MAX_QUEUED_JOBS, and no job is counted twice.
 *
 * An admission is dropped once a broadcast's `appliedSeq` reaches its stream sequence (known once written, whichever of
 * the write's ack and the broadcast comes first), on a broadcast without `appliedSeq` (an older scheduler), when its jobs
 * were certainly not written, or after {@link PENDING_ACCEPT_MAX_AGE_MS} (a write whose outcome never came back).
 * Totals are counters: admission costs O(1), pruning O(admissions since the last broadcast) once per broadcast.
 */
export class AdmissionLedger {
  private readonly pending = new Set<PendingAccept>();
  private pendingTotal = 0;
  private readonly byTenant = new Map<string, number>();
  /** The latest broadcast's `appliedSeq` (undefined before any, or from an older scheduler). */
  private applied: number | undefined;

  constructor(private readonly now: () => number = Date.now) {}

  /** Counts `count` jobs of `tenant` as admitted until a broadcast includes them. */
  admit(tenant: string, count: number): PendingAccept {
    const a: PendingAccept = { tenant, count, seq: undefined, at: this.now() };
    this.pending.add(a);
    this.pendingTotal += count;
    this.byTenant.set(tenant, (this.byTenant.get(tenant) ?? 0) + count);
    return a;
  }

  /**
   * The admitted jobs are written, up to jobs-stream sequence `seq`. A broadcast that arrived while the write was in
   * flight may count them already: then the admission is dropped now, not at the next broadcast.
   */
  written(a: PendingAccept, seq: number): void {
    a.seq = seq;
    if (this.applied !== undefined && seq <= this.applied) this.drop(a);
  }

  /** Forgets an admission whose jobs were certainly not written by it (refused, or written by a racing repeat). */
  withdraw(a: PendingAccept): void {
    this.drop(a);
  }

  /** A statistics broadcast arrived that counts every job up to `appliedSeq`. */
  onBroadcast(appliedSeq: number | undefined): void {
    this.applied = appliedSeq;
    const now = this.now();
    for (const a of this.pending) {
      if (appliedSeq === undefined || (a.seq !== undefined && a.seq <= appliedSeq)) this.drop(a);
      else if (now - a.at > PENDING_ACCEPT_MAX_AGE_MS) this.drop(a);
    }
  }

  /** Jobs admitted that the latest broadcast does not count yet. */
  get total(): number {
    return this.pendingTotal;
  }

  /** Jobs of `tenant` admitted that the latest broadcast does not count yet. */
  of(tenant: string): number {
    return this.byTenant.get(tenant) ?? 0;
  }

  private drop(a: PendingAccept): void {
    if (!this.pending.delete(a)) return;
    this.pendingTotal -= a.count;
    const left = (this.byTenant.get(a.tenant) ?? 0) - a.count;
    if (left > 0) this.byTenant.set(a.tenant, left);
    else this.byTenant.delete(a.tenant);
  }
}
