/** A min-heap of (due time, id) with lazy deletion: the map holds the authoritative due time of each id. */
export class TimerHeap {
  private readonly heap: [number, string][] = [];

  constructor(private readonly due: ReadonlyMap<string, number>) {}

  push(at: number, id: string): void {
    this.heap.push([at, id]);
    let i = this.heap.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.heap[p]![0] <= at) break;
      [this.heap[p], this.heap[i]] = [this.heap[i]!, this.heap[p]!];
      i = p;
    }
  }

  private pop(): [number, string] | undefined {
    const top = this.heap[0];
    const last = this.heap.pop();
    if (!top || !last) return undefined;
    if (this.heap.length > 0) {
      this.heap[0] = last;
      this.siftDown(0);
    }
    return top;
  }

  /** Drops entries whose id is gone or was rescheduled. */
  private clean(): void {
    while (this.heap.length > 0) {
      const [at, id] = this.heap[0]!;
      if (this.due.get(id) === at) return;
      this.pop();
    }
  }

  /** The earliest live due time. */
  peek(): number | undefined {
    this.clean();
    return this.heap[0]?.[0];
  }

  /** Removes and returns every live id due at or before `now`. */
  takeDue(now: number): string[] {
    // An id pushed twice for the same time is returned once.
    const out = new Set<string>();
    for (;;) {
      this.clean();
      const top = this.heap[0];
      if (!top || top[0] > now) return [...out];
      this.pop();
      out.add(top[1]);
    }
  }

  /** Keeps only the live entries (one per waiting id, at its due time), heap-ordered again: O(n). */
  rebuild(): void {
    this.heap.length = 0;
    for (const [id, at] of this.due) this.heap.push([at, id]);
    for (let i = (this.heap.length >> 1) - 1; i >= 0; i--) this.siftDown(i);
  }

  private siftDown(start: number): void {
    let i = start;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < this.heap.length && this.heap[l]![0] < this.heap[m]![0]) m = l;
      if (r < this.heap.length && this.heap[r]![0] < this.heap[m]![0]) m = r;
      if (m === i) return;
      [this.heap[m], this.heap[i]] = [this.heap[i]!, this.heap[m]!];
      i = m;
    }
  }

  get length(): number {
    return this.heap.length;
  }
}
