import fc from 'fast-check';
import { newId } from '@gantry/contracts';
import { ensureLength, IdSlots } from './id-slots';

describe('IdSlots', () => {
  it('keeps ULIDs inline and other ids beside, with stable slots reused after removal', () => {
    const s = new IdSlots();
    const a = newId();
    const b = 'not-a-ulid';
    const sa = s.add(a);
    const sb = s.add(b);
    expect(s.find(a)).toBe(sa);
    expect(s.find(b)).toBe(sb);
    expect(s.idOf(sa)).toBe(a);
    expect(s.idOf(sb)).toBe(b);
    expect(s.find('missing')).toBe(-1);
    s.remove(sa);
    expect(s.find(a)).toBe(-1);
    expect(s.find(b)).toBe(sb);
    // The freed slot is reused; the other keeps its slot.
    const c = newId().toLowerCase();
    expect(s.add(c)).toBe(sa);
    expect(s.idOf(sa)).toBe(c);
    expect([...s.slots()].sort()).toEqual([sa, sb].sort());
    expect(s.size).toBe(2);
  });

  it('matches a Map under random adds and removes through growth and rehashes', () => {
    // A small pool of ids (ULIDs, schedule-style and odd ones) so that adds, removes and re-adds collide often.
    const pool = [
      ...Array.from({ length: 300 }, () => newId()),
      ...Array.from({ length: 100 }, (_, i) => `${newId().toLowerCase()}_${i}`),
      ...Array.from({ length: 100 }, (_, i) => `odd-${i}`),
    ];
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.nat(pool.length - 1)), { maxLength: 2_000 }), (ops) => {
        const s = new IdSlots();
        const model = new Map<string, number>();
        for (const [add, k] of ops) {
          const id = pool[k]!;
          if (add && !model.has(id)) {
            const slot = s.add(id);
            // A slot is never held by two ids at once.
            expect([...model.values()]).not.toContain(slot);
            model.set(id, slot);
          } else if (!add && model.has(id)) {
            s.remove(model.get(id)!);
            model.delete(id);
          }
        }
        expect(s.size).toBe(model.size);
        for (const id of pool) expect(s.find(id)).toBe(model.get(id) ?? -1);
        for (const [id, slot] of model) expect(s.idOf(slot)).toBe(id);
        expect([...s.slots()].sort((x, y) => x - y)).toEqual([...model.values()].sort((x, y) => x - y));
        expect(s.capacity).toBeGreaterThan(Math.max(-1, ...model.values()));
      }),
      { numRuns: 100 },
    );
  });

  it('grows parallel arrays keeping their elements', () => {
    const a = new Int32Array([1, 2, 3]);
    expect(ensureLength(a, 2)).toBe(a);
    const b = ensureLength(a, 10, -1);
    expect(b).toBeInstanceOf(Int32Array);
    expect([...b.subarray(0, 3)]).toEqual([1, 2, 3]);
    expect([...b.subarray(3)].every((x) => x === -1)).toBe(true);
    expect(b.length).toBeGreaterThanOrEqual(10);
  });
});
