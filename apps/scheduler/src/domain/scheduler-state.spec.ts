import { FakeJobsStream } from '../../test/fake-jobs-stream';
import { reprioritize, requestCancel, type GpuInfo } from '@gantry/contracts';
import { SchedulerState } from './scheduler-state';

const gpus: GpuInfo[] = [{ index: 0, uuid: 'GPU-0', name: 'Fake', memoryTotalMb: 24_000 }];

function setup(max = 4, tenantCap?: number) {
  const hooks = {
    work: 0,
    retries: [] as [string, number][],
    workers: [] as string[],
    terminal: [] as string[],
    started: [] as string[],
  };
  const state = new SchedulerState(max, tenantCap, {
    onWorkAvailable: () => hooks.work++,
    onRetryScheduled: (id, at) => hooks.retries.push([id, at]),
    onWorkerReferenced: (w) => hooks.workers.push(w),
    onTerminal: (s) => hooks.terminal.push(s.record.id),
    onStarted: (s) => hooks.started.push(s.record.id),
  });
  state.capacity.upsertWorker({ id: 'w1', pool: 'default', slots: 2, slotsPerGpu: 2, gpus, draining: false });
  state.capacity.setReady('w1', true);
  return { state, hooks, stream: new FakeJobsStream() };
}

/** Dispatches the best job of the pool to w1, as the leader would. */
function dispatch(state: SchedulerState, pool = 'default') {
  const c = state.index.best(pool, 0, 0);
  if (!c) throw new Error('nothing to dispatch');
  return state.hold(c, { workerId: 'w1', gpuIndices: [0], memoryMb: 0 }, 0);
}

describe('SchedulerState (projection of the jobs stream)', () => {
  it('follows one job through dispatch, start, retry, re-queue at its place and completion, holding one token', () => {
    const { state, hooks, stream } = setup();
    state.apply(stream.submit('a'), true);
    state.apply(stream.submit('b'), true);
    expect(state.index.size).toBe(2);
    expect(state.depth()).toMatchObject({ total: 2, byLevel: [0, 0, 2, 0] });

    const h = dispatch(state);
    expect(h).toMatchObject({ state: 'dispatched', attempt: 1, generation: 1, workerId: 'w1' });
    expect(state.capacity.used).toBe(1);
    // Dispatched but not started: still counted as queued.
    expect(state.depth().total).toBe(2);

    state.apply(stream.start('a', 'w1', [0]), true);
    expect(state.holdings.get('a')?.state).toBe('running');
    expect(state.capacity.used).toBe(1);
    expect(state.runningCount()).toBe(1);

    stream.now += 2_000;
    state.apply(stream.fail('a'), true);
    expect(state.capacity.used).toBe(0);
    expect(state.holdings.has('a')).toBe(false);
    expect(state.retrying.get('a')).toBe(stream.now + 1_000);
    expect(hooks.retries).toEqual([['a', stream.now + 1_000]]);
    expect(state.counters.retried).toBe(1);

    stream.now += 1_000;
    state.apply(stream.requeue('a'), true);
    expect(state.retrying.size).toBe(0);
    // Back at its original place: ahead of b, which was submitted after it.
    expect(state.index.best('default', 0, 0)?.entry.id).toBe('a');
    expect(state.index.best('default', 0, 0)?.entry.attempts).toBe(1);

    const again = dispatch(state);
    expect(again.attempt).toBe(2);
    state.apply(stream.start('a', 'w1', [0]), true);
    stream.now += 3_000;
    state.apply(stream.complete('a'), true);
    expect(state.capacity.used).toBe(0);
    expect(state.counters.completed).toBe(1);
    expect(hooks.terminal).toEqual(['a']);
    expect(state.durations.mean('default')).toBe(3);
    expect(state.index.size).toBe(1);
  });

  it('treats an attempt recorded by its outcome alone like a started one: token released, start counted', () => {
    const { state, hooks, stream } = setup();
    state.apply(stream.submit('a'), true);
    state.apply(stream.submit('b', { maxAttempts: 3 }), true);
    stream.now += 4_000;
    dispatch(state);
    dispatch(state);
    expect(state.capacity.used).toBe(2);

    // a: dispatched, then straight to completed (no running revision): the dispatch's token is released.
    stream.now += 500;
    state.apply(stream.startAndEnd('a', 'w1', { gpuIndices: [0], runMs: 100 }), true);
    expect(state.holdings.has('a')).toBe(false);
    expect(state.counters.completed).toBe(1);
    expect(hooks.terminal).toEqual(['a']);
    expect(hooks.started).toEqual(['a']);
    // Waited from acceptance to its start (4.4 s), ran 0.1 s.
    expect(state.counters.waitCount).toBe(1);
    expect(state.counters.waitSecondsSum).toBeCloseTo(4.4, 5);
    expect(state.durations.mean('default')).toBeCloseTo(0.1, 5);

    // b: dispatched, straight to retrying; then re-queued at its place and dispatched as attempt 2.
    state.apply(stream.startAndEnd('b', 'w1', { outcome: 'fail' }), true);
    expect(state.holdings.has('b')).toBe(false);
    expect(state.capacity.used).toBe(0);
    expect(state.counters.retried).toBe(1);
    expect(hooks.started).toEqual(['a', 'b']);
    stream.now += 1_000;
    state.apply(stream.requeue('b'), true);
    expect(dispatch(state).attempt).toBe(2);
    // Replayed (not live): nothing counted again.
    const replay = setup();
    replay.state.apply(stream.submit('c'), false);
    dispatch(replay.state);
    replay.state.apply(stream.startAndEnd('c', 'w1'), false);
    expect(replay.state.counters.waitCount).toBe(0);
    expect(replay.state.capacity.used).toBe(0);
  });

  it('keeps a dispatch through a priority change, and moves a queued job to its new level keeping its order', () => {
    const { state, stream } = setup();
    state.apply(stream.submit('a'), true);
    state.apply(stream.submit('b', { priority: 'low' }), true);
    state.apply(stream.submit('c', { priority: 'high' }), true);
    dispatch(state); // c (high)
    state.apply(stream.reprioritize('c', 'urgent'), true);
    expect(state.holdings.get('c')).toMatchObject({ state: 'dispatched', level: 0 });
    expect(state.capacity.used).toBe(1);
    state.apply(stream.reprioritize('b', 'high'), true);
    expect(state.index.best('default', 0, 0)?.entry.id).toBe('b');
    state.apply(stream.reprioritize('a', 'high'), true);
    // a was submitted before b: FIFO at the new level follows submission order.
    expect(state.index.best('default', 0, 0)?.entry.id).toBe('a');
    expect(state.depth().byLevel).toEqual([1, 2, 0, 0]);
  });

  it('releases the token when a worker hands an attempt back, and the job keeps its place', () => {
    const { state, stream } = setup();
    state.apply(stream.submit('a'), true);
    state.apply(stream.submit('b'), true);
    dispatch(state);
    state.apply(stream.start('a', 'w1'), true);
    state.apply(stream.handBack('a'), true);
    expect(state.capacity.used).toBe(0);
    expect(state.index.best('default', 0, 0)?.entry).toMatchObject({ id: 'a', attempts: 0 });
  });

  it('moves the token to where the record says a job runs (the record wins over a dispatch)', () => {
    const { state, stream } = setup();
    state.capacity.upsertWorker({ id: 'w2', pool: 'default', slots: 1, slotsPerGpu: 1, gpus: [], draining: false });
    state.apply(stream.submit('a'), true);
    dispatch(state);
    state.apply(stream.start('a', 'w2'), true);
    expect(state.capacity.worker('w1')!.used).toBe(0);
    expect(state.capacity.worker('w2')!.used).toBe(1);
    expect(state.capacity.used).toBe(1);
  });

  it('starts a new generation at the tail on an admin retry of a failed job', () => {
    const { state, stream } = setup();
    state.apply(stream.submit('a', { maxAttempts: 1 }), true);
    state.apply(stream.submit('b'), true);
    dispatch(state);
    state.apply(stream.start('a', 'w1'), true);
    state.apply(stream.fail('a'), true);
    expect(state.counters.failed).toBe(1);
    expect(state.index.size).toBe(1);
    state.apply(stream.adminRetry('a'), true);
    const order = [...state.index.all()].map((q) => q.entry);
    expect(order.map((e) => e.id)).toEqual(['b', 'a']);
    expect(order[1]).toMatchObject({ generation: 2, attempts: 0 });
  });

  it('gives a dispatched job back its place (requeue) and ignores revisions it has already applied', () => {
    const { state, stream } = setup();
    const a = stream.submit('a');
    state.apply(a, true);
    dispatch(state);
    expect(state.requeue('a')).toBe(true);
    expect(state.requeue('a')).toBe(false);
    expect(state.capacity.used).toBe(0);
    expect(state.index.size).toBe(1);
    state.apply(a, true);
    expect(state.index.size).toBe(1);
  });

  it('rebuilds from a snapshot without counting history, but with measured durations and running tokens', () => {
    const { state, hooks, stream } = setup();
    const revisions = [stream.submit('done'), stream.start('done', 'w1')];
    stream.now += 4_000;
    revisions.push(stream.complete('done'), stream.submit('q'), stream.submit('r'), stream.start('r', 'w9'));
    // A snapshot delivers the last revision per job, in stream order.
    const last = new Map(revisions.map((s) => [s.record.id, s]));
    for (const s of [...last.values()].sort((x, y) => x.revision - y.revision)) state.apply(s, false);
    expect(state.counters.completed).toBe(0);
    expect(hooks.terminal).toEqual([]);
    expect(state.durations.mean('default')).toBe(4);
    expect(state.index.size).toBe(1);
    expect(state.capacity.used).toBe(1);
    expect(hooks.workers).toEqual(['w9']);
  });

  it('counts a tenant’s tokens from dispatch to the end of the attempt', () => {
    const { state, stream } = setup(10, 1);
    state.apply(stream.submit('a', { tenant: 'acme' }), true);
    state.apply(stream.submit('b', { tenant: 'acme' }), true);
    dispatch(state);
    expect(state.capacity.tenantBlocked('acme')).toBe(true);
    state.apply(stream.start('a', 'w1'), true);
    expect(state.capacity.tenantBlocked('acme')).toBe(true);
    state.apply(stream.complete('a'), true);
    expect(state.capacity.tenantBlocked('acme')).toBe(false);
  });

  it('counts queued (dispatched included) and retrying jobs per tenant for the stats broadcast', () => {
    const { state, stream } = setup();
    expect(state.tenantDepths()).toEqual({});
    state.apply(stream.submit('a1', { tenant: 'a' }), true);
    state.apply(stream.submit('a2', { tenant: 'a', priority: 'high', pool: 'other' }), true);
    state.apply(stream.submit('b1', { tenant: 'b' }), true);
    expect(state.tenantDepths()).toEqual({ a: 2, b: 1 });
    // a2 is in a pool no worker serves, so a1 (tenant a, default pool) or b1 is dispatched: still counted.
    const h = dispatch(state);
    expect(state.tenantDepths()).toEqual({ a: 2, b: 1 });
    // Started: no longer counted; failed with retries left: counted again while it waits.
    state.apply(stream.start(h.entry.id, 'w1', [0]), true);
    const t = h.tenant;
    expect(state.tenantDepths()[t] ?? 0).toBe(t === 'a' ? 1 : 0);
    state.apply(stream.fail(h.entry.id), true);
    expect(state.tenantDepths()).toEqual({ a: 2, b: 1 });
    stream.now += 1_000;
    state.apply(stream.requeue(h.entry.id), true);
    expect(state.tenantDepths()).toEqual({ a: 2, b: 1 });
    state.apply(stream.store(requestCancel(stream.get('a2'), new Date(stream.now))), true);
    expect(state.tenantDepths()).toEqual({ a: 1, b: 1 });
  });

  it('keeps scheduled jobs out of the queue and the tokens, counts them per tenant and pool, and queues them when due in the order they became due', () => {
    const delays: [string, number][] = [];
    const { stream } = setup();
    const state = new SchedulerState(4, undefined, { onDelayScheduled: (id, at) => delays.push([id, at]) });
    const t0 = stream.now;
    state.apply(stream.submit('late', { runAt: t0 + 60_000, tenant: 't1', pool: 'gpu' }), true);
    state.apply(stream.submit('soon', { runAt: t0 + 1_000, tenant: 't1' }), true);
    state.apply(stream.submit('now'), true);
    expect(state.index.size).toBe(1);
    expect(state.depth().total).toBe(1);
    expect(state.capacity.used).toBe(0);
    expect(new Map(state.scheduled)).toEqual(
      new Map([
        ['late', t0 + 60_000],
        ['soon', t0 + 1_000],
      ]),
    );
    expect(delays).toEqual([
      ['late', t0 + 60_000],
      ['soon', t0 + 1_000],
    ]);
    expect(state.tenantDepths()).toEqual({ t1: 2, default: 1 });
    expect(Object.fromEntries(state.scheduledDepths())).toEqual({ gpu: 1, default: 1 });

    // A priority change keeps it scheduled (and counted once).
    state.apply(stream.store(reprioritize(stream.get('soon'), 'urgent', new Date(stream.now))), true);
    expect(state.scheduled.size).toBe(2);
    expect(state.tenantDepths()).toEqual({ t1: 2, default: 1 });

    stream.now = t0 + 1_000;
    state.apply(stream.due('soon'), true);
    expect(state.scheduled.has('soon')).toBe(false);
    expect(state.index.best('default', 0, 0)?.entry.id).toBe('soon');
    expect(Object.fromEntries(state.scheduledDepths())).toEqual({ gpu: 1 });

    // Cancelled while scheduled: gone from every count, never queued.
    state.apply(stream.store(requestCancel(stream.get('late'), new Date(stream.now))), true);
    expect(state.scheduled.size).toBe(0);
    expect(state.scheduledDepths().size).toBe(0);
    expect(state.tenantDepths()).toEqual({ t1: 1, default: 1 });
    expect(state.index.size).toBe(2);
  });
});
