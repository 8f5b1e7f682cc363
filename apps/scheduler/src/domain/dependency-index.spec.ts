import fc from 'fast-check';
import {
  completeAttempt,
  dependencyFailed,
  failAttempt,
  jobError,
  newJob,
  normalizeRecord,
  releaseWaiting,
  requestCancel,
  startAttempt,
  toEvent,
  type JobStatus,
  type StoredJob,
  type Transition,
} from '@gantry/contracts';
import { DependencyIndex, decide } from './dependency-index';
import { noopSpec } from '@gantry/testing';

type Outcome = 'completed' | 'failed' | 'cancelled';
const t0 = Date.parse('2026-01-01T00:00:00Z');

/** Deterministic choices from a seed (mulberry32). */
function rng(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

/**
 * A scheduler in miniature over a record store: jobs are submitted in order (parents before children), revisions are
 * applied to the index as the projection would, and the "leader" evaluates the children the index names, reading
 * unknown parents from the store — in an order drawn at random, with takeovers (a fresh index rebuilt from the
 * current records, every waiting job re-evaluated) at random moments.
 */
class World {
  readonly store = new Map<string, StoredJob>();
  index = new DependencyIndex();
  readonly dirty = new Set<string>();
  readonly queued: string[] = [];
  private rev = 0;
  private tick = 0;
  readonly terminals = new Map<string, number>();

  now(): Date {
    return new Date(t0 + 1000 * this.tick++);
  }

  write(t: Transition): void {
    this.rev++;
    const record = normalizeRecord(t.record, this.store.get(t.record.id)?.record.createSeq ?? this.rev);
    const s: StoredJob = { record, revision: this.rev, event: { ...toEvent(t, this.now()), job: record } };
    this.store.set(record.id, s);
    if (['completed', 'failed', 'cancelled'].includes(record.status))
      this.terminals.set(record.id, (this.terminals.get(record.id) ?? 0) + 1);
    for (const c of this.index.apply(s)) this.dirty.add(c);
    if (record.status === 'queued') this.queued.push(record.id);
  }

  submit(id: string, parents: string[]): void {
    this.write(
      newJob(noopSpec(id, { retryDelaysMs: [0], ...(parents.length ? { dependsOn: parents } : {}) }), this.now()),
    );
  }

  evaluate(id: string): void {
    const c = this.index.get(id);
    if (!c) return;
    let v = decide(c.parents, (p) => this.index.stateOf(p));
    if (v.kind === 'unknown') {
      for (const p of v.parents) {
        const s = this.store.get(p);
        this.index.learn(p, s ? { status: s.record.status, revision: s.revision } : { status: 'missing', revision: 0 });
      }
      v = decide(c.parents, (p) => this.index.stateOf(p));
    }
    const cur = this.store.get(id)!.record;
    if (v.kind === 'release') this.write(releaseWaiting(cur, this.now()));
    else if (v.kind === 'fail') this.write(dependencyFailed(cur, this.now(), v.parentId, v.status as 'failed'));
  }

  run(id: string, outcome: Outcome): void {
    const cur = this.store.get(id)!.record;
    if (outcome === 'cancelled') return this.write(requestCancel(cur, this.now()));
    const owner = { workerId: 'w', generation: cur.generation, attempt: cur.attempts + 1 };
    this.write(startAttempt(cur, owner, { gpus: [], gpuIndices: [] }, this.now()));
    const running = this.store.get(id)!.record;
    this.write(
      outcome === 'completed'
        ? completeAttempt(running, owner, {}, this.now())
        : failAttempt(running, owner, jobError('EXIT_CODE', 'exit 1', false), this.now()),
    );
  }

  /** A new leader: the index rebuilt from the current records (in any order), every waiting job re-evaluated. */
  takeOver(order: (n: number) => number): void {
    this.index = new DependencyIndex();
    const all = [...this.store.values()];
    for (let i = all.length - 1; i > 0; i--) {
      const j = order(i + 1);
      [all[i], all[j]] = [all[j]!, all[i]!];
    }
    this.dirty.clear();
    for (const s of all) this.index.apply(s);
    for (const id of this.index.ids()) this.dirty.add(id);
  }
}

/** The brute-force model: a job runs (to its own outcome) iff every parent completed; else it is dependency-failed. */
function expected(jobs: { parents: number[]; outcome: Outcome }[]): { status: JobStatus; depFailed: boolean }[] {
  const out: { status: JobStatus; depFailed: boolean }[] = [];
  jobs.forEach((j) => {
    const ok = j.parents.every((p) => out[p]!.status === 'completed');
    out.push(ok ? { status: j.outcome, depFailed: false } : { status: 'cancelled', depFailed: true });
  });
  return out;
}

describe('DependencyIndex', () => {
  it('decides: the first failed / cancelled / missing parent fails, all completed releases, else waits', () => {
    const st = (status: JobStatus | 'missing') => ({ status, revision: 1 });
    const states: Record<string, ReturnType<typeof st>> = { a: st('completed'), b: st('running'), c: st('failed') };
    const of = (id: string) => states[id];
    expect(decide(['a'], of)).toEqual({ kind: 'release' });
    expect(decide(['a', 'b'], of)).toEqual({ kind: 'wait' });
    expect(decide(['b', 'c'], of)).toEqual({ kind: 'fail', parentId: 'c', status: 'failed' });
    expect(decide(['a', 'x', 'c'], of)).toEqual({ kind: 'fail', parentId: 'c', status: 'failed' });
    expect(decide(['a', 'x'], of)).toEqual({ kind: 'unknown', parents: ['x'] });
    states['b'] = st('retrying');
    expect(decide(['b'], of)).toEqual({ kind: 'wait' });
    states['b'] = st('missing');
    expect(decide(['a', 'b'], of)).toEqual({ kind: 'fail', parentId: 'b', status: 'missing' });
  });

  it('keeps parent → waiting children edges and per-tenant / per-pool counts, dropping them when the child leaves', () => {
    const w = new World();
    w.submit('p', []);
    w.submit('c1', ['p']);
    w.submit('c2', ['p', 'p']);
    expect(w.index.size).toBe(2);
    expect(w.index.childrenCount('p')).toBe(2);
    expect(w.index.get('c2')!.parents).toEqual(['p']);
    expect([...w.index.tenantCounts()]).toEqual([['t', 2]]);
    expect([...w.index.poolCounts()]).toEqual([['default', 2]]);
    w.dirty.clear();
    w.run('p', 'completed');
    expect([...w.dirty].sort()).toEqual(['c1', 'c2']);
    w.evaluate('c1');
    w.write(requestCancel(w.store.get('c2')!.record, w.now()));
    expect(w.index.size).toBe(0);
    expect(w.index.parentCount).toBe(0);
    expect(w.index.tenantCounts().size).toBe(0);
    expect(w.store.get('c1')!.record.status).toBe('queued');
  });

  it("names a parent's children in the order they started waiting, also after some left from the middle", () => {
    const w = new World();
    w.submit('p', []);
    w.submit('q', []);
    for (const c of ['c1', 'c2', 'c3', 'c4', 'c5']) w.submit(c, c === 'c3' ? ['q', 'p'] : ['p']);
    // c2 (in the middle) and c5 (the last) leave; c6 joins after.
    w.write(requestCancel(w.store.get('c2')!.record, w.now()));
    w.write(requestCancel(w.store.get('c5')!.record, w.now()));
    w.submit('c6', ['p']);
    expect(w.index.childrenCount('p')).toBe(4);
    expect(w.index.get('c3')!.parents).toEqual(['q', 'p']);
    w.dirty.clear();
    w.run('p', 'completed');
    expect([...w.dirty]).toEqual(['c1', 'c3', 'c4', 'c6']);
    // The ended parent's trace context is kept for the children's links; a parent still running has none.
    expect(w.index.stateOf('p')).toMatchObject({ status: 'completed' });
    expect(w.index.stateOf('q')?.traceparent).toBeUndefined();
  });

  it('keeps the trace context of a parent once it ended, and drops the parent with its last child', () => {
    const index = new DependencyIndex();
    const at = '2026-01-01T00:00:00.000Z';
    const rev = (id: string, status: JobStatus, revision: number, extra: Record<string, unknown> = {}): StoredJob =>
      ({
        record: { id, status, tenant: 't', pool: 'default', updatedAt: at, ...extra },
        revision,
        event: { type: `job.${status}` },
      }) as unknown as StoredJob;
    const tp = `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01`;
    index.apply(rev('c', 'waiting', 2, { dependsOn: ['p'] }));
    index.apply(rev('p', 'running', 3, { traceparent: tp }));
    expect(index.stateOf('p')).toEqual({ status: 'running', revision: 3 });
    expect(index.apply(rev('p', 'completed', 4, { traceparent: tp }))).toEqual(['c']);
    expect(index.stateOf('p')).toEqual({ status: 'completed', revision: 4, traceparent: tp });
    index.apply(rev('c', 'queued', 5, { dependsOn: ['p'] }));
    expect(index.parentCount).toBe(0);
    expect(index.stateOf('p')).toBeUndefined();
  });

  it('never lets a parent state read from the store override a newer revision the projection applied', () => {
    const w = new World();
    w.submit('p', []);
    w.submit('c', ['p']);
    w.run('p', 'completed');
    const seen = w.index.stateOf('p')!;
    expect(seen.status).toBe('completed');
    w.index.learn('p', { status: 'queued', revision: seen.revision - 1 });
    w.index.learn('p', { status: 'missing', revision: 0 });
    expect(w.index.stateOf('p')).toEqual(seen);
  });

  // Short ids (kept beside the typed arrays) and ULID-sized ones (kept inline): both paths of the compact index.
  it.each([
    ['short ids', (i: number) => `j${i}`],
    ['26-character ids', (i: number) => `j${String(i).padStart(25, '0')}`],
  ])('matches the brute-force model on random DAGs, outcomes, evaluation orders and takeovers (%s)', (_, idOf) => {
    const job = fc.record({
      parents: fc.array(fc.nat(), { maxLength: 4 }),
      outcome: fc.constantFrom<Outcome>('completed', 'completed', 'failed', 'cancelled'),
    });
    fc.assert(
      fc.property(fc.array(job, { minLength: 1, maxLength: 16 }), fc.integer(), (raw, seed) => {
        const jobs = raw.map((j, i) => ({
          outcome: j.outcome,
          parents: i === 0 ? [] : [...new Set(j.parents.map((p) => p % i))],
        }));
        const want = expected(jobs);
        const pick = rng(seed);
        const w = new World();
        let submitted = 0;
        let takeovers = 0;
        for (let steps = 0; steps < 10_000; steps++) {
          const can: (() => void)[] = [];
          if (submitted < jobs.length)
            can.push(() => {
              w.submit(idOf(submitted), jobs[submitted]!.parents.map(idOf));
              submitted++;
            });
          if (w.dirty.size > 0)
            can.push(() => {
              const ids = [...w.dirty];
              const id = ids[pick(ids.length)]!;
              w.dirty.delete(id);
              w.evaluate(id);
            });
          if (w.queued.length > 0)
            can.push(() => {
              const [id] = w.queued.splice(pick(w.queued.length), 1);
              w.run(id!, jobs[Number(id!.slice(1))]!.outcome);
            });
          if (can.length === 0) break;
          if (takeovers < 3 && pick(20) === 0) {
            takeovers++;
            w.takeOver(pick);
          }
          can[pick(can.length)]!();
        }
        jobs.forEach((_, i) => {
          const r = w.store.get(idOf(i))!.record;
          expect({ id: i, status: r.status }).toEqual({ id: i, status: want[i]!.status });
          expect(r.error?.code === 'DEPENDENCY_FAILED').toBe(want[i]!.depFailed);
          if (want[i]!.depFailed) {
            // It names a parent that really ended failed or cancelled.
            const named = /dependency (j\d+) ended (failed|cancelled)/.exec(r.error!.message);
            expect(named).not.toBeNull();
            expect(jobs[i]!.parents.map(idOf)).toContain(named![1]);
            expect(w.store.get(named![1]!)!.record.status).toBe(named![2]);
          }
          expect(w.terminals.get(idOf(i))).toBe(1);
        });
        expect(w.index.size).toBe(0);
      }),
      { numRuns: 300 },
    );
  });
});
