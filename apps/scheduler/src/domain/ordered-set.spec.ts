import fc from 'fast-check';
import { newId } from '@gantry/contracts';
import { CHUNK, ENTRY_BYTES, OrderedSet, type Entry } from './ordered-set';

const entry = (seq: number, enqueuedAt = seq, extra: Partial<Entry> = {}): Entry => ({
  seq,
  id: `job-${seq}`,
  enqueuedAt,
  gpuCount: -1,
  gpuMemoryMb: 0,
  generation: 1,
  attempts: 0,
  ...extra,
});

describe('OrderedSet', () => {
  it('keeps entries in seq order whatever the insertion order, and refuses a duplicate seq', () => {
    const s = new OrderedSet();
    for (const seq of [5, 1, 9, 3, 7]) expect(s.insert(entry(seq))).toBe(true);
    expect(s.insert(entry(3))).toBe(false);
    expect(s.size).toBe(5);
    expect([...s.entries()].map((e) => e.seq)).toEqual([1, 3, 5, 7, 9]);
    expect(s.first()?.id).toBe('job-1');
  });

  it('round-trips every field of an entry', () => {
    const s = new OrderedSet();
    const e = entry(42, 1_700_000_000_123, { gpuCount: 2, gpuMemoryMb: 81_559, generation: 3, attempts: 2 });
    s.insert(e);
    expect(s.get(42)).toEqual(e);
    expect(s.remove(42)).toEqual(e);
    expect(s.get(42)).toBeUndefined();
    expect(s.remove(42)).toBeUndefined();
    expect(s.first()).toBeUndefined();
  });

  it('spans many chunks: FIFO appends, head pops, middle inserts and removals', () => {
    const s = new OrderedSet();
    const n = CHUNK * 5 + 17;
    for (let i = 0; i < n; i++) s.insert(entry(i * 2));
    // Middle inserts into full chunks split them.
    for (let i = 0; i < CHUNK; i++) s.insert(entry(i * 4 + 1));
    expect(s.size).toBe(n + CHUNK);
    const seqs = [...s.entries()].map((e) => e.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(s.rank(1)).toBe(1);
    expect(s.rank(4 * 100 + 1)).toBe(s.slice(0, 100_000).findIndex((e) => e.seq === 4 * 100 + 1));
    for (let i = 0; i < 100; i++) expect(s.remove(s.first()!.seq)).toBeDefined();
    expect(s.size).toBe(n + CHUNK - 100);
    expect(s.slice(3, 2).map((e) => e.seq)).toEqual(seqs.slice(103, 105));
  });

  it('behaves like a sorted array under any sequence of operations (property)', () => {
    type Op = { kind: 'ins' | 'del'; seq: number };
    const op = fc.record({ kind: fc.constantFrom<'ins' | 'del'>('ins', 'ins', 'del'), seq: fc.nat({ max: 3_000 }) });
    fc.assert(
      fc.property(
        fc.array(op, { minLength: 200, maxLength: 2_500, size: 'max' }),
        fc.nat({ max: 3_000 }),
        (ops: Op[], probe) => {
          const s = new OrderedSet();
          const model = new Set<number>();
          for (const o of ops) {
            if (o.kind === 'ins') expect(s.insert(entry(o.seq))).toBe(!model.has(o.seq));
            else expect(s.remove(o.seq)?.seq).toBe(model.has(o.seq) ? o.seq : undefined);
            if (o.kind === 'ins') model.add(o.seq);
            else model.delete(o.seq);
          }
          const sorted = [...model].sort((a, b) => a - b);
          expect(s.size).toBe(sorted.length);
          expect([...s.entries()].map((e) => e.seq)).toEqual(sorted);
          expect(s.first()?.seq).toBe(sorted[0]);
          expect(s.rank(probe)).toBe(sorted.filter((x) => x < probe).length);
          expect(s.has(probe)).toBe(model.has(probe));
          const cut = sorted.filter((x) => x < probe).length;
          expect(s.prefixWhile((seq) => seq < probe)).toBe(cut);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('keeps the aging clock non-decreasing along the queue order (clamps skewed clocks)', () => {
    const s = new OrderedSet();
    s.insert(entry(10, 1_000));
    s.insert(entry(20, 3_000));
    // A gateway whose clock runs behind: accepted later (seq 30) but stamped earlier.
    s.insert(entry(30, 2_000));
    // A job placed between two others with a clock far ahead.
    s.insert(entry(15, 9_000));
    // And one before the head with a later stamp.
    s.insert(entry(5, 5_000));
    expect([...s.entries()].map((e) => [e.seq, e.enqueuedAt])).toEqual([
      [5, 1_000],
      [10, 1_000],
      [15, 3_000],
      [20, 3_000],
      [30, 3_000],
    ]);
  });

  it('stores ULID ids inline and any other id beside, through splits, merges and moves', () => {
    const s = new OrderedSet();
    const ids = new Map<number, string>();
    for (let i = 0; i < 3 * CHUNK; i++) {
      const id = i % 7 === 0 ? `custom-id-${i}` : newId();
      ids.set(i * 2, id);
      s.insert(entry(i * 2, i, { id }));
    }
    for (let i = 0; i < CHUNK; i++) {
      ids.set(i * 6 + 1, newId());
      s.insert(entry(i * 6 + 1, i, { id: ids.get(i * 6 + 1)! }));
    }
    for (let i = 0; i < 2 * CHUNK; i += 3) {
      expect(s.remove(i * 2)?.id).toBe(ids.get(i * 2));
      ids.delete(i * 2);
    }
    expect(new Map([...s.entries()].map((e) => [e.seq, e.id]))).toEqual(new Map([...ids].sort((a, b) => a[0] - b[0])));
    const other = new OrderedSet();
    for (const e of [...s.entries()].slice(0, 50)) other.insert(s.remove(e.seq)!);
    expect([...other.entries()].map((e) => e.id)).toEqual(
      [...ids]
        .sort((a, b) => a[0] - b[0])
        .slice(0, 50)
        .map((x) => x[1]),
    );
  });

  it('costs little for tiny sets and about ENTRY_BYTES per entry for big ones', () => {
    const tiny = new OrderedSet();
    tiny.insert(entry(1));
    expect(tiny.arrayBytes()).toBeLessThanOrEqual(8 * ENTRY_BYTES);
    const big = new OrderedSet();
    for (let i = 0; i < 100_000; i++) big.insert(entry(i, i, { id: newId() }));
    expect(big.arrayBytes() / big.size).toBeLessThan(ENTRY_BYTES + 1);
    expect(ENTRY_BYTES).toBeLessThanOrEqual(56);
  });
});
