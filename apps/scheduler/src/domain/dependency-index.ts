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
import { isTerminal, JOB_STATUSES, type JobStatus, type StoredJob } from '@gantry/contracts';
import { ensureLength, IdSlots } from './id-slots';

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

/** Status codes of what is known of a parent (0: nothing). */
const STATUS_CODES: readonly (JobStatus | 'missing')[] = [...JOB_STATUSES, 'missing'];
const UNKNOWN = 0;
const NONE = -1;

/**
 * The index in typed arrays (issue 17: a million waiting jobs must not cost the scheduler several hundred bytes
 * each): children and parents are {@link IdSlots} (ids inline, stable slots), each child's fields are columns indexed
 * by its slot (acceptance sequence, waiting since, interned tenant and pool), and every child → parent edge is an
 * entry of an edge pool on two intrusive lists — the parent's children (doubly linked: a child leaves in O(1)) and the
 * child's parents (in `dependsOn` order). A parent is held while it has waiting children, with its last known state
 * (status code and revision; its trace context only once it ended). A parent's terminal revision lists its children in
 * O(children), no scan. Measured: docs/performance.md ("Waiting jobs").
 */
export class DependencyIndex {
  private readonly children = new IdSlots();
  private cSeq = new Float64Array(0);
  private cSince = new Float64Array(0);
  private cTenant = new Int32Array(0);
  private cPool = new Int32Array(0);
  /** The child's first edge (its first parent). */
  private cEdge = new Int32Array(0);

  private readonly parents = new IdSlots();
  /**
   * The parent's first and last edges (its children in the order they started waiting: a parent's children are
   * evaluated, and so released, in acceptance order), NONE when it has none.
   */
  private pHead = new Int32Array(0);
  private pTail = new Int32Array(0);
  private pCount = new Int32Array(0);
  private pStatus = new Uint8Array(0);
  private pRevision = new Float64Array(0);
  /** Trace contexts of parents that ended (few at a time: their children are decided at once). */
  private readonly pTrace = new Map<number, { traceparent?: string; tracestate?: string }>();

  private eChild = new Int32Array(0);
  private eParent = new Int32Array(0);
  /** Next / previous edge in the parent's list of children. */
  private eNext = new Int32Array(0);
  private ePrev = new Int32Array(0);
  /** Next edge of the same child (its next parent); also the free list's link. */
  private eSibling = new Int32Array(0);
  private edgeTop = 0;
  private edgeFree = NONE;

  /** Tenants and pools, interned. */
  private readonly codes = new Map<string, number>();
  private readonly names: string[] = [];
  private readonly byTenant = new Map<string, number>();
  private readonly byPool = new Map<string, number>();

  /** Waiting jobs. */
  get size(): number {
    return this.children.size;
  }

  /** Parents with waiting children. */
  get parentCount(): number {
    return this.parents.size;
  }

  get(childId: string): WaitingChild | undefined {
    const c = this.children.find(childId);
    if (c < 0) return undefined;
    const parents: string[] = [];
    for (let e = this.cEdge[c]!; e !== NONE; e = this.eSibling[e]!) parents.push(this.parents.idOf(this.eParent[e]!));
    return {
      parents,
      tenant: this.names[this.cTenant[c]!]!,
      pool: this.names[this.cPool[c]!]!,
      seq: this.cSeq[c]!,
      since: this.cSince[c]!,
    };
  }

  *ids(): IterableIterator<string> {
    for (const c of this.children.slots()) yield this.children.idOf(c);
  }

  childrenCount(parentId: string): number {
    const p = this.parents.find(parentId);
    return p < 0 ? 0 : this.pCount[p]!;
  }

  stateOf(parentId: string): ParentState | undefined {
    const p = this.parents.find(parentId);
    if (p < 0 || this.pStatus[p] === UNKNOWN) return undefined;
    const st: ParentState = { status: STATUS_CODES[this.pStatus[p]! - 1]!, revision: this.pRevision[p]! };
    const t = this.pTrace.get(p);
    if (t?.traceparent) st.traceparent = t.traceparent;
    if (t?.tracestate) st.tracestate = t.tracestate;
    return st;
  }

  /** Waiting jobs per tenant (tenants with none left out). */
  tenantCounts(): ReadonlyMap<string, number> {
    return this.byTenant;
  }

  /** Waiting jobs per pool (pools with none left out). */
  poolCounts(): ReadonlyMap<string, number> {
    return this.byPool;
  }

  /** Bytes held in typed arrays (for tests and the memory figures). */
  get arrayBytes(): number {
    const arrays: { byteLength: number }[] = [
      ...[this.cSeq, this.cSince, this.cTenant, this.cPool, this.cEdge],
      ...[this.pHead, this.pTail, this.pCount, this.pStatus, this.pRevision],
      ...[this.eChild, this.eParent, this.eNext, this.ePrev, this.eSibling],
    ];
    return this.children.arrayBytes + this.parents.arrayBytes + arrays.reduce((n, a) => n + a.byteLength, 0);
  }

  /**
   * Applies one revision (in stream order). Returns the waiting children it may have made decidable: the job itself
   * when it (re)enters `waiting`, and the children of a parent that reached a terminal state.
   */
  apply(s: StoredJob): string[] {
    const r = s.record;
    const touched: string[] = [];
    const p = this.parents.find(r.id);
    if (p >= 0) {
      this.learnSlot(p, parentStateOf(s));
      if (isTerminal(r.status))
        for (let e = this.pHead[p]!; e !== NONE; e = this.eNext[e]!) touched.push(this.children.idOf(this.eChild[e]!));
    }
    const c = this.children.find(r.id);
    if (r.status === 'waiting' && r.dependsOn && r.dependsOn.length > 0) {
      const since = Date.parse(r.updatedAt);
      if (c >= 0) {
        if (s.event.type === 'job.waiting') this.cSince[c] = since;
      } else this.add(r.id, [...new Set(r.dependsOn)], r.tenant, r.pool, r.createSeq ?? s.revision, since);
      touched.push(r.id);
    } else if (c >= 0) {
      this.remove(c);
    }
    return touched;
  }

  /**
   * Records a parent's state read from the store. Kept only while the parent has waiting children, and never over a
   * newer revision the projection already applied.
   */
  learn(parentId: string, st: ParentState): void {
    const p = this.parents.find(parentId);
    if (p >= 0) this.learnSlot(p, st);
  }

  /** Forgets what is known of a parent (a `missing` one is read again later). */
  forget(parentId: string): void {
    const p = this.parents.find(parentId);
    if (p < 0) return;
    this.pStatus[p] = UNKNOWN;
    this.pTrace.delete(p);
  }

  private learnSlot(p: number, st: ParentState): void {
    const code = this.pStatus[p]!;
    if (code !== UNKNOWN) {
      const knownMissing = STATUS_CODES[code - 1] === 'missing';
      if (!knownMissing && st.status !== 'missing' && this.pRevision[p]! >= st.revision) return;
      if (!knownMissing && st.status === 'missing') return;
    }
    this.pStatus[p] = STATUS_CODES.indexOf(st.status) + 1;
    this.pRevision[p] = st.revision;
    if (st.traceparent || st.tracestate)
      this.pTrace.set(p, {
        ...(st.traceparent ? { traceparent: st.traceparent } : {}),
        ...(st.tracestate ? { tracestate: st.tracestate } : {}),
      });
    else this.pTrace.delete(p);
  }

  private code(name: string): number {
    let k = this.codes.get(name);
    if (k === undefined) {
      k = this.names.length;
      this.names.push(name);
      this.codes.set(name, k);
    }
    return k;
  }

  private add(id: string, parents: readonly string[], tenant: string, pool: string, seq: number, since: number): void {
    const c = this.children.add(id);
    const n = this.children.capacity;
    this.cSeq = ensureLength(this.cSeq, n);
    this.cSince = ensureLength(this.cSince, n);
    this.cTenant = ensureLength(this.cTenant, n);
    this.cPool = ensureLength(this.cPool, n);
    this.cEdge = ensureLength(this.cEdge, n);
    this.cSeq[c] = seq;
    this.cSince[c] = since;
    this.cTenant[c] = this.code(tenant);
    this.cPool[c] = this.code(pool);
    this.cEdge[c] = NONE;
    let last = NONE;
    for (const parentId of parents) {
      const p = this.parentSlot(parentId);
      const e = this.newEdge();
      this.eChild[e] = c;
      this.eParent[e] = p;
      // Last in the parent's list.
      const tail = this.pTail[p]!;
      this.ePrev[e] = tail;
      this.eNext[e] = NONE;
      if (tail !== NONE) this.eNext[tail] = e;
      else this.pHead[p] = e;
      this.pTail[p] = e;
      this.pCount[p]!++;
      // Last in the child's (dependsOn order).
      this.eSibling[e] = NONE;
      if (last === NONE) this.cEdge[c] = e;
      else this.eSibling[last] = e;
      last = e;
    }
    bump(this.byTenant, tenant, 1);
    bump(this.byPool, pool, 1);
  }

  private remove(c: number): void {
    for (let e = this.cEdge[c]!; e !== NONE;) {
      const p = this.eParent[e]!;
      const next = this.eNext[e]!;
      const prev = this.ePrev[e]!;
      if (prev !== NONE) this.eNext[prev] = next;
      else this.pHead[p] = next;
      if (next !== NONE) this.ePrev[next] = prev;
      else this.pTail[p] = prev;
      if (--this.pCount[p]! === 0) {
        this.parents.remove(p);
        this.pTrace.delete(p);
      }
      const sibling = this.eSibling[e]!;
      this.eSibling[e] = this.edgeFree;
      this.edgeFree = e;
      e = sibling;
    }
    const tenant = this.names[this.cTenant[c]!]!;
    const pool = this.names[this.cPool[c]!]!;
    this.children.remove(c);
    bump(this.byTenant, tenant, -1);
    bump(this.byPool, pool, -1);
  }

  private parentSlot(parentId: string): number {
    let p = this.parents.find(parentId);
    if (p >= 0) return p;
    p = this.parents.add(parentId);
    const n = this.parents.capacity;
    this.pHead = ensureLength(this.pHead, n);
    this.pTail = ensureLength(this.pTail, n);
    this.pCount = ensureLength(this.pCount, n);
    this.pStatus = ensureLength(this.pStatus, n);
    this.pRevision = ensureLength(this.pRevision, n);
    this.pHead[p] = NONE;
    this.pTail[p] = NONE;
    this.pCount[p] = 0;
    this.pStatus[p] = UNKNOWN;
    this.pRevision[p] = 0;
    return p;
  }

  private newEdge(): number {
    if (this.edgeFree !== NONE) {
      const e = this.edgeFree;
      this.edgeFree = this.eSibling[e]!;
      return e;
    }
    const e = this.edgeTop++;
    if (e >= this.eChild.length) {
      const n = Math.max(64, e + 1);
      this.eChild = ensureLength(this.eChild, n);
      this.eParent = ensureLength(this.eParent, n);
      this.eNext = ensureLength(this.eNext, n);
      this.ePrev = ensureLength(this.ePrev, n);
      this.eSibling = ensureLength(this.eSibling, n);
    }
    return e;
  }
}

function bump(m: Map<string, number>, key: string, by: number): void {
  const n = (m.get(key) ?? 0) + by;
  if (n > 0) m.set(key, n);
  else m.delete(key);
}
