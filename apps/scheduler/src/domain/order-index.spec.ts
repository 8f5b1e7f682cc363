import fc from 'fast-check';
import { effectiveLevel, HIGH, OrderIndex, URGENT } from './order-index';
import type { Entry } from './ordered-set';

const [U, H, N, L] = [0, 1, 2, 3];
const MIN = 60_000;

const entry = (seq: number, enqueuedAt = seq * 1_000): Entry => ({
  seq,
  id: `job-${seq}`,
  enqueuedAt,
  gpuCount: -1,
  gpuMemoryMb: 0,
  generation: 1,
  attempts: 0,
});

/** Takes jobs off the pool in the order the dispatcher would (best, then remove) until it is empty. */
function drain(index: OrderIndex, pool: string, now = 0, agingMs = 0): string[] {
  const out: string[] = [];
  for (let c = index.best(pool, now, agingMs); c; c = index.best(pool, now, agingMs)) {
    out.push(c.entry.id);
    index.remove(c.pool, c.tenant, c.level, c.entry.seq);
  }
  return out;
}

describe('effectiveLevel (aging)', () => {
  it('promotes one level per aging period, never into urgent, and is off at 0', () => {
    expect(effectiveLevel(L, 0, 0, MIN)).toBe(L);
    expect(effectiveLevel(L, 0, MIN - 1, MIN)).toBe(L);
    expect(effectiveLevel(L, 0, MIN, MIN)).toBe(N);
    expect(effectiveLevel(L, 0, 2 * MIN, MIN)).toBe(H);
    expect(effectiveLevel(L, 0, 1_000 * MIN, MIN)).toBe(HIGH);
    expect(effectiveLevel(N, 0, 1_000 * MIN, MIN)).toBe(HIGH);
    expect(effectiveLevel(H, 0, 1_000 * MIN, MIN)).toBe(H);
    expect(effectiveLevel(U, 0, 1_000 * MIN, MIN)).toBe(URGENT);
    expect(effectiveLevel(L, 0, 1_000 * MIN, 0)).toBe(L);
    // A clock that runs behind the stamp does not demote.
    expect(effectiveLevel(N, 10 * MIN, 0, MIN)).toBe(N);
  });
});

describe('OrderIndex', () => {
  it('runs strict priority, FIFO within a level (by queue sequence, not by insertion order)', () => {
    const ix = new OrderIndex();
    ix.add('default', 't1', N, entry(1));
    ix.add('default', 't1', L, entry(2));
    ix.add('default', 't2', N, entry(3));
    ix.add('default', 't1', U, entry(9));
    ix.add('default', 't2', H, entry(5));
    // Retried job back at its original place (older queue sequence than jobs already queued).
    ix.add('default', 't1', N, entry(0));
    expect(ix.depth()).toEqual({ byLevel: [1, 1, 3, 1], total: 6 });
    expect(drain(ix, 'default')).toEqual(['job-9', 'job-5', 'job-0', 'job-1', 'job-3', 'job-2']);
    expect(ix.size).toBe(0);
    expect(ix.poolNames()).toEqual([]);
  });

  it('puts an urgent job in front of a million queued normal jobs in O(1) sets', () => {
    const ix = new OrderIndex();
    for (let i = 1; i <= 1_000_000; i++) ix.add('default', 'tenant', N, entry(i));
    ix.add('default', 'tenant', U, entry(1_000_001));
    expect(ix.best('default', 0, 0)?.entry.id).toBe('job-1000001');
    expect(ix.position('default', 'tenant', U, 1_000_001, 0, 0)).toBe(0);
    expect(ix.position('default', 'tenant', N, 1, 0, 0)).toBe(1);
    expect(ix.position('default', 'tenant', N, 1_000_000, 0, 0)).toBe(1_000_000);
  });

  it('keeps the submission order when a job is reprioritized (moved under the same queue sequence)', () => {
    const ix = new OrderIndex();
    for (const seq of [1, 2, 3]) ix.add('p', 't', H, entry(seq));
    for (const seq of [4, 5, 6]) ix.add('p', 't', N, entry(seq));
    // Job 5 goes high: it lands after 1..3 (older) but not at the tail, because it keeps sequence 5.
    const moved = ix.remove('p', 't', N, 5)!;
    ix.add('p', 't', H, moved);
    ix.add('p', 't', H, entry(7));
    expect(drain(ix, 'p')).toEqual(['job-1', 'job-2', 'job-3', 'job-5', 'job-7', 'job-4', 'job-6']);
  });

  it('ages low and normal jobs up to high (FIFO among equals), never past urgent', () => {
    const ix = new OrderIndex();
    ix.add('p', 't', L, entry(1, 0)); // waited 3 periods at `now` → high
    ix.add('p', 't', N, entry(2, 2 * MIN)); // waited 1 period → high
    ix.add('p', 't', H, entry(3, 2.5 * MIN));
    ix.add('p', 't', N, entry(4, 2.9 * MIN)); // not yet aged
    ix.add('p', 't', U, entry(5, 3 * MIN));
    const now = 3 * MIN;
    expect(ix.position('p', 't', U, 5, now, MIN)).toBe(0);
    expect(ix.position('p', 't', L, 1, now, MIN)).toBe(1);
    expect(drain(ix, 'p', now, MIN)).toEqual(['job-5', 'job-1', 'job-2', 'job-3', 'job-4']);
  });

  it('skips tenants at their cap and jobs that can never be placed', () => {
    const ix = new OrderIndex();
    ix.add('p', 'busy', U, entry(1));
    ix.add('p', 'idle', N, entry(2));
    ix.add('p', 'idle', N, entry(3));
    expect(ix.best('p', 0, 0, (t) => t === 'busy')?.entry.id).toBe('job-2');
    expect(ix.best('p', 0, 0, (t) => t === 'busy', new Set(['job-2']))?.entry.id).toBe('job-3');
    expect(ix.best('p', 0, 0, () => true)).toBeUndefined();
    expect(ix.best('nope', 0, 0)).toBeUndefined();
  });

  it('answers undefined for a position of a job it does not hold', () => {
    const ix = new OrderIndex();
    ix.add('p', 't', N, entry(1));
    expect(ix.position('p', 't', H, 1, 0, 0)).toBeUndefined();
    expect(ix.position('p', 'x', N, 1, 0, 0)).toBeUndefined();
    expect(ix.position('q', 't', N, 1, 0, 0)).toBeUndefined();
    expect(ix.removeAnywhere('p', 't', 1)?.level).toBe(N);
    expect(ix.removeAnywhere('p', 't', 1)).toBeUndefined();
  });

  it('gives exact positions and the same order as a brute-force model, with aging and reprioritizing (property)', () => {
    interface Job {
      pool: string;
      tenant: string;
      level: number;
      seq: number;
      enq: number;
    }
    const jobArb = fc.record({
      pool: fc.constantFrom('a', 'b'),
      tenant: fc.constantFrom('t1', 't2', 't3'),
      level: fc.integer({ min: 0, max: 3 }),
    });
    fc.assert(
      fc.property(
        fc.array(jobArb, { minLength: 20, maxLength: 300, size: 'max' }),
        fc.array(fc.record({ i: fc.nat(), level: fc.integer({ min: 0, max: 3 }), drop: fc.boolean() }), {
          maxLength: 60,
          size: 'max',
        }),
        fc.constantFrom(0, MIN),
        fc.integer({ min: 0, max: 400 }),
        fc.integer({ min: 1, max: 1_000 }),
        (specs, changes, agingMs, nowMinutes, stepMs) => {
          // Queue sequences are accepted in order; stamps grow with them (one gateway clock).
          const jobs: Job[] = specs.map((s, k) => ({ ...s, seq: k + 1, enq: (k + 1) * stepMs * 60 }));
          const ix = new OrderIndex();
          // Inserted in a shuffled order: the index orders by sequence, not by arrival.
          for (const j of [...jobs].sort((a, b) => ((a.seq * 7919) % 311) - ((b.seq * 7919) % 311)))
            ix.add(j.pool, j.tenant, j.level, entry(j.seq, j.enq));
          const live = new Map(jobs.map((j) => [j.seq, j]));
          for (const c of changes) {
            const j = jobs[c.i % jobs.length]!;
            if (!live.has(j.seq)) continue;
            const e = ix.remove(j.pool, j.tenant, j.level, j.seq);
            expect(e).toBeDefined();
            if (c.drop) {
              live.delete(j.seq);
              continue;
            }
            j.level = c.level;
            ix.add(j.pool, j.tenant, j.level, e!);
          }
          const now = nowMinutes * MIN;
          const key = (j: Job) => [effectiveLevel(j.level, j.enq, now, agingMs), j.seq] as const;
          const before = (a: Job, b: Job) => {
            const [ka, kb] = [key(a), key(b)];
            return ka[0] !== kb[0] ? ka[0] < kb[0] : ka[1] < kb[1];
          };
          for (const j of live.values()) {
            const ahead = [...live.values()].filter((o) => o.pool === j.pool && before(o, j)).length;
            expect(ix.position(j.pool, j.tenant, j.level, j.seq, now, agingMs)).toBe(ahead);
            // Aging never makes anything urgent that was not.
            if (j.level !== URGENT) expect(key(j)[0]).toBeGreaterThanOrEqual(HIGH);
          }
          for (const pool of ['a', 'b']) {
            const expected = [...live.values()]
              .filter((j) => j.pool === pool)
              .sort((x, y) => (before(x, y) ? -1 : 1))
              .map((j) => `job-${j.seq}`);
            expect(drain(ix, pool, now, agingMs)).toEqual(expected);
          }
        },
      ),
      { numRuns: 80 },
    );
  });
});

describe('OrderIndex.countAbove and tenantQueued', () => {
  it('count the queued jobs of a pool above a level (blocked tenants left out), and one tenant’s at or above it (against every entry)', () => {
    const op = fc.record({
      add: fc.boolean(),
      pool: fc.constantFrom('a', 'b'),
      tenant: fc.constantFrom('t1', 't2', 't3'),
      level: fc.integer({ min: 0, max: 3 }),
      k: fc.nat(),
    });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 120 }), fc.subarray(['t1', 't2', 't3']), (ops, blocked) => {
        const index = new OrderIndex();
        let seq = 0;
        for (const o of ops) {
          if (o.add) index.add(o.pool, o.tenant, o.level, entry(++seq));
          else {
            const all = [...index.all()];
            const x = all[o.k % Math.max(1, all.length)];
            if (x) index.remove(x.pool, x.tenant, x.level, x.entry.seq);
          }
        }
        const isBlocked = (t: string) => blocked.includes(t);
        for (const pool of ['a', 'b', 'none'])
          for (let level = 0; level <= 4; level++) {
            const brute = [...index.all()].filter(
              (x) => x.pool === pool && x.level < level && !isBlocked(x.tenant),
            ).length;
            expect(index.countAbove(pool, level, isBlocked)).toBe(brute);
            for (const tenant of ['t1', 't2', 't3', 'none'])
              expect(index.tenantQueued(pool, tenant, level)).toBe(
                [...index.all()].filter((x) => x.pool === pool && x.tenant === tenant && x.level <= level).length,
              );
          }
      }),
      { numRuns: 200 },
    );
  });
});
