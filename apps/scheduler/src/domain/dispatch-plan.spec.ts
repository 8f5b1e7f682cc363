import fc from 'fast-check';
import type { GpuInfo, Priority } from '@gantry/contracts';
import { FakeJobsStream } from '../../test/fake-jobs-stream';
import { outranked, planDispatch, type Decision } from './dispatch-plan';
import { SchedulerState } from './scheduler-state';

const gpu = (index: number, memoryTotalMb: number): GpuInfo => ({ index, uuid: `G${index}`, name: 'F', memoryTotalMb });

function setup(max: number, tenantCap?: number) {
  const state = new SchedulerState(max, tenantCap);
  const add = (id: string, pool: string, slots: number, gpus: GpuInfo[] = [], slotsPerGpu = 2) => {
    state.capacity.upsertWorker({ id, pool, slots, slotsPerGpu, gpus, draining: false });
    state.capacity.setReady(id, true);
  };
  return { state, add, stream: new FakeJobsStream(), unplaceable: new Set<string>() };
}

const plan = (state: SchedulerState, unplaceable = new Set<string>(), limit = 100) =>
  planDispatch(state, { now: 0, agingMs: 0, limit, unplaceable }).map((d) => d.candidate.entry.id);

describe('planDispatch', () => {
  it('gives the next free token to an urgent job submitted behind many normal ones', () => {
    const { state, add, stream } = setup(2);
    add('w', 'default', 2);
    for (let i = 0; i < 1_000; i++) state.apply(stream.submit(`n${i}`), true);
    expect(plan(state)).toEqual(['n0', 'n1']);
    state.apply(stream.submit('urgent', { priority: 'urgent' }), true);
    expect(plan(state)).toEqual([]);
    state.apply(stream.start('n0', 'w'), true);
    state.apply(stream.complete('n0'), true);
    expect(plan(state)).toEqual(['urgent']);
  });

  it('compares across pools for the global token, but a pool without a slot does not block another', () => {
    const { state, add, stream } = setup(1);
    add('wa', 'a', 1);
    add('wb', 'b', 1);
    state.apply(stream.submit('a-normal', { pool: 'a' }), true);
    state.apply(stream.submit('b-high', { pool: 'b', priority: 'high' }), true);
    expect(plan(state)).toEqual(['b-high']);
    state.capacity.maxConcurrent = 2;
    state.apply(stream.submit('b-urgent', { pool: 'b', priority: 'urgent' }), true);
    // Pool b's worker is full: its urgent job cannot use the token, so pool a's job takes it.
    expect(plan(state)).toEqual(['a-normal']);
  });

  it('lets a GPU job that does not fit yet block its pool (no smaller job jumps the queue)', () => {
    const { state, add, stream } = setup(10);
    add('w', 'default', 4, [gpu(0, 24_000)], 4);
    state.apply(stream.submit('small1', { gpu: { count: 1, memoryMb: 10_000 } }), true);
    state.apply(stream.submit('big', { gpu: { count: 1, memoryMb: 20_000 } }), true);
    state.apply(stream.submit('small2', { gpu: { count: 1, memoryMb: 10_000 } }), true);
    expect(plan(state)).toEqual(['small1']);
    state.apply(stream.start('small1', 'w', [0]), true);
    state.apply(stream.complete('small1'), true);
    expect(plan(state)).toEqual(['big']);
  });

  it('skips (and remembers) a job no worker of its pool can ever fit', () => {
    const { state, add, stream, unplaceable } = setup(10);
    add('w', 'default', 4, [gpu(0, 24_000)]);
    state.apply(stream.submit('huge', { gpu: { count: 1, memoryMb: 80_000 } }), true);
    state.apply(stream.submit('ok'), true);
    expect(plan(state, unplaceable)).toEqual(['ok']);
    expect([...unplaceable]).toEqual(['huge']);
  });

  it('skips tenants at their cap without holding anyone else back, and stops at the limit', () => {
    const { state, add, stream } = setup(10, 1);
    add('w', 'default', 10);
    state.apply(stream.submit('a1', { tenant: 'a', priority: 'urgent' }), true);
    state.apply(stream.submit('a2', { tenant: 'a', priority: 'urgent' }), true);
    state.apply(stream.submit('b1', { tenant: 'b' }), true);
    state.apply(stream.submit('c1', { tenant: 'c' }), true);
    expect(plan(state, new Set(), 2)).toEqual(['a1', 'b1']);
    expect(plan(state)).toEqual(['c1']);
  });

  it('never dispatches a lower-priority job while a higher one could run, nor exceeds a limit (simulation)', () => {
    const prio = fc.constantFrom<Priority>('urgent', 'high', 'normal', 'low');
    const op = fc.oneof(
      fc.record({ kind: fc.constant('submit' as const), p: prio, tenant: fc.constantFrom('t1', 't2', 't3') }),
      fc.record({ kind: fc.constant('finish' as const), k: fc.nat() }),
    );
    fc.assert(
      fc.property(
        fc.array(op, { minLength: 10, maxLength: 150, size: 'max' }),
        fc.integer({ min: 1, max: 6 }),
        (ops, max) => {
          const { state, add, stream } = setup(max, 2);
          add('w1', 'default', 2);
          add('w2', 'default', 3);
          const running: string[] = [];
          let n = 0;
          for (const o of ops) {
            if (o.kind === 'submit') state.apply(stream.submit(`j${n++}`, { priority: o.p, tenant: o.tenant }), true);
            else if (running.length > 0) {
              const id = running.splice(o.k % running.length, 1)[0]!;
              state.apply(stream.complete(id), true);
            }
            for (const d of planDispatch(state, { now: 0, agingMs: 0, limit: 100, unplaceable: new Set() })) {
              const id = d.candidate.entry.id;
              // Whatever is still queued for a tenant with room must not outrank what was just dispatched.
              for (const q of state.index.all()) {
                if (state.capacity.tenantBlocked(q.tenant)) continue;
                expect(
                  q.level > d.candidate.level ||
                    (q.level === d.candidate.level && q.entry.seq > d.candidate.entry.seq) ||
                    state.capacity.globalFree === 0 ||
                    state.capacity.poolFreeSlots('default') === 0,
                ).toBe(true);
              }
              state.apply(stream.start(id, d.workerId), true);
              running.push(id);
            }
            expect(state.capacity.used).toBeLessThanOrEqual(max);
            for (const t of ['t1', 't2', 't3']) expect(state.capacity.tenantUsed(t)).toBeLessThanOrEqual(2);
            for (const w of state.capacity.allWorkers()) expect(w.used).toBeLessThanOrEqual(w.slots);
          }
        },
      ),
      { numRuns: 100 },
    );
  });
});

describe('outranked (a round that awaited reads gives tokens back to higher priorities queued meanwhile)', () => {
  const ids = (ds: Decision[]) => ds.map((d) => d.candidate.entry.id);
  const planned = (state: SchedulerState) =>
    planDispatch(state, { now: 0, agingMs: 0, limit: 100, unplaceable: new Set() });

  it('gives back the worst decisions, one per job of a higher level queued in their pool', () => {
    const { state, add, stream } = setup(4);
    add('w', 'default', 4);
    state.apply(stream.submit('h0', { priority: 'high' }), true);
    for (let i = 0; i < 5; i++) state.apply(stream.submit(`n${i}`), true);
    const round = planned(state);
    expect(ids(round)).toEqual(['h0', 'n0', 'n1', 'n2']);
    expect(outranked(state, round)).toEqual([]);
    // Queued while the round read its records: one urgent, one high, one low (the low changes nothing).
    state.apply(stream.submit('u', { priority: 'urgent' }), true);
    state.apply(stream.submit('h1', { priority: 'high' }), true);
    state.apply(stream.submit('l', { priority: 'low' }), true);
    expect(ids(outranked(state, round))).toEqual(['n2', 'n1']);
  });

  it('does not count jobs of tenants at their cap, jobs no worker can fit, or another pool', () => {
    const { state, add, stream } = setup(4, 1);
    add('w', 'default', 4);
    add('x', 'other', 4);
    state.apply(stream.submit('a0', { tenant: 'a' }), true);
    state.apply(stream.submit('b0', { tenant: 'b' }), true);
    const round = planned(state);
    expect(ids(round)).toEqual(['a0', 'b0']);
    state.apply(stream.submit('a-urgent', { tenant: 'a', priority: 'urgent' }), true); // tenant a is at its cap
    state.apply(stream.submit('c-urgent', { tenant: 'c', priority: 'urgent', pool: 'other' }), true);
    expect(outranked(state, round)).toEqual([]);
    state.apply(stream.submit('d-urgent', { tenant: 'd', priority: 'urgent' }), true);
    expect(outranked(state, round, new Set(['d-urgent']))).toEqual([]);
    expect(ids(outranked(state, round))).toEqual(['b0']);
  });

  it('after giving back and planning again, the round dispatches the levels a plan made after the arrivals would (simulation)', () => {
    const prio = fc.constantFrom<Priority>('urgent', 'high', 'normal', 'low');
    const job = fc.record({ p: prio, tenant: fc.constantFrom('t1', 't2', 't3') });
    fc.assert(
      fc.property(
        fc.array(job, { maxLength: 40 }),
        fc.array(job, { maxLength: 10 }),
        fc.integer({ min: 1, max: 8 }),
        (before, during, tokens) => {
          const levels = (ds: Decision[]) => ds.map((d) => d.candidate.level).sort();
          // What a round planned after the arrivals dispatches.
          const fresh = setup(tokens);
          fresh.add('w', 'default', 8);
          let n = 0;
          for (const j of [...before, ...during])
            fresh.state.apply(fresh.stream.submit(`j${n++}`, { priority: j.p, tenant: j.tenant }), true);
          const expected = levels(planned(fresh.state));
          // A round planned before them, which gives back what they outrank, and the round planned at once after.
          const { state, add, stream } = setup(tokens);
          add('w', 'default', 8);
          n = 0;
          for (const j of before) state.apply(stream.submit(`j${n++}`, { priority: j.p, tenant: j.tenant }), true);
          const round = planned(state);
          expect(outranked(state, round)).toEqual([]);
          for (const j of during) state.apply(stream.submit(`j${n++}`, { priority: j.p, tenant: j.tenant }), true);
          const back = outranked(state, round);
          // Worst first, each one a decision of the round.
          expect(back.every((d) => round.includes(d))).toBe(true);
          for (let i = 1; i < back.length; i++)
            expect(back[i - 1]!.candidate.level).toBeGreaterThanOrEqual(back[i]!.candidate.level);
          for (const d of back) expect(state.requeue(d.candidate.entry.id)).toBe(true);
          const kept = round.filter((d) => !back.includes(d));
          expect(levels([...kept, ...planned(state)])).toEqual(expected);
        },
      ),
      { numRuns: 300 },
    );
  });
});
