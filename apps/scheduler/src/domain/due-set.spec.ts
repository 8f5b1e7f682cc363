import fc from 'fast-check';
import { newId } from '@gantry/contracts';
import { DueSet } from './due-set';

/** The model: a plain map; the earliest due time is its minimum. */
function check(set: DueSet, model: Map<string, number>): void {
  expect(set.size).toBe(model.size);
  expect(set.peek()).toBe(model.size ? Math.min(...model.values()) : undefined);
  for (const [id, at] of model) expect(set.get(id)).toBe(at);
  expect(new Map([...set])).toEqual(model);
}

describe('DueSet', () => {
  it('keeps due times by id, earliest first, with exact removal', () => {
    const set = new DueSet();
    const ids = Array.from({ length: 5 }, () => newId());
    ids.forEach((id, i) => set.set(id, 100 - i * 10));
    expect(set.peek()).toBe(60);
    expect(set.delete(ids[4]!)).toBe(true);
    expect(set.delete(ids[4]!)).toBe(false);
    expect(set.peek()).toBe(70);
    set.set(ids[0]!, 5);
    expect(set.peek()).toBe(5);
    expect(set.has(ids[0]!)).toBe(true);
    expect(set.has('nope')).toBe(false);
    expect(set.get('nope')).toBeUndefined();
  });

  it('hands out what is due, moving it to `until` until it is deleted', () => {
    const set = new DueSet();
    set.set('a-job-with-an-odd-id', 10);
    const ulid = newId();
    set.set(ulid, 20);
    set.set(newId(), 30);
    expect(set.takeDue(25, 1_000).sort()).toEqual(['a-job-with-an-odd-id', ulid].sort());
    expect(set.takeDue(25, 1_000)).toEqual([]);
    expect(set.peek()).toBe(30);
    set.delete(ulid);
    expect(set.takeDue(1_000, 2_000)).toHaveLength(2);
  });

  it('matches a map under any sequence of sets and deletes (inline and odd ids, hash collisions, growth)', () => {
    const pool = [...Array.from({ length: 150 }, () => newId()), ...Array.from({ length: 20 }, (_, i) => `odd-${i}`)];
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({
              op: fc.constant('set' as const),
              id: fc.nat(pool.length - 1),
              at: fc.integer({ min: 0, max: 50 }),
            }),
            fc.record({ op: fc.constant('delete' as const), id: fc.nat(pool.length - 1) }),
            fc.record({ op: fc.constant('take' as const), now: fc.integer({ min: 0, max: 50 }) }),
          ),
          { maxLength: 600 },
        ),
        (ops) => {
          const set = new DueSet();
          const model = new Map<string, number>();
          for (const o of ops) {
            if (o.op === 'set') {
              set.set(pool[o.id]!, o.at);
              model.set(pool[o.id]!, o.at);
            } else if (o.op === 'delete') {
              expect(set.delete(pool[o.id]!)).toBe(model.delete(pool[o.id]!));
            } else {
              const due = [...model].filter(([, at]) => at <= o.now).map(([id]) => id);
              expect(set.takeDue(o.now, 100).sort()).toEqual(due.sort());
              for (const id of due) model.set(id, 100);
            }
          }
          check(set, model);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('holds a job in about 60 bytes of typed arrays', () => {
    const set = new DueSet();
    const N = 100_000;
    for (let i = 0; i < N; i++) set.set(newId(), Date.now() + (i % 1_000));
    expect(set.size).toBe(N);
    expect(set.arrayBytes / N).toBeLessThan(90);
    expect(set.takeDue(Date.now() + 1_000, Date.now() + 10_000)).toHaveLength(N);
  });
});
