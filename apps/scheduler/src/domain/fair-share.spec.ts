import fc from 'fast-check';
import type { Priority } from '@gantry/contracts';
import { FakeJobsStream } from '../../test/fake-jobs-stream';
import { planDispatch } from './dispatch-plan';
import { compareRanks, FairShare, slotsOf } from './fair-share';
import { SchedulerState } from './scheduler-state';
import { tenantViews } from './tenant-views';

const H = 300;
const LN2 = Math.LN2;

function setup(max: number, weights: Record<string, number> = {}, o: { tenantCap?: number; slots?: number } = {}) {
  const clock = { now: Date.parse('2030-01-01T00:00:00.000Z') };
  const fair = new FairShare(weights, H, () => clock.now);
  const state = new SchedulerState(max, o.tenantCap, {}, fair);
  state.capacity.upsertWorker({
    id: 'w',
    pool: 'default',
    slots: o.slots ?? 100_000,
    slotsPerGpu: 1,
    gpus: [],
    draining: false,
  });
  state.capacity.setReady('w', true);
  const stream = new FakeJobsStream();
  const submit = (id: string, tenant: string, priority: Priority = 'normal') =>
    state.apply(stream.submit(id, { tenant, priority }), true);
  const plan = (limit = 1_000) =>
    planDispatch(state, { now: clock.now, agingMs: 0, limit, unplaceable: new Set() }).map((d) => d.candidate.entry.id);
  const heldBy = (tenant: string) => [...state.holdings.values()].filter((h) => h.tenant === tenant).length;
  return { clock, fair, state, stream, submit, plan, heldBy };
}

describe('FairShare usage', () => {
  it('integrates held slots with exponential decay (exact closed form) and forgets what decayed away', () => {
    let now = 0;
    const f = new FairShare({}, 100, () => now);
    f.acquire('a', 2);
    now = 100_000; // one half-life holding 2 slots: 2 × ∫0..100 2^-(100-s)/100 ds = 2 × 100/ln2 × (1 − 1/2)
    expect(f.usage('a')).toBeCloseTo((2 * 100 * 0.5) / LN2, 6);
    f.release('a', 2);
    const at = f.usage('a');
    now = 200_000; // released: halves per half-life
    expect(f.usage('a')).toBeCloseTo(at / 2, 6);
    expect(f.held('a')).toBe(0);
    now = 100_000_000;
    expect(f.snapshot().map((s) => s.tenant)).toEqual([]);
  });

  it('approaches held × half-life / ln 2 when holding steadily (the decayed window)', () => {
    let now = 0;
    const f = new FairShare({ a: 3 }, 10, () => now);
    f.acquire('a', 1);
    now = 1_000_000;
    expect(f.usage('a')).toBeCloseTo(10 / LN2, 6);
    expect(f.weight('a')).toBe(3);
    expect(f.weight('zzz')).toBe(1);
  });

  it('ranks by (held + slots) / weight, then usage / weight', () => {
    let now = 0;
    const f = new FairShare({ big: 2 }, 100, () => now);
    f.acquire('big', 1);
    f.acquire('small', 1);
    // big: (1 + 1) / 2 = 1 < small: (1 + 1) / 1 = 2
    expect(compareRanks(f.rank('big', 1, now), f.rank('small', 1, now))).toBeLessThan(0);
    f.release('big', 1);
    f.release('small', 1);
    f.acquire('x', 1);
    now = 50_000;
    f.release('x', 1);
    // same held (0), x used more lately → y first
    expect(compareRanks(f.rank('y', 1, now), f.rank('x', 1, now))).toBeLessThan(0);
    expect(slotsOf([0, 1, 2])).toBe(3);
    expect(slotsOf([])).toBe(1);
    expect(slotsOf(-1)).toBe(1);
  });
});

describe('planDispatch with fair share', () => {
  it('alternates two equal tenants however the jobs were submitted, and keeps FIFO within each', () => {
    const { submit, plan } = setup(6);
    for (let i = 0; i < 100; i++) submit(`a${i}`, 'a');
    for (let i = 0; i < 100; i++) submit(`b${i}`, 'b');
    expect(plan()).toEqual(['a0', 'b0', 'a1', 'b1', 'a2', 'b2']);
  });

  it('shares tokens in proportion to weights (3 : 1 : 0 of 8 tokens → 6 and 2)', () => {
    const { submit, plan, heldBy } = setup(8, { a: 3 });
    for (let i = 0; i < 50; i++) submit(`b${i}`, 'b');
    for (let i = 0; i < 50; i++) submit(`a${i}`, 'a');
    expect(plan()).toHaveLength(8);
    expect(heldBy('a')).toBe(6);
    expect(heldBy('b')).toBe(2);
  });

  it('noisy neighbour: 10,000 jobs of A hold every token; B gets the first token that frees', () => {
    const { state, submit, plan, heldBy } = setup(4);
    for (let i = 0; i < 10_000; i++) submit(`a${i}`, 'a');
    expect(plan()).toEqual(['a0', 'a1', 'a2', 'a3']);
    submit('b0', 'b');
    submit('b1', 'b');
    expect(plan()).toEqual([]);
    state.releaseHolding('a0');
    expect(plan()).toEqual(['b0']);
    state.releaseHolding('a1');
    expect(plan()).toEqual(['b1']);
    state.releaseHolding('a2');
    expect(plan()).toEqual(['a4']);
    expect([heldBy('a'), heldBy('b')]).toEqual([2, 2]);
  });

  it('keeps strict priority across levels: a high job beats a tenant that holds nothing', () => {
    const { submit, plan } = setup(3);
    for (let i = 0; i < 5; i++) submit(`a${i}`, 'a', 'high');
    submit('b0', 'b');
    expect(plan()).toEqual(['a0', 'a1', 'a2']);
  });

  it('lets the tenant that used less lately go first when shares held are equal', () => {
    const { clock, state, submit, plan } = setup(1);
    submit('a0', 'a');
    expect(plan()).toEqual(['a0']);
    clock.now += 60_000;
    state.releaseHolding('a0');
    submit('a1', 'a');
    submit('b0', 'b'); // submitted after a1, but b used nothing
    expect(plan()).toEqual(['b0']);
  });

  it('keeps aging: an old low job promoted to high competes there by fair share', () => {
    const { clock, state, stream, submit } = setup(3);
    submit('b-low', 'b', 'low');
    stream.now += 2_000; // two aging steps of 1 s: low → normal → high
    clock.now = stream.now;
    for (let i = 0; i < 3; i++) submit(`a${i}`, 'a', 'high');
    const ids = (agingMs: number) =>
      planDispatch(state, { now: clock.now, agingMs, limit: 3, unplaceable: new Set() }).map(
        (d) => d.candidate.entry.id,
      );
    expect(ids(1_000)).toEqual(['b-low', 'a0', 'a1']);
  });

  it('runs a low job last without aging', () => {
    const { clock, state, stream, submit } = setup(3);
    submit('b-low', 'b', 'low');
    stream.now += 2_000;
    clock.now = stream.now;
    for (let i = 0; i < 3; i++) submit(`a${i}`, 'a', 'high');
    expect(
      planDispatch(state, { now: clock.now, agingMs: 0, limit: 3, unplaceable: new Set() }).map(
        (d) => d.candidate.entry.id,
      ),
    ).toEqual(['a0', 'a1', 'a2']);
  });

  it('still caps a tenant at TENANT_MAX_CONCURRENT_JOBS', () => {
    const { submit, plan, heldBy } = setup(10, { a: 100 }, { tenantCap: 2 });
    for (let i = 0; i < 10; i++) submit(`a${i}`, 'a');
    submit('b0', 'b');
    plan();
    expect([heldBy('a'), heldBy('b')]).toEqual([2, 1]);
  });

  it('counts a multi-GPU job as that many slots', () => {
    const clock = { now: 0 };
    const fair = new FairShare({}, H, () => clock.now);
    const state = new SchedulerState(10, undefined, {}, fair);
    const gpus = Array.from({ length: 8 }, (_, i) => ({ index: i, uuid: `G${i}`, name: 'F', memoryTotalMb: 80_000 }));
    state.capacity.upsertWorker({ id: 'w', pool: 'default', slots: 8, slotsPerGpu: 1, gpus, draining: false });
    state.capacity.setReady('w', true);
    const stream = new FakeJobsStream();
    state.apply(stream.submit('a-big', { tenant: 'a', gpu: { count: 4, memoryMb: 1000 } }), true);
    state.apply(stream.submit('a-1', { tenant: 'a', gpu: { count: 1, memoryMb: 1000 } }), true);
    for (let i = 0; i < 5; i++)
      state.apply(stream.submit(`b${i}`, { tenant: 'b', gpu: { count: 1, memoryMb: 1000 } }), true);
    const ids = planDispatch(state, { now: 0, agingMs: 0, limit: 100, unplaceable: new Set() }).map(
      (d) => d.candidate.entry.id,
    );
    // a's 4-GPU head would leave a at 4 slots: b's 1-GPU jobs go first until b would hold as much (4 vs 4 ties →
    // FIFO), then the 8 GPUs are full.
    expect(ids).toEqual(['b0', 'b1', 'b2', 'a-big', 'b3']);
    expect(fair.held('a')).toBe(4);
    expect(fair.held('b')).toBe(4);
  });
});

describe('fair share against a brute-force model (property)', () => {
  /** The model: every queued job in a flat list; usage by explicit intervals; the next job by scanning all of them. */
  class Model {
    queued: { id: string; tenant: string; level: number; seq: number }[] = [];
    held = new Map<string, string>(); // job → tenant
    intervals: { tenant: string; s: number; e: number | undefined }[] = [];
    constructor(
      readonly weights: Record<string, number>,
      readonly T: number,
    ) {}
    w(t: string) {
      return this.weights[t] ?? 1;
    }
    usage(t: string, now: number) {
      let u = 0;
      for (const iv of this.intervals) {
        if (iv.tenant !== t) continue;
        const e = iv.e ?? now;
        u += (H / LN2) * (Math.pow(2, -(now - e) / 1000 / H) - Math.pow(2, -(now - iv.s) / 1000 / H));
      }
      return u;
    }
    heldCount(t: string) {
      return [...this.held.values()].filter((x) => x === t).length;
    }
    next(now: number): string | undefined {
      if (this.held.size >= this.T || this.queued.length === 0) return undefined;
      const top = Math.min(...this.queued.map((q) => q.level));
      let best: { id: string; rank: [number, number]; seq: number } | undefined;
      for (const q of this.queued) {
        if (q.level !== top) continue;
        const rank: [number, number] = [
          (this.heldCount(q.tenant) + 1) / this.w(q.tenant),
          this.usage(q.tenant, now) / this.w(q.tenant),
        ];
        if (!best || compareRanks(rank, best.rank) < 0 || (compareRanks(rank, best.rank) === 0 && q.seq < best.seq))
          best = { id: q.id, rank, seq: q.seq };
      }
      return best?.id;
    }
    take(id: string, now: number) {
      const i = this.queued.findIndex((q) => q.id === id);
      const [q] = this.queued.splice(i, 1);
      this.held.set(id, q!.tenant);
      this.intervals.push({ tenant: q!.tenant, s: now, e: undefined });
    }
    release(id: string, now: number) {
      const t = this.held.get(id)!;
      this.held.delete(id);
      const iv = this.intervals.find((x) => x.tenant === t && x.e === undefined)!;
      iv.e = now;
    }
  }

  const TENANTS = ['a', 'b', 'c', 'd'];
  const LEVELS: Priority[] = ['urgent', 'high', 'normal', 'low'];
  type Op =
    | { k: 'submit'; tenant: number; level: number; n: number }
    | { k: 'release'; pick: number }
    | { k: 'tick'; ms: number }
    | { k: 'plan' };
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({
      k: fc.constant('submit' as const),
      tenant: fc.nat(3),
      level: fc.nat(3),
      n: fc.integer({ min: 1, max: 4 }),
    }),
    fc.record({ k: fc.constant('release' as const), pick: fc.nat() }),
    fc.record({ k: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 600_000 }) }),
    fc.constant({ k: 'plan' as const }),
  );

  it('hands out every token exactly as the model does (strict levels, least (held + 1)/weight, least usage, FIFO)', () => {
    fc.assert(
      fc.property(
        fc.array(op, { minLength: 1, maxLength: 120 }),
        fc.integer({ min: 1, max: 6 }),
        fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 4, maxLength: 4 }),
        (ops, T, ws) => {
          const weights = Object.fromEntries(TENANTS.map((t, i) => [t, ws[i]!]));
          const { clock, state, submit, plan } = setup(T, weights);
          const model = new Model(weights, T);
          let n = 0;
          for (const o of ops) {
            if (o.k === 'submit') {
              for (let i = 0; i < o.n; i++) {
                const id = `j${n++}`;
                submit(id, TENANTS[o.tenant]!, LEVELS[o.level]);
                model.queued.push({ id, tenant: TENANTS[o.tenant]!, level: o.level, seq: n });
              }
            } else if (o.k === 'release') {
              const ids = [...model.held.keys()];
              if (ids.length === 0) continue;
              const id = ids[o.pick % ids.length]!;
              model.release(id, clock.now);
              state.releaseHolding(id);
            } else if (o.k === 'tick') {
              clock.now += o.ms;
            } else {
              const expected: string[] = [];
              for (let id = model.next(clock.now); id; id = model.next(clock.now)) {
                expected.push(id);
                model.take(id, clock.now);
              }
              expect(plan()).toEqual(expected);
            }
          }
        },
      ),
      { numRuns: 300, seed: 15 },
    );
  });

  it('bound: with every tenant backlogged, once each token held at the start has turned over, every tenant holds at least ⌊T·w/W⌋ (lags its entitled share by less than one token)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 24 }),
        fc.array(fc.integer({ min: 1, max: 10 }), { minLength: 2, maxLength: 5 }),
        fc.array(fc.nat(), { minLength: 1, maxLength: 200 }),
        fc.integer({ min: 0, max: 4 }),
        (T, ws, releases, early) => {
          const tenants = ws.map((_, i) => `t${i}`);
          const weights = Object.fromEntries(tenants.map((t, i) => [t, ws[i]!]));
          const { clock, state, submit, plan, heldBy } = setup(T, weights);
          // A few tenants arrive first and take every token; the rest arrive behind them (the unfair start).
          const first = tenants.slice(0, Math.max(1, early % tenants.length));
          let n = 0;
          const flood = (t: string) => {
            for (let i = 0; i < T * 4 + releases.length; i++) submit(`${t}-${n++}`, t);
          };
          first.forEach(flood);
          plan();
          tenants.filter((t) => !first.includes(t)).forEach(flood);
          plan();
          const W = ws.reduce((a, b) => a + b, 0);
          const pending = new Set(state.holdings.keys());
          for (const r of releases) {
            const ids = [...state.holdings.keys()];
            const id = ids[r % ids.length]!;
            clock.now += 1_000;
            state.releaseHolding(id);
            pending.delete(id);
            plan();
            expect(state.holdings.size).toBe(T);
            if (pending.size === 0)
              for (const t of tenants) expect(heldBy(t)).toBeGreaterThanOrEqual(Math.floor((T * weights[t]!) / W));
          }
        },
      ),
      { numRuns: 300, seed: 15 },
    );
  });
});

describe('queue position under fair share', () => {
  it('is the place the dispatcher gives the job, from the shares held now (checked against the real plan)', () => {
    const cases: Record<string, number>[] = [{}, { a: 2 }, { a: 3, c: 2 }, { b: 5 }];
    for (const weights of cases) {
      for (const early of [0, 1, 4]) {
        const { state, submit, plan } = setup(1_000, weights);
        let n = 0;
        for (const t of ['b', 'a', 'b', 'c', 'a', 'b', 'a', 'a', 'c', 'b', 'b'])
          for (let i = 0; i < 3; i++) submit(`${t}${n++}`, t);
        expect(plan(early)).toHaveLength(early); // some tokens already held: shares no longer level
        const positions = new Map<string, number>();
        for (const { tenant, level, entry } of state.index.all())
          positions.set(entry.id, state.index.position('default', tenant, level, entry.seq, 0, 0, state.fair)!);
        const order = plan();
        expect(order).toHaveLength(33 - early);
        order.forEach((id, i) => expect([id, positions.get(id)]).toEqual([id, i]));
      }
    }
  });

  it('puts every job of a higher level ahead', () => {
    const { state, submit } = setup(10);
    submit('n0', 'a');
    submit('h0', 'b', 'high');
    submit('h1', 'b', 'high');
    const pos = (id: string) => {
      const e = [...state.index.all()].find((x) => x.entry.id === id)!;
      return state.index.position('default', e.tenant, e.level, e.entry.seq, 0, 0, state.fair);
    };
    expect([pos('h0'), pos('h1'), pos('n0')]).toEqual([0, 1, 2]);
  });

  it('is exact FIFO without weights (one tenant)', () => {
    const { state, submit } = setup(1);
    for (let i = 0; i < 5; i++) submit(`a${i}`, 'a');
    const e = [...state.index.all()][3]!;
    expect(state.index.position('default', 'a', e.level, e.entry.seq, 0, 0, state.fair)).toBe(3);
  });
});

describe('tenantViews', () => {
  it('reports weight, queued, running, decayed usage, share of usage and entitlement over tenants with work', () => {
    const { clock, state, stream, submit, plan } = setup(2, { a: 3, idle: 5 });
    for (let i = 0; i < 3; i++) submit(`a${i}`, 'a');
    submit('b0', 'b');
    expect(plan()).toEqual(['a0', 'a1']); // a (weight 3) holds two before b's turn: (1 + 1) / 3 < 1
    state.apply(stream.start('a0', 'w'), true);
    clock.now += 10_000;
    const views = tenantViews(state, clock.now);
    expect(views.map((v) => v.tenant)).toEqual(['a', 'b', 'idle']);
    const [a, b, idle] = views;
    expect(a).toMatchObject({ weight: 3, queued: 2, running: 1, entitledPercent: 75 });
    expect(b).toMatchObject({ weight: 1, queued: 1, running: 0, entitledPercent: 25 });
    expect(idle).toEqual({
      tenant: 'idle',
      weight: 5,
      queued: 0,
      running: 0,
      usedSlotSeconds: 0,
      sharePercent: 0,
      entitledPercent: 0,
    });
    // two slots for 10 s, decayed with a 300 s half-life: 2 × 300/ln2 × (1 − 2^(−10/300))
    expect(a!.usedSlotSeconds).toBeCloseTo(((2 * 300) / LN2) * (1 - Math.pow(2, -10 / 300)), 1);
    expect(a!.sharePercent).toBe(100);
    expect(b!.sharePercent).toBe(0);
    expect(tenantViews(state, clock.now, 'nobody')).toEqual([
      { tenant: 'nobody', weight: 1, queued: 0, running: 0, usedSlotSeconds: 0, sharePercent: 0, entitledPercent: 0 },
    ]);
  });
});
