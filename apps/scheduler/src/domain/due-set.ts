/**
 * The due times of the jobs waiting for their time (`scheduled` jobs), kept as compactly as the queue itself: a
 * min-heap by due time with exact removal, over entries held in typed arrays, and an open-addressing hash from id to
 * entry. About 50 bytes per job (due time 8, inline id 26, heap slot and position 8, hash slots 6–11) plus growth
 * slack — against ~240 bytes for a `Map<string, number>` and a heap of `[time, id]` pairs (measured: see
 * docs/architecture.md, "Timers"), so a million scheduled jobs cost the scheduler no more than a million queued ones.
 *
 * Ids of 26 ASCII characters (ULIDs, what the gateway gives every job) are stored inline; any other id is kept in a
 * side map. No library offers this (a keyed heap over typed arrays); the order index does the same for queued jobs.
 */

export const ID_BYTES = 26;
/** A first id byte of 0 means "see the side map". */
export const ODD = 0;
const FIRST_CAPACITY = 64;
/** The hash table is rebuilt larger when it is fuller than this. */
const MAX_LOAD = 0.7;

export function inlineId(id: string): boolean {
  if (id.length !== ID_BYTES) return false;
  for (let i = 0; i < ID_BYTES; i++) {
    const c = id.charCodeAt(i);
    if (c === ODD || c > 0x7f) return false;
  }
  return true;
}

/** FNV-1a over the characters (the same over an inline id's bytes). */
export function hashString(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

export class DueSet {
  private n = 0;
  private due = new Float64Array(FIRST_CAPACITY);
  private ids = new Uint8Array(FIRST_CAPACITY * ID_BYTES);
  /** Entry → its index in the heap. */
  private pos = new Int32Array(FIRST_CAPACITY);
  /** Heap index → entry; heap-ordered by `due`. */
  private heap = new Int32Array(FIRST_CAPACITY);
  /** Open addressing, linear probing: entry + 1, 0 = empty. */
  private table = new Int32Array(128);
  /** Ids that are not inline, by entry. */
  private readonly odd = new Map<number, string>();

  get size(): number {
    return this.n;
  }

  has(id: string): boolean {
    return this.find(id) >= 0;
  }

  get(id: string): number | undefined {
    const e = this.find(id);
    return e < 0 ? undefined : this.due[e];
  }

  /** The earliest due time. */
  peek(): number | undefined {
    return this.n > 0 ? this.due[this.heap[0]!] : undefined;
  }

  /** Adds a job or moves it to a new due time. */
  set(id: string, at: number): void {
    const e = this.find(id);
    if (e >= 0) {
      const before = this.due[e]!;
      this.due[e] = at;
      if (at < before) this.siftUp(this.pos[e]!);
      else this.siftDown(this.pos[e]!, this.n);
      return;
    }
    if (this.n === this.due.length) this.grow();
    if ((this.n + 1) / this.table.length > MAX_LOAD) this.rehash(this.table.length * 2);
    const entry = this.n++;
    this.writeId(entry, id);
    this.due[entry] = at;
    this.heap[entry] = entry;
    this.pos[entry] = entry;
    this.siftUp(entry);
    this.tableInsert(entry, hashString(id));
  }

  delete(id: string): boolean {
    const e = this.find(id);
    if (e < 0) return false;
    this.tableRemove(e);
    // Out of the heap: its last element takes the place.
    const last = this.n - 1;
    const hi = this.pos[e]!;
    const moved = this.heap[last]!;
    this.heap[hi] = moved;
    this.pos[moved] = hi;
    if (hi < last) {
      this.siftDown(hi, last);
      this.siftUp(this.pos[moved]!);
    }
    // Out of the entries: the last entry moves into its slot (keeping them dense).
    if (e !== last) {
      // Its hash slot is found from its id, so before the id moves.
      this.table[this.slotOf(last)] = e + 1;
      this.due[e] = this.due[last]!;
      this.ids.copyWithin(e * ID_BYTES, last * ID_BYTES, (last + 1) * ID_BYTES);
      this.pos[e] = this.pos[last]!;
      this.heap[this.pos[e]!] = e;
      const oddId = this.odd.get(last);
      if (oddId !== undefined) {
        this.odd.delete(last);
        this.odd.set(e, oddId);
      } else this.odd.delete(e);
    } else this.odd.delete(e);
    this.n = last;
    return true;
  }

  /**
   * The ids due at or before `now`, each moved to `until` (after `now`): the caller releases them, and the projection
   * deletes each one when the release lands; one whose release did not land comes up again at `until`.
   */
  takeDue(now: number, until: number): string[] {
    const out: string[] = [];
    while (this.n > 0) {
      const e = this.heap[0]!;
      if (this.due[e]! > now) break;
      out.push(this.idOf(e));
      this.due[e] = until;
      this.siftDown(0, this.n);
    }
    return out;
  }

  /** Every (id, due time), in no particular order. */
  *[Symbol.iterator](): IterableIterator<[string, number]> {
    for (let e = 0; e < this.n; e++) yield [this.idOf(e), this.due[e]!];
  }

  /** Bytes held in typed arrays (for tests and the memory figures). */
  get arrayBytes(): number {
    return (
      this.due.byteLength + this.ids.byteLength + this.pos.byteLength + this.heap.byteLength + this.table.byteLength
    );
  }

  private idOf(e: number): string {
    const at = e * ID_BYTES;
    if (this.ids[at] === ODD) return this.odd.get(e)!;
    return String.fromCharCode(...this.ids.subarray(at, at + ID_BYTES));
  }

  private writeId(e: number, id: string): void {
    const at = e * ID_BYTES;
    if (!inlineId(id)) {
      this.ids[at] = ODD;
      this.odd.set(e, id);
      return;
    }
    this.odd.delete(e);
    for (let k = 0; k < ID_BYTES; k++) this.ids[at + k] = id.charCodeAt(k);
  }

  private idEquals(e: number, id: string): boolean {
    const at = e * ID_BYTES;
    if (this.ids[at] === ODD) return this.odd.get(e) === id;
    if (id.length !== ID_BYTES) return false;
    for (let k = 0; k < ID_BYTES; k++) if (this.ids[at + k] !== id.charCodeAt(k)) return false;
    return true;
  }

  private hashOf(e: number): number {
    const at = e * ID_BYTES;
    if (this.ids[at] === ODD) return hashString(this.odd.get(e)!);
    let h = 0x811c9dc5;
    for (let k = 0; k < ID_BYTES; k++) h = Math.imul(h ^ this.ids[at + k]!, 0x01000193);
    return h >>> 0;
  }

  private find(id: string): number {
    const mask = this.table.length - 1;
    for (let i = hashString(id) & mask; ; i = (i + 1) & mask) {
      const v = this.table[i]!;
      if (v === 0) return -1;
      if (this.idEquals(v - 1, id)) return v - 1;
    }
  }

  private tableInsert(e: number, hash: number): void {
    const mask = this.table.length - 1;
    let i = hash & mask;
    while (this.table[i] !== 0) i = (i + 1) & mask;
    this.table[i] = e + 1;
  }

  private slotOf(e: number): number {
    const mask = this.table.length - 1;
    let i = this.hashOf(e) & mask;
    while (this.table[i] !== e + 1) i = (i + 1) & mask;
    return i;
  }

  /** Linear-probing removal with backward shift (no tombstones). */
  private tableRemove(e: number): void {
    const mask = this.table.length - 1;
    let hole = this.slotOf(e);
    this.table[hole] = 0;
    for (let i = (hole + 1) & mask; this.table[i] !== 0; i = (i + 1) & mask) {
      const home = this.hashOf(this.table[i]! - 1) & mask;
      // Move it back into the hole unless its home lies cyclically in (hole, i].
      const stays = hole < i ? home > hole && home <= i : home > hole || home <= i;
      if (!stays) {
        this.table[hole] = this.table[i]!;
        this.table[i] = 0;
        hole = i;
      }
    }
  }

  private rehash(size: number): void {
    this.table = new Int32Array(size);
    for (let e = 0; e < this.n; e++) this.tableInsert(e, this.hashOf(e));
  }

  private grow(): void {
    // ×1.5: less slack at a million entries than doubling.
    const cap = Math.ceil(this.due.length * 1.5);
    const due = new Float64Array(cap);
    due.set(this.due);
    const ids = new Uint8Array(cap * ID_BYTES);
    ids.set(this.ids);
    const pos = new Int32Array(cap);
    pos.set(this.pos);
    const heap = new Int32Array(cap);
    heap.set(this.heap);
    this.due = due;
    this.ids = ids;
    this.pos = pos;
    this.heap = heap;
  }

  private siftUp(start: number): void {
    let i = start;
    const e = this.heap[i]!;
    const at = this.due[e]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const pe = this.heap[p]!;
      if (this.due[pe]! <= at) break;
      this.heap[i] = pe;
      this.pos[pe] = i;
      i = p;
    }
    this.heap[i] = e;
    this.pos[e] = i;
  }

  private siftDown(start: number, size: number): void {
    let i = start;
    const e = this.heap[i]!;
    const at = this.due[e]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= size) break;
      const r = l + 1;
      const c = r < size && this.due[this.heap[r]!]! < this.due[this.heap[l]!]! ? r : l;
      const ce = this.heap[c]!;
      if (this.due[ce]! >= at) break;
      this.heap[i] = ce;
      this.pos[ce] = i;
      i = c;
    }
    this.heap[i] = e;
    this.pos[e] = i;
  }
}
