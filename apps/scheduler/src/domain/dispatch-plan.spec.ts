import fc from 'fast-check';
import type { GpuInfo, Priority } from '@gantry/contracts';
import { FakeJobsStream } from '../../test/fake-jobs-stream';
import { planDispatch } from './dispatch-plan';
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
