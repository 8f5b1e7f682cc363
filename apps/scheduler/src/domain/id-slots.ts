/**
 * Job ids ↔ small integer slots, compactly: ids of 26 ASCII characters (ULIDs) inline in a byte array, any other id in
 * a side map, an open-addressing hash from id to slot (linear probing, backward-shift removal, no tombstones). Unlike
 * {@link DueSet}'s dense entries, a slot is STABLE while its id is held (freed slots are reused), so other typed arrays
 * may refer to it: the dependency index keys its children, parents and edges by slot (`dependency-index.ts`).
 * About 26 + 4 (free-list link) + 6–11 (hash) bytes per id, against ~90–130 for a string key in a `Map`.
 */
import { hashString, ID_BYTES, inlineId, ODD } from './due-set';

const FIRST_CAPACITY = 64;
const MAX_LOAD = 0.7;
/** `link` of a live slot. */
const LIVE = -2;

export class IdSlots {
  private n = 0;
  /** Slots handed out at least once: [0, top). */
  private top = 0;
  private free = -1;
  private ids = new Uint8Array(FIRST_CAPACITY * ID_BYTES);
  /** LIVE, or the next free slot (-1: none). */
  private link = new Int32Array(FIRST_CAPACITY).fill(LIVE);
  private table = new Int32Array(128);
  private readonly odd = new Map<number, string>();

  get size(): number {
    return this.n;
  }

  /** Slots are below this (parallel arrays are at least this long). */
  get capacity(): number {
    return this.link.length;
  }

  find(id: string): number {
    const mask = this.table.length - 1;
    for (let i = hashString(id) & mask; ; i = (i + 1) & mask) {
      const v = this.table[i]!;
      if (v === 0) return -1;
      if (this.idEquals(v - 1, id)) return v - 1;
    }
  }

  /** A slot for an id not held yet (the caller checked with {@link find}). */
  add(id: string): number {
    if ((this.n + 1) / this.table.length > MAX_LOAD) this.rehash(this.table.length * 2);
    let slot: number;
    if (this.free >= 0) {
      slot = this.free;
      this.free = this.link[slot]!;
    } else {
      if (this.top === this.link.length) this.grow();
      slot = this.top++;
    }
    this.link[slot] = LIVE;
    this.writeId(slot, id);
    this.n++;
    this.tableInsert(slot, hashString(id));
    return slot;
  }

  remove(slot: number): void {
    this.tableRemove(slot);
    this.odd.delete(slot);
    this.link[slot] = this.free;
    this.free = slot;
    this.n--;
  }

  idOf(slot: number): string {
    const at = slot * ID_BYTES;
    if (this.ids[at] === ODD) return this.odd.get(slot)!;
    return String.fromCharCode(...this.ids.subarray(at, at + ID_BYTES));
  }

  /** The live slots, in slot order. */
  *slots(): IterableIterator<number> {
    for (let s = 0; s < this.top; s++) if (this.link[s] === LIVE) yield s;
  }

  /** Bytes held in typed arrays (for tests and the memory figures). */
  get arrayBytes(): number {
    return this.ids.byteLength + this.link.byteLength + this.table.byteLength;
  }

  private writeId(slot: number, id: string): void {
    const at = slot * ID_BYTES;
    if (!inlineId(id)) {
      this.ids[at] = ODD;
      this.odd.set(slot, id);
      return;
    }
    for (let k = 0; k < ID_BYTES; k++) this.ids[at + k] = id.charCodeAt(k);
  }

  private idEquals(slot: number, id: string): boolean {
    const at = slot * ID_BYTES;
    if (this.ids[at] === ODD) return this.odd.get(slot) === id;
    if (id.length !== ID_BYTES) return false;
    for (let k = 0; k < ID_BYTES; k++) if (this.ids[at + k] !== id.charCodeAt(k)) return false;
    return true;
  }

  private hashOf(slot: number): number {
    const at = slot * ID_BYTES;
    if (this.ids[at] === ODD) return hashString(this.odd.get(slot)!);
    let h = 0x811c9dc5;
    for (let k = 0; k < ID_BYTES; k++) h = Math.imul(h ^ this.ids[at + k]!, 0x01000193);
    return h >>> 0;
  }

  private tableInsert(slot: number, hash: number): void {
    const mask = this.table.length - 1;
    let i = hash & mask;
    while (this.table[i] !== 0) i = (i + 1) & mask;
    this.table[i] = slot + 1;
  }

  private tableRemove(slot: number): void {
    const mask = this.table.length - 1;
    let hole = this.hashOf(slot) & mask;
    while (this.table[hole] !== slot + 1) hole = (hole + 1) & mask;
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
    for (let s = 0; s < this.top; s++) if (this.link[s] === LIVE) this.tableInsert(s, this.hashOf(s));
  }

  private grow(): void {
    // ×1.5: less slack at a million ids than doubling.
    const cap = Math.ceil(this.link.length * 1.5);
    const ids = new Uint8Array(cap * ID_BYTES);
    ids.set(this.ids);
    const link = new Int32Array(cap).fill(LIVE);
    link.set(this.link);
    this.ids = ids;
    this.link = link;
  }
}

/** `a` if it holds `n` elements, else a copy ×1.5 (at least `n`) with `a`'s elements first and `fill` after. */
export function ensureLength<T extends Int32Array | Float64Array | Uint8Array>(a: T, n: number, fill = 0): T {
  if (a.length >= n) return a;
  const b = new (a.constructor as new (n: number) => T)(Math.max(n, Math.ceil(a.length * 1.5)));
  b.set(a);
  if (fill !== 0) b.fill(fill, a.length);
  return b;
}
