import { createLogger } from '@gantry/telemetry';
import { FakeJobsStream } from '../../test/fake-jobs-stream';
import { SchedulerState } from '../domain/scheduler-state';
import { DispatchReconciler } from './dispatch-reconciler';

const LOST_AFTER = 10_000;

function setup(read: (seq: number) => Promise<unknown>) {
  const state = new SchedulerState(4, undefined);
  state.capacity.upsertWorker({ id: 'w1', pool: 'default', slots: 2, slotsPerGpu: 2, gpus: [], draining: false });
  state.capacity.setReady('w1', true);
  const stream = new FakeJobsStream();
  state.apply(stream.submit('a'), true);
  const c = state.index.best('default', 0, 0)!;
  const h = state.hold(c, { workerId: 'w1', gpuIndices: [], memoryMb: 0 }, 0);
  h.dispatchSeq = 7;
  const clock = { t: LOST_AFTER + 1 };
  const reads: number[] = [];
  const errors: unknown[] = [];
  const r = new DispatchReconciler({
    state,
    readDispatch: (seq) => {
      reads.push(seq);
      return read(seq);
    },
    inFlightOn: () => false,
    lostAfterMs: LOST_AFTER,
    now: () => clock.t,
    logger: createLogger('reconcile-test', 'silent'),
    random: () => 1,
    onReadError: (e) => errors.push(e),
  });
  return { state, r, clock, reads, errors };
}

describe('DispatchReconciler', () => {
  it('a read error is not "dispatch gone": nothing re-queued, no token freed twice, the next try backs off', async () => {
    let answer: () => Promise<unknown> = () => Promise.reject(new Error('TIMEOUT'));
    const { state, r, clock, reads, errors } = setup(() => answer());

    expect(await r.run()).toEqual({ requeued: [], deferred: true });
    expect(errors).toHaveLength(1);
    // Still dispatched, still holding its one token, not back in the queue (no second dispatch of attempt 1).
    expect(state.holdings.get('a')).toMatchObject({ state: 'dispatched', attempt: 1 });
    expect(state.capacity.used).toBe(1);
    expect(state.index.size).toBe(0);

    // Within the backoff the pass does not read at all (bounded retry rate while NATS is in trouble).
    clock.t += 100;
    expect(await r.run()).toEqual({ requeued: [], deferred: true });
    expect(reads).toHaveLength(1);

    // Failing again doubles the wait.
    clock.t += 500;
    expect((await r.run()).deferred).toBe(true);
    expect(reads).toHaveLength(2);
    clock.t += 600;
    await r.run();
    expect(reads).toHaveLength(2); // 1 000 ms now
    clock.t += 500;

    // The message is still there: the worker has it, nothing to do.
    answer = () => Promise.resolve({ seq: 7 });
    expect(await r.run()).toEqual({ requeued: [], deferred: false });
    expect(state.holdings.get('a')?.state).toBe('dispatched');

    // A definite "not found": given back to the queue exactly once, its token freed once.
    answer = () => Promise.resolve(null);
    expect(await r.run()).toEqual({ requeued: ['a'], deferred: false });
    expect(state.capacity.used).toBe(0);
    expect(state.index.size).toBe(1);
    expect(await r.run()).toEqual({ requeued: [], deferred: false });
    expect(state.index.size).toBe(1);
  });

  it('does not re-queue a holding that started while its dispatch was being read', async () => {
    const { state, r } = setup(async () => {
      // The worker's start lands while the read is in flight.
      state.holdings.get('a')!.state = 'running';
      return null;
    });
    expect(await r.run()).toEqual({ requeued: [], deferred: false });
    expect(state.capacity.used).toBe(1);
  });
});
