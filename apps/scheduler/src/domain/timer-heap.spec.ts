import fc from 'fast-check';
import { TimerHeap } from './timer-heap';

describe('TimerHeap', () => {
  it('returns due ids in time order and keeps later ones', () => {
    const due = new Map<string, number>();
    const heap = new TimerHeap(due);
    for (const [id, at] of [
      ['c', 30],
      ['a', 10],
      ['b', 20],
      ['d', 40],
    ] as const) {
      due.set(id, at);
      heap.push(at, id);
    }
    expect(heap.peek()).toBe(10);
    expect(heap.takeDue(25)).toEqual(['a', 'b']);
    expect(heap.peek()).toBe(30);
    expect(heap.takeDue(25)).toEqual([]);
  });

  it('drops cancelled and rescheduled entries lazily (the map holds the truth)', () => {
    const due = new Map<string, number>([
      ['a', 10],
      ['b', 20],
    ]);
    const heap = new TimerHeap(due);
    heap.push(10, 'a');
    heap.push(20, 'b');
    due.delete('a');
    due.set('b', 50);
    heap.push(50, 'b');
    expect(heap.peek()).toBe(50);
    expect(heap.takeDue(49)).toEqual([]);
    expect(heap.takeDue(50)).toEqual(['b']);
    expect(heap.peek()).toBeUndefined();
    expect(heap.length).toBe(0);
  });

  it('returns an id pushed twice for the same time once', () => {
    const due = new Map([['a', 5]]);
    const heap = new TimerHeap(due);
    heap.push(5, 'a');
    heap.push(5, 'a');
    expect(heap.takeDue(10)).toEqual(['a']);
  });

  it('agrees with sorting (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat({ max: 1_000 }), fc.nat({ max: 50 })), { maxLength: 300 }),
        fc.nat({ max: 1_000 }),
        (items, now) => {
          const due = new Map<string, number>();
          const heap = new TimerHeap(due);
          for (const [at, k] of items) {
            due.set(`id${k}`, at);
            heap.push(at, `id${k}`);
          }
          const expected = [...due]
            .filter(([, at]) => at <= now)
            .sort((x, y) => x[1] - y[1])
            .map(([id]) => due.get(id)!);
          const got = heap.takeDue(now).map((id) => due.get(id)!);
          expect(got).toEqual(expected);
        },
      ),
    );
  });

  it('rebuilds from the live map, dropping stale entries and keeping the order', () => {
    const due = new Map<string, number>();
    const heap = new TimerHeap(due);
    for (let i = 0; i < 100; i++) {
      due.set(`j${i}`, 1_000 - i);
      heap.push(1_000 - i, `j${i}`);
    }
    for (let i = 0; i < 100; i += 2) due.delete(`j${i}`);
    heap.rebuild();
    expect(heap.length).toBe(50);
    expect(heap.takeDue(950)).toEqual(Array.from({ length: 25 }, (_, k) => `j${99 - 2 * k}`));
    expect(heap.peek()).toBe(951);
  });
});
