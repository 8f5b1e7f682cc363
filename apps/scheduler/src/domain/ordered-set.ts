/**
 * An ordered set of queued jobs keyed by their queue sequence (FIFO order within one priority level and tenant).
 *
 * It is a list of sorted chunks (at most {@link CHUNK} entries each) stored in typed arrays, so a queued job costs
 * about 60 bytes (its id included, see {@link ENTRY_BYTES}) and operations stay cheap at a million entries:
 *   - append at the tail (the common case) and pop at the head: O(1) amortised
 *   - insert/remove in the middle (retries, reprioritizing, cancels): O(log c + CHUNK), c = number of chunks
 *   - rank (how many entries precede a key): O(c) additions over chunk sizes (c ≈ n / 512)
 * Written by hand rather than taken from a library: the well-kept sorted containers for JS (e.g. functional-red-black-
 * tree, js-sdsl) allocate one object per entry, which is 3–5× the memory budget of invariant 5.
 *
 * Chunks start small and grow by doubling, so a set with a handful of entries (one tenant at one level) costs a few
 * hundred bytes, not a full chunk.
 *
 * The aging clock (`enqueuedAt`) is kept non-decreasing along the queue sequence: an entry's value is clamped between
 * its neighbours' on insert. Clocks of different gateways can disagree by a few milliseconds, and the order index
 * relies on "older in FIFO order = at least as promoted" (see order-index.ts).
 */

export const CHUNK = 512;
const FIRST_CAPACITY = 8;
/**
 * Ids are kept inline as bytes when they are 26 ASCII characters (a ULID, which is what the gateway gives every job):
 * 26 bytes instead of a string object (~48 bytes) plus its pointer. Any other id goes to a side map by seq.
 */
const ID_BYTES = 26;
const ODD_ID = 0;
/** Bytes per entry held in typed arrays (seq, enqueuedAt, gpu count and memory, generation, attempts, id). */
export const ENTRY_BYTES = 8 + 8 + 2 + 4 + 4 + 4 + ID_BYTES;

function inlineId(id: string): boolean {
  if (id.length !== ID_BYTES) return false;
  for (let i = 0; i < ID_BYTES; i++) {
    const c = id.charCodeAt(i);
    if (c <= ODD_ID || c > 0x7f) return false;
  }
  return true;
}

export interface Entry {
  /** Queue sequence: the FIFO key. */
  seq: number;
  id: string;
  /** Epoch ms when the job took its place (the aging clock). */
  enqueuedAt: number;
  /** GPUs requested: -1 = unspecified (any slot), 0 = none, n = n GPUs. */
  gpuCount: number;
  /** Memory to reserve on each GPU, in MB. */
  gpuMemoryMb: number;
  /** The record's generation and attempts when it was queued (a dispatch names the attempt to start). */
  generation: number;
  attempts: number;
}

/**
 * One sorted run of entries. All columns live in a single ArrayBuffer (one allocation per chunk, laid out widest
 * first so every view is aligned), so a million entries are ~2,000 allocations rather than ~14,000.
 */
class Chunk {
  n = 0;
  seqs!: Float64Array;
  enq!: Float64Array;
  gen!: Int32Array;
  att!: Int32Array;
  gpuMem!: Int32Array;
  gpuCount!: Int16Array;
  /**
   * ID_BYTES per entry; a first byte of ODD_ID means "see the set's side map". A Buffer view (a Uint8Array) for its
   * native Latin-1 decode: an id read back with `String.fromCharCode(...subarray)` was ≈ 0.65 µs, ≈ 2 % of the
   * scheduler's CPU per job; `toString('latin1')` ≈ 0.06.
   */
  ids!: Buffer;

  constructor(
    private readonly odd: Map<number, string>,
    capacity = FIRST_CAPACITY,
  ) {
    this.allocate(capacity);
  }

  get capacity(): number {
    return this.seqs.length;
  }

  private allocate(cap: number): void {
    const buf = new ArrayBuffer(cap * ENTRY_BYTES);
    let at = 0;
    const next = (bytes: number) => {
      const o = at;
      at += cap * bytes;
      return o;
    };
    this.seqs = new Float64Array(buf, next(8), cap);
    this.enq = new Float64Array(buf, next(8), cap);
    this.gen = new Int32Array(buf, next(4), cap);
    this.att = new Int32Array(buf, next(4), cap);
    this.gpuMem = new Int32Array(buf, next(4), cap);
    this.gpuCount = new Int16Array(buf, next(2), cap);
    this.ids = Buffer.from(buf, next(ID_BYTES), cap * ID_BYTES);
  }

  private grow(): void {
    const old = {
      seqs: this.seqs,
      enq: this.enq,
      gen: this.gen,
      att: this.att,
      gpuMem: this.gpuMem,
      gpuCount: this.gpuCount,
      ids: this.ids,
    };
    this.allocate(Math.min(CHUNK, this.capacity * 2));
    this.seqs.set(old.seqs.subarray(0, this.n));
    this.enq.set(old.enq.subarray(0, this.n));
    this.gen.set(old.gen.subarray(0, this.n));
    this.att.set(old.att.subarray(0, this.n));
    this.gpuMem.set(old.gpuMem.subarray(0, this.n));
    this.gpuCount.set(old.gpuCount.subarray(0, this.n));
    this.ids.set(old.ids.subarray(0, this.n * ID_BYTES));
  }

  id(i: number): string {
    const at = i * ID_BYTES;
    if (this.ids[at] === ODD_ID) return this.odd.get(this.seqs[i]!)!;
    return this.ids.toString('latin1', at, at + ID_BYTES);
  }

  private writeId(i: number, id: string): void {
    const at = i * ID_BYTES;
    if (!inlineId(id)) {
      this.ids[at] = ODD_ID;
      return;
    }
    for (let k = 0; k < ID_BYTES; k++) this.ids[at + k] = id.charCodeAt(k);
  }

  first(): number {
    return this.seqs[0]!;
  }
  last(): number {
    return this.seqs[this.n - 1]!;
  }
  /** Index of the first entry with seq >= key. */
  lowerBound(key: number): number {
    let lo = 0;
    let hi = this.n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.seqs[mid]! < key) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
  /** Moves entries [from, n) by `by` places (±1), in every column. */
  private shift(from: number, by: 1 | -1): void {
    const to = from + by;
    this.seqs.copyWithin(to, from, this.n);
    this.enq.copyWithin(to, from, this.n);
    this.gen.copyWithin(to, from, this.n);
    this.att.copyWithin(to, from, this.n);
    this.gpuMem.copyWithin(to, from, this.n);
    this.gpuCount.copyWithin(to, from, this.n);
    this.ids.copyWithin(to * ID_BYTES, from * ID_BYTES, this.n * ID_BYTES);
  }
  insertAt(i: number, e: Entry, enqueuedAt: number): void {
    if (this.n === this.capacity) this.grow();
    if (i < this.n) this.shift(i, 1);
    this.seqs[i] = e.seq;
    this.enq[i] = enqueuedAt;
    this.gen[i] = e.generation;
    this.att[i] = e.attempts;
    this.gpuMem[i] = e.gpuMemoryMb;
    this.gpuCount[i] = e.gpuCount;
    this.writeId(i, e.id);
    this.n++;
  }
  removeAt(i: number): void {
    if (i + 1 < this.n) this.shift(i + 1, -1);
    this.n--;
  }
  entry(i: number): Entry {
    return {
      seq: this.seqs[i]!,
      id: this.id(i),
      enqueuedAt: this.enq[i]!,
      gpuCount: this.gpuCount[i]!,
      gpuMemoryMb: this.gpuMem[i]!,
      generation: this.gen[i]!,
      attempts: this.att[i]!,
    };
  }
  /** Moves the upper half into a new chunk. */
  split(): Chunk {
    const half = this.n >>> 1;
    const count = this.n - half;
    const right = new Chunk(this.odd, CHUNK);
    right.seqs.set(this.seqs.subarray(half, this.n));
    right.enq.set(this.enq.subarray(half, this.n));
    right.gen.set(this.gen.subarray(half, this.n));
    right.att.set(this.att.subarray(half, this.n));
    right.gpuMem.set(this.gpuMem.subarray(half, this.n));
    right.gpuCount.set(this.gpuCount.subarray(half, this.n));
    right.ids.set(this.ids.subarray(half * ID_BYTES, this.n * ID_BYTES));
    right.n = count;
    this.n = half;
    return right;
  }
}

export class OrderedSet {
  private chunks: Chunk[] = [];
  private count = 0;
  /** Ids that are not stored inline, by seq. */
  private readonly odd = new Map<number, string>();

  get size(): number {
    return this.count;
  }

  /** Index of the chunk that holds (or would hold) `seq`. */
  private chunkFor(seq: number): number {
    const cs = this.chunks;
    if (cs.length === 0) return -1;
    if (seq >= cs[cs.length - 1]!.first()) return cs.length - 1;
    let lo = 0;
    let hi = cs.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (cs[mid]!.first() <= seq) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** The aging clock an entry gets at (chunk ci, index i): clamped between its neighbours' (monotone in seq). */
  private clampedEnq(ci: number, i: number, enqueuedAt: number): number {
    const c = this.chunks[ci]!;
    let lo = -Infinity;
    let hi = Infinity;
    if (i > 0) lo = c.enq[i - 1]!;
    else if (ci > 0) {
      const p = this.chunks[ci - 1]!;
      lo = p.enq[p.n - 1]!;
    }
    if (i < c.n) hi = c.enq[i]!;
    else if (ci + 1 < this.chunks.length) hi = this.chunks[ci + 1]!.enq[0]!;
    return Math.max(lo, Math.min(enqueuedAt, hi));
  }

  /** Adds an entry; returns false when the seq is already present. */
  insert(e: Entry): boolean {
    if (this.chunks.length === 0) {
      const c = new Chunk(this.odd);
      this.remember(e);
      c.insertAt(0, e, e.enqueuedAt);
      this.chunks.push(c);
      this.count++;
      return true;
    }
    const ci = this.chunkFor(e.seq);
    const c = this.chunks[ci]!;
    const i = c.lowerBound(e.seq);
    if (i < c.n && c.seqs[i] === e.seq) return false;
    if (c.n === CHUNK) {
      // Appending past a full tail chunk starts a new one instead of splitting (the common FIFO case).
      if (ci === this.chunks.length - 1 && i === c.n) {
        const enq = this.clampedEnq(ci, i, e.enqueuedAt);
        // The set is big already: start the new chunk at full size instead of growing it (no garbage to collect).
        const fresh = new Chunk(this.odd, CHUNK);
        this.remember(e);
        fresh.insertAt(0, e, enq);
        this.chunks.push(fresh);
        this.count++;
        return true;
      }
      const right = c.split();
      this.chunks.splice(ci + 1, 0, right);
      return this.insert(e);
    }
    this.remember(e);
    c.insertAt(i, e, this.clampedEnq(ci, i, e.enqueuedAt));
    this.count++;
    return true;
  }

  private remember(e: Entry): void {
    if (!inlineId(e.id)) this.odd.set(e.seq, e.id);
  }

  private locate(seq: number): { c: Chunk; ci: number; i: number } | undefined {
    const ci = this.chunkFor(seq);
    if (ci < 0) return undefined;
    const c = this.chunks[ci]!;
    const i = c.lowerBound(seq);
    return i < c.n && c.seqs[i] === seq ? { c, ci, i } : undefined;
  }

  /** Removes the entry with this seq; returns it, or undefined when absent. */
  remove(seq: number): Entry | undefined {
    const at = this.locate(seq);
    if (!at) return undefined;
    const e = at.c.entry(at.i);
    at.c.removeAt(at.i);
    this.odd.delete(seq);
    this.count--;
    if (at.c.n === 0) this.chunks.splice(at.ci, 1);
    else if (at.ci > 0 && at.c.n + this.chunks[at.ci - 1]!.n <= CHUNK / 2) this.merge(at.ci - 1);
    return e;
  }

  /** Folds chunk ci+1 into chunk ci (keeps a set that was drained from the middle from staying sparse). */
  private merge(ci: number): void {
    const left = this.chunks[ci]!;
    const right = this.chunks[ci + 1]!;
    for (let i = 0; i < right.n; i++) left.insertAt(left.n, right.entry(i), right.enq[i]!);
    this.chunks.splice(ci + 1, 1);
  }

  has(seq: number): boolean {
    return this.locate(seq) !== undefined;
  }

  get(seq: number): Entry | undefined {
    const at = this.locate(seq);
    return at ? at.c.entry(at.i) : undefined;
  }

  first(): Entry | undefined {
    const c = this.chunks[0];
    return c ? c.entry(0) : undefined;
  }

  /** The head's seq and GPU count without building the entry (the dispatcher ranks every tenant's head). */
  firstSeq(): number | undefined {
    return this.chunks[0]?.seqs[0];
  }

  firstGpuCount(): number {
    return this.chunks[0]?.gpuCount[0] ?? 0;
  }

  /** Entries in order (for reprioritizing, clearing and tests). */
  *entries(): IterableIterator<Entry> {
    for (const c of this.chunks) for (let i = 0; i < c.n; i++) yield c.entry(i);
  }

  /** Number of entries with a seq smaller than `seq`. */
  rank(seq: number): number {
    let r = 0;
    for (const c of this.chunks) {
      if (c.last() < seq) {
        r += c.n;
        continue;
      }
      return r + c.lowerBound(seq);
    }
    return r;
  }

  /**
   * Number of leading entries for which `pred` holds, given that `pred` holds for a prefix of the set and fails for
   * the rest (monotone). Checks each chunk's last entry, then binary-searches inside the one where it turns.
   */
  prefixWhile(pred: (seq: number, enqueuedAt: number) => boolean): number {
    let r = 0;
    for (const c of this.chunks) {
      if (pred(c.last(), c.enq[c.n - 1]!)) {
        r += c.n;
        continue;
      }
      let lo = 0;
      let hi = c.n;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (pred(c.seqs[mid]!, c.enq[mid]!)) lo = mid + 1;
        else hi = mid;
      }
      return r + lo;
    }
    return r;
  }

  /** The first `limit` entries at or after position `from`. */
  slice(from: number, limit: number): Entry[] {
    const out: Entry[] = [];
    let skip = from;
    for (const c of this.chunks) {
      if (skip >= c.n) {
        skip -= c.n;
        continue;
      }
      for (let i = skip; i < c.n && out.length < limit; i++) out.push(c.entry(i));
      skip = 0;
      if (out.length >= limit) break;
    }
    return out;
  }

  /** Bytes held by the typed arrays (for memory accounting in tests). */
  arrayBytes(): number {
    let b = 0;
    for (const c of this.chunks) b += c.capacity * ENTRY_BYTES;
    return b;
  }
}
