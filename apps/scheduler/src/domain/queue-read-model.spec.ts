import type { GpuStatus, WorkerHeartbeat } from '@gantry/contracts';
import { FakeJobsStream } from '../../test/fake-jobs-stream';
import { gpuView, QueueReadModel } from './queue-read-model';
import { SchedulerState } from './scheduler-state';

const gpu: GpuStatus = { index: 0, uuid: 'GPU-0', name: 'Fake', memoryTotalMb: 24_000 };

function heartbeat(id: string, o: Partial<WorkerHeartbeat> = {}): WorkerHeartbeat {
  return {
    v: 1,
    id,
    pool: 'default',
    slots: 2,
    slotsPerGpu: 2,
    gpus: [gpu],
    runningJobs: [],
    inflight: [],
    jobTypes: ['noop'],
    draining: false,
    startedAt: '2030-01-01T00:00:00.000Z',
    heartbeatAt: '2030-01-01T00:00:01.000Z',
    version: 'test',
    ...o,
  };
}

/** A state with one two-slot worker `w1`, read through plain inputs the test changes at will. */
function setup(o: { max?: number; agingMs?: number } = {}) {
  const stream = new FakeJobsStream();
  const state = new SchedulerState(o.max ?? 4, undefined);
  const inputs = {
    config: { paused: false, draining: false, maxQueueSize: 100 },
    workers: [heartbeat('w1')] as WorkerHeartbeat[],
    now: stream.now,
  };
  for (const hb of inputs.workers) {
    state.capacity.upsertWorker(hb);
    state.capacity.setReady(hb.id, true);
  }
  const model = new QueueReadModel(
    state,
    { queueConfig: () => inputs.config, liveWorkers: () => inputs.workers, now: () => inputs.now },
    { agingMs: o.agingMs ?? 60_000, startedAt: stream.now },
  );
  const dispatch = (workerId = 'w1') => {
    const c = state.index.best('default', 0, 0);
    if (!c) throw new Error('nothing to dispatch');
    return state.hold(c, { workerId, gpuIndices: [0], memoryMb: 0 }, 0);
  };
  return { stream, state, inputs, model, dispatch };
}

describe('QueueReadModel', () => {
  it('reports depths by priority, running, retrying, tokens and the config in force', () => {
    const { stream, state, inputs, model, dispatch } = setup();
    state.apply(stream.submit('u', { priority: 'urgent' }), true);
    state.apply(stream.submit('n1'), true);
    state.apply(stream.submit('n2'), true);
    state.apply(stream.submit('l', { priority: 'low' }), true);
    state.apply(stream.submit('r', { maxAttempts: 3 }), true);
    expect(model.queueState().depth).toEqual({ urgent: 1, high: 0, normal: 3, low: 1, total: 5 });

    dispatch(); // u
    state.apply(stream.start('u', 'w1', [0]), true);
    // r: started (the record names w1, so the token follows it), then failed with attempts left → retrying.
    state.apply(stream.start('r', 'w1', [0]), true);
    state.apply(stream.fail('r'), true);
    inputs.config = { paused: true, draining: true, maxQueueSize: 7 };

    expect(model.queueState()).toEqual({
      paused: true,
      draining: true,
      depth: { urgent: 0, high: 0, normal: 2, low: 1, total: 3 },
      running: 1,
      retrying: 1,
      maxConcurrentJobs: 4,
      availableTokens: 3,
      maxQueueSize: 7,
      workers: 1,
      scheduled: 0,
      waiting: 0,
      pools: [
        { pool: 'default', depth: { urgent: 0, high: 0, normal: 2, low: 1, total: 3 }, scheduled: 0, waiting: 0 },
      ],
    });
    expect(model.concurrency()).toEqual({
      maxParallelJobs: 4,
      queueSize: 3,
      activeJobs: 1,
      availableTokens: 3,
      workers: 1,
    });
  });

  it('computes metrics from the counters, the caps and the uptime', () => {
    const { stream, state, inputs, model, dispatch } = setup({ max: 2 });
    for (const id of ['a', 'b', 'c']) state.apply(stream.submit(id, { maxAttempts: 1 }), true);
    dispatch();
    stream.now += 4_000;
    state.apply(stream.start('a', 'w1', [0]), true);
    stream.now += 2_000;
    state.apply(stream.complete('a'), true);
    dispatch();
    state.apply(stream.start('b', 'w1', [0]), true);
    stream.now += 1_000;
    state.apply(stream.fail('b', false), true);
    dispatch();
    inputs.now = stream.now + 3_000;

    const m = model.queueMetrics();
    expect(m).toMatchObject({
      queueLength: 1, // c: dispatched, not started
      activeJobs: 0,
      activeWorkers: 1,
      utilizationPercent: 50, // one token of two held by c
      queueUtilizationPercent: 1, // one of 100
    });
    expect(m.performance).toMatchObject({
      totalJobsProcessed: 2,
      totalJobsFailed: 1,
      totalJobsRetried: 0,
      uptimeSeconds: 10,
    });
    expect(m.performance.averageProcessingSeconds).toBeGreaterThan(0);
    expect(m.performance.averageWaitSeconds).toBeGreaterThan(0);

    inputs.config = { ...inputs.config, maxQueueSize: 3 };
    expect(model.queueMetrics().queueUtilizationPercent).toBe(33.33);
    state.capacity.maxConcurrent = 0;
    expect(model.queueMetrics().utilizationPercent).toBe(0);
  });

  it('answers positions in queue order, 0 for a job holding a token, none for an unknown job, no ETA while paused', () => {
    const { stream, state, inputs, model, dispatch } = setup();
    const a = stream.submit('a');
    const b = stream.submit('b');
    const c = stream.submit('c', { priority: 'urgent' });
    for (const s of [a, b, c]) state.apply(s, true);
    dispatch(); // c
    const ask = (s: typeof a) => ({
      id: s.record.id,
      pool: s.record.pool,
      priority: s.record.priority,
      tenant: s.record.tenant,
      queueSeq: s.record.queueSeq ?? s.revision,
      enqueuedAt: s.record.enqueuedAt,
    });
    const ids = [ask(a), ask(b), ask(c), { ...ask(a), id: 'nope', queueSeq: 999 }];

    const r = model.positions({ ids });
    expect(r.positions['c']).toEqual({ queuePosition: 0, estimatedWaitSeconds: 0 });
    expect(r.positions['a']?.queuePosition).toBe(0);
    expect(r.positions['b']?.queuePosition).toBe(1);
    // No duration measured yet: no estimate.
    expect(r.positions['b']?.estimatedWaitSeconds).toBeNull();
    expect('nope' in r.positions).toBe(false);

    state.durations.observe('default', 10);
    // b: one job ahead, three free tokens on the two-slot worker but one slot free there → waits one mean duration.
    expect(model.positions({ ids }).positions['b']).toEqual({ queuePosition: 1, estimatedWaitSeconds: 10 });

    inputs.config = { ...inputs.config, paused: true };
    const paused = model.positions({ ids }).positions;
    expect(paused['b']).toEqual({ queuePosition: 1, estimatedWaitSeconds: null });
    expect(paused['c']).toEqual({ queuePosition: 0, estimatedWaitSeconds: null });
  });

  it('lists pool depths (dispatched included, empty served pools listed) and live workers sorted by id', () => {
    const { stream, state, inputs, model, dispatch } = setup();
    state.capacity.upsertWorker(heartbeat('w0', { pool: 'idle' }));
    inputs.workers = [heartbeat('w1', { runningJobs: ['x'] }), heartbeat('w0', { pool: 'idle' })];
    state.apply(stream.submit('a'), true);
    state.apply(stream.submit('b'), true);
    state.apply(stream.submit('other', { pool: 'elsewhere' }), true);
    dispatch();
    expect(Object.fromEntries(model.poolDepths())).toEqual({ default: 2, idle: 0, elsewhere: 1 });

    const views = model.workers();
    expect(views.map((w) => w.id)).toEqual(['w0', 'w1']);
    // busy counts the tokens this scheduler holds on the worker, not the worker's own list.
    expect(views[1]).toMatchObject({ pool: 'default', slots: 2, busy: 1, runningJobs: ['x'], draining: false });
    expect(views[1]!.gpus).toEqual([gpuView(gpu)]);
  });

  it('reports queued depth per pool and priority and scheduled jobs per pool, from counters', () => {
    const { stream, state, model, dispatch } = setup();
    state.capacity.upsertWorker(heartbeat('w0', { pool: 'idle' }));
    state.apply(stream.submit('a', { priority: 'high' }), true);
    state.apply(stream.submit('b'), true);
    state.apply(stream.submit('c', { priority: 'low' }), true);
    state.apply(stream.submit('gpu1', { pool: 'gpu', priority: 'urgent' }), true);
    state.apply(stream.submit('later', { pool: 'gpu', runAt: stream.now + 60_000 }), true);
    state.apply(stream.submit('later2', { pool: 'night', runAt: stream.now + 60_000 }), true);
    dispatch(); // a: dispatched, not started → still queued (high) in `default`
    const q = model.queueState();
    expect(q.scheduled).toBe(2);
    expect(q.depth.total).toBe(4);
    expect(q.pools).toEqual([
      { pool: 'default', depth: { urgent: 0, high: 1, normal: 1, low: 1, total: 3 }, scheduled: 0, waiting: 0 },
      { pool: 'gpu', depth: { urgent: 1, high: 0, normal: 0, low: 0, total: 1 }, scheduled: 1, waiting: 0 },
      { pool: 'idle', depth: { urgent: 0, high: 0, normal: 0, low: 0, total: 0 }, scheduled: 0, waiting: 0 },
      { pool: 'night', depth: { urgent: 0, high: 0, normal: 0, low: 0, total: 0 }, scheduled: 1, waiting: 0 },
    ]);
    // The pools add up to the queue's depth.
    expect(q.pools!.reduce((n, p) => n + p.depth.total, 0)).toBe(q.depth.total);

    state.apply(stream.start('a', 'w1', [0]), true);
    stream.now += 60_000;
    state.apply(stream.due('later'), true);
    const after = model.queueState();
    expect(after.scheduled).toBe(1);
    expect(after.pools!.find((p) => p.pool === 'default')!.depth).toEqual({
      urgent: 0,
      high: 0,
      normal: 1,
      low: 1,
      total: 2,
    });
    expect(after.pools!.find((p) => p.pool === 'gpu')).toEqual({
      pool: 'gpu',
      depth: { urgent: 1, high: 0, normal: 1, low: 0, total: 2 },
      scheduled: 0,
      waiting: 0,
    });
  });

  it('learns a default memory request from live workers of the pool, capped by its largest GPU', () => {
    const { inputs, model } = setup();
    expect(model.learnedPeakMb('default', 'noop')).toBeUndefined();
    inputs.workers = [
      heartbeat('w1', { learnedPeaksMb: { noop: 1_000.2, other: 5 } }),
      heartbeat('w2', { learnedPeaksMb: { noop: 3_000 } }),
      heartbeat('w3', { pool: 'elsewhere', learnedPeaksMb: { noop: 9_000 } }),
    ];
    expect(model.learnedPeakMb('default', 'noop')).toBe(3_000);
    inputs.workers = [heartbeat('w1', { learnedPeaksMb: { noop: 99_000 } })];
    expect(model.learnedPeakMb('default', 'noop')).toBe(24_000);
    // A pool with no known GPU gets no default.
    expect(model.learnedPeakMb('elsewhere', 'noop')).toBeUndefined();
  });

  it('shows unknown live GPU figures as null and a cordon with its reason', () => {
    expect(gpuView(gpu)).toEqual({
      index: 0,
      uuid: 'GPU-0',
      name: 'Fake',
      memoryTotalMb: 24_000,
      memoryUsedMb: null,
      memoryFreeMb: null,
      utilizationPercent: null,
      temperatureC: null,
      eccErrors: null,
      xidErrors: 0,
      sampledAt: null,
      mig: false,
      health: 'ok',
    });
    expect(gpuView({ ...gpu, health: 'cordoned', cordonReason: 'xid 79', mig: true })).toMatchObject({
      health: 'cordoned',
      cordonReason: 'xid 79',
      mig: true,
    });
  });
});
