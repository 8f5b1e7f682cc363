/**
 * The dependency edges of the jobs that wait for their parents (status `waiting`, `dependsOn`), kept by every replica
 * as part of the projection: child → its parents, parent → its waiting children, and the last known state of each
 * parent that has waiting children. Pure bookkeeping, no I/O: the leader's {@link DependencyTracker} decides and
 * writes; the index only says which children a revision may have made decidable.
 *
 * The edges are durable in the children's records (`dependsOn`), so the index is rebuilt with the rest of the state.
 * A parent's state comes from its own revisions as the projection sees them, or — for a parent whose revisions passed
 * before any child named it (terminal parents are not in the queue model) — from a read of its record ({@link learn}).
 */
import { isTerminal, type JobStatus, type StoredJob } from '@gantry/contracts';

/** What is known of a parent: its status at a stream revision (`missing`: no record in the store). */
export interface ParentState {
  status: JobStatus | 'missing';
  revision: number;
  /**
   * The parent's trace context, kept once it ended (only then does it decide anything): the child's `job.release` or
   * `job.dependency_failed` span links to the parent's trace.
   */
  traceparent?: string;
  tracestate?: string;
}

/** A parent's state from one of its revisions (its trace context kept only when terminal). */
export function parentStateOf(s: StoredJob): ParentState {
  const r = s.record;
  const st: ParentState = { status: r.status, revision: s.revision };
  if (isTerminal(r.status)) {
    if (r.traceparent) st.traceparent = r.traceparent;
    if (r.tracestate) st.tracestate = r.tracestate;
  }
  return st;
}

export interface WaitingChild {
  parents: readonly string[];
  tenant: string;
  pool: string;
  /** Acceptance order (the first revision's stream sequence): children released together are written in it. */
  seq: number;
  /** When it started waiting (epoch ms): its last `job.waiting` revision. */
  since: number;
}

export type Verdict =
  | { kind: 'release' }
  | { kind: 'fail'; parentId: string; status: 'failed' | 'cancelled' | 'missing' }
  | { kind: 'wait' }
  /** Parents whose state is not known yet (read their records, then decide again). */
  | { kind: 'unknown'; parents: string[] };

/**
 * The rule, over the parents' current states: the first parent (in `dependsOn` order) that ended `failed` or
 * `cancelled` (or is missing) fails the child; every parent `completed` releases it; anything else waits (a parent
 * queued, running, retrying, scheduled or waiting itself — `retrying` is not an end).
 */
export function decide(parents: readonly string[], stateOf: (id: string) => ParentState | undefined): Verdict {
  const unknown: string[] = [];
  let allCompleted = true;
  for (const p of parents) {
    const st = stateOf(p);
    if (!st) {
      unknown.push(p);
      allCompleted = false;
      continue;
    }
    if (st.status === 'failed' || st.status === 'cancelled' || st.status === 'missing')
      return { kind: 'fail', parentId: p, status: st.status };
    if (st.status !== 'completed') allCompleted = false;
  }
  if (unknown.length > 0) return { kind: 'unknown', parents: unknown };
  return allCompleted ? { kind: 'release' } : { kind: 'wait' };
}

export class DependencyIndex {
  private readonly waiting = new Map<string, WaitingChild>();
  private readonly childrenOf = new Map<string, Set<string>>();
  private readonly parents = new Map<string, ParentState>();
  private readonly byTenant = new Map<string, number>();
  private readonly byPool = new Map<string, number>();

  /** Waiting jobs. */
  get size(): number {
    return this.waiting.size;
  }

  /** Parents with waiting children. */
  get parentCount(): number {
    return this.childrenOf.size;
  }

  get(childId: string): WaitingChild | undefined {
    return this.waiting.get(childId);
  }

  ids(): IterableIterator<string> {
    return this.waiting.keys();
  }

  childrenCount(parentId: string): number {
    return this.childrenOf.get(parentId)?.size ?? 0;
  }

  stateOf(parentId: string): ParentState | undefined {
    return this.parents.get(parentId);
  }

  /** Waiting jobs per tenant (tenants with none left out). */
  tenantCounts(): ReadonlyMap<string, number> {
    return this.byTenant;
  }

  /** Waiting jobs per pool (pools with none left out). */
  poolCounts(): ReadonlyMap<string, number> {
    return this.byPool;
  }

  /**
   * Applies one revision (in stream order). Returns the waiting children it may have made decidable: the job itself
   * when it (re)enters `waiting`, and the children of a parent that reached a terminal state.
   */
  apply(s: StoredJob): string[] {
    const r = s.record;
    const touched: string[] = [];
    const children = this.childrenOf.get(r.id);
    if (children) {
      this.learn(r.id, parentStateOf(s));
      if (isTerminal(r.status)) touched.push(...children);
    }
    if (r.status === 'waiting' && r.dependsOn && r.dependsOn.length > 0) {
      const known = this.waiting.get(r.id);
      const since = Date.parse(r.updatedAt);
      if (known) known.since = s.event.type === 'job.waiting' ? since : known.since;
      else
        this.add(r.id, {
          parents: [...new Set(r.dependsOn)],
          tenant: r.tenant,
          pool: r.pool,
          seq: r.createSeq ?? s.revision,
          since,
        });
      touched.push(r.id);
    } else if (this.waiting.has(r.id)) {
      this.remove(r.id);
    }
    return touched;
  }

  /**
   * Records a parent's state read from the store. Kept only while the parent has waiting children, and never over a
   * newer revision the projection already applied.
   */
  learn(parentId: string, st: ParentState): void {
    if (!this.childrenOf.has(parentId)) return;
    const known = this.parents.get(parentId);
    if (known && known.status !== 'missing' && st.status !== 'missing' && known.revision >= st.revision) return;
    if (known && known.status !== 'missing' && st.status === 'missing') return;
    this.parents.set(parentId, st);
  }

  /** Forgets what is known of a parent (a `missing` one is read again later). */
  forget(parentId: string): void {
    this.parents.delete(parentId);
  }

  private add(id: string, c: WaitingChild): void {
    this.waiting.set(id, c);
    for (const p of c.parents) {
      let set = this.childrenOf.get(p);
      if (!set) this.childrenOf.set(p, (set = new Set()));
      set.add(id);
    }
    bump(this.byTenant, c.tenant, 1);
    bump(this.byPool, c.pool, 1);
  }

  private remove(id: string): void {
    const c = this.waiting.get(id)!;
    this.waiting.delete(id);
    for (const p of c.parents) {
      const set = this.childrenOf.get(p);
      if (!set) continue;
      set.delete(id);
      if (set.size === 0) {
        this.childrenOf.delete(p);
        this.parents.delete(p);
      }
    }
    bump(this.byTenant, c.tenant, -1);
    bump(this.byPool, c.pool, -1);
  }
}

function bump(m: Map<string, number>, key: string, by: number): void {
  const n = (m.get(key) ?? 0) + by;
  if (n > 0) m.set(key, n);
  else m.delete(key);
}
