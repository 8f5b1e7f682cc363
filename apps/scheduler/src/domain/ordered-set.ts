/**
 * An ordered set of queued jobs keyed by their queue sequence (FIFO order within one priority level and tenant).
 *
 * It is a list of sorted chunks (at most {@link CHUNK} entries each) stored in typed arrays, so a queued job costs
 * about 80 bytes (its id string included) and operations stay cheap at a million entries:
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

class Chunk {
  n = 0;
  seqs: Float64Array;
  enq: Float64Array;
  gpuCount: Int16Array;
  gpuMem: Int32Array;
  gen: Int32Array;
  att: Int32Array;
  readonly ids: string[] = [];

  constructor(capacity = FIRST_CAPACITY) {
    this.seqs = new Float64Array(capacity);
    this.enq = new Float64Array(capacity);
    this.gpuCount = new Int16Array(capacity);
    this.gpuMem = new Int32Array(capacity);
    this.gen = new Int32Array(capacity);
    this.att = new Int32Array(capacity);
  }

  get capacity(): number {
    return this.seqs.length;
  }

  private grow(): void {
    const cap = Math.min(CHUNK, this.capacity * 2);
    const seqs = new Float64Array(cap);
    const enq = new Float64Array(cap);
    const gpuCount = new Int16Array(cap);
    const gpuMem = new Int32Array(cap);
    const gen = new Int32Array(cap);
    const att = new Int32Array(cap);
    seqs.set(this.seqs.subarray(0, this.n));
    enq.set(this.enq.subarray(0, this.n));
    gpuCount.set(this.gpuCount.subarray(0, this.n));
    gpuMem.set(this.gpuMem.subarray(0, this.n));
    gen.set(this.gen.subarray(0, this.n));
    att.set(this.att.subarray(0, this.n));
    this.seqs = seqs;
    this.enq = enq;
    this.gpuCount = gpuCount;
    this.gpuMem = gpuMem;
    this.gen = gen;
    this.att = att;
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
  insertAt(i: number, e: Entry, enqueuedAt: number): void {
    if (this.n === this.capacity) this.grow();
    if (i < this.n) {
      this.seqs.copyWithin(i + 1, i, this.n);
      this.enq.copyWithin(i + 1, i, this.n);
      this.gpuCount.copyWithin(i + 1, i, this.n);
      this.gpuMem.copyWithin(i + 1, i, this.n);
      this.gen.copyWithin(i + 1, i, this.n);
      this.att.copyWithin(i + 1, i, this.n);
    }
    this.seqs[i] = e.seq;
    this.enq[i] = enqueuedAt;
    this.gpuCount[i] = e.gpuCount;
    this.gpuMem[i] = e.gpuMemoryMb;
    this.gen[i] = e.generation;
    this.att[i] = e.attempts;
    this.ids.splice(i, 0, e.id);
    this.n++;
  }
  removeAt(i: number): void {
    this.seqs.copyWithin(i, i + 1, this.n);
    this.enq.copyWithin(i, i + 1, this.n);
    this.gpuCount.copyWithin(i, i + 1, this.n);
    this.gpuMem.copyWithin(i, i + 1, this.n);
    this.gen.copyWithin(i, i + 1, this.n);
    this.att.copyWithin(i, i + 1, this.n);
    this.ids.splice(i, 1);
    this.n--;
  }
  entry(i: number): Entry {
    return {
      seq: this.seqs[i]!,
      id: this.ids[i]!,
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
    const right = new Chunk(CHUNK);
    right.seqs.set(this.seqs.subarray(half, this.n));
    right.enq.set(this.enq.subarray(half, this.n));
    right.gpuCount.set(this.gpuCount.subarray(half, this.n));
    right.gpuMem.set(this.gpuMem.subarray(half, this.n));
    right.gen.set(this.gen.subarray(half, this.n));
    right.att.set(this.att.subarray(half, this.n));
    right.ids.push(...this.ids.splice(half, count));
    right.n = count;
    this.n = half;
    return right;
  }
}

export class OrderedSet {
  private chunks: Chunk[] = [];
  private count = 0;

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
      const c = new Chunk();
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
        const fresh = new Chunk();
        fresh.insertAt(0, e, enq);
        this.chunks.push(fresh);
        this.count++;
        return true;
      }
      const right = c.split();
      this.chunks.splice(ci + 1, 0, right);
      return this.insert(e);
    }
    c.insertAt(i, e, this.clampedEnq(ci, i, e.enqueuedAt));
    this.count++;
    return true;
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

  /** Bytes held by the typed arrays (for memory accounting in tests and the benchmark). */
  arrayBytes(): number {
    let b = 0;
    for (const c of this.chunks) b += c.capacity * 30;
    return b;
  }
}
