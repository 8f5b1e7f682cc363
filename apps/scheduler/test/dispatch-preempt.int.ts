/**
 * A dispatch round that reads its records from the stream (a deep queue: the records of the jobs it dispatches are
 * not cached) gives a token back to an urgent job queued while it read, against a real nats-server: the urgent job is
 * dispatched first, and the normal job it displaced goes back to its place instead of being dispatched ahead of it.
 */
import {
  STREAMS,
  bucketDeclarations,
  newJob,
  streamDeclarations,
  systemClock,
  type DispatchMessage,
  type Priority,
  type StoredJob,
} from '@gantry/contracts';
import { decodeJson } from '@gantry/jetstream';
import { JobStore } from '@gantry/job-store';
import { waitFor } from '@gantry/testing';
import { createLogger, createRegistry } from '@gantry/telemetry';
import { Dispatcher } from '../src/dispatch/dispatcher';
import { SchedulerState } from '../src/domain/scheduler-state';
import { SchedulerMetrics } from '../src/stats/metrics';
import { realNats } from './real-nats';

const logger = createLogger('dispatch-preempt-test', 'silent');

/**
 * The real store; the first read of a normal job's record lets `during` run first (what the projection may apply while
 * a round awaits its reads). A hook on a port we own, not a fake: every read still goes to the stream.
 */
class HookedStore extends JobStore {
  during: (() => void) | undefined;
  override async getMany(
    ids: readonly string[],
    o?: Parameters<JobStore['getMany']>[1],
  ): Promise<Map<string, StoredJob>> {
    const got = await super.getMany(ids, o);
    // (The takeover's adoption of outstanding dispatches reads too: an empty read, not a round's.)
    if (ids.some((id) => id.startsWith('normal'))) {
      const hook = this.during;
      this.during = undefined;
      hook?.();
    }
    return got;
  }
}

describe('dispatch round gives a token back to a higher priority queued during its reads (real nats-server)', () => {
  const real = realNats('preempt', logger, {
    streams: [streamDeclarations().jobs, streamDeclarations().dispatch],
    buckets: [bucketDeclarations().leader],
  });

  it('dispatches the urgent job with the one free token, the normal job stays queued at its place', async () => {
    const { nats } = real;
    const writer = new JobStore(nats, systemClock);
    const create = (id: string, priority: Priority) =>
      writer.create(
        newJob(
          {
            id,
            tenant: 't',
            type: 'noop',
            input: {},
            priority,
            pool: 'default',
            timeoutSeconds: 60,
            maxAttempts: 1,
            retryDelaysMs: [],
            metadata: {},
          },
          new Date(),
        ),
      );
    const normal = [await create('normal0', 'normal'), await create('normal1', 'normal')];
    const urgent = await create('urgent0', 'urgent');

    // One token: whatever the first round publishes holds it.
    const state = new SchedulerState(1, undefined);
    for (const s of normal) state.apply(s, false);
    state.capacity.upsertWorker({ id: 'w1', pool: 'default', slots: 1, slotsPerGpu: 1, gpus: [], draining: false });
    state.capacity.setReady('w1', true);
    const store = new HookedStore(nats, systemClock);
    // While the round reads normal0's record, the projection applies the urgent job's first revision.
    store.during = () => state.apply(urgent, true);
    const fenced: string[] = [];
    const dispatcher = new Dispatcher(
      nats,
      store,
      state,
      systemClock,
      // No record cache: every record is read from the stream, as at depth.
      { agingMs: 0, batch: 16, recordCacheBytes: 0 },
      new SchedulerMetrics(
        createRegistry('preempt'),
        state,
        () => true,
        () => ({ maxQueueSize: 1_000 }),
      ),
      logger,
      (reason) => void fenced.push(reason),
    );
    await dispatcher.activate(1, async () => undefined);

    const first = await waitFor(
      async () => {
        const info = await nats.jsm.streams.info(STREAMS.dispatch);
        if (info.state.messages < 1) return undefined;
        const m = await nats.jsm.streams.getMessage(STREAMS.dispatch, { seq: info.state.last_seq });
        return m ? decodeJson<DispatchMessage>(m.data) : undefined;
      },
      { what: 'a dispatch', timeoutMs: 30_000, intervalMs: 20 },
    );
    expect(first.jobId).toBe('urgent0');
    expect(state.holdings.get('urgent0')?.state).toBe('dispatched');
    // The displaced job is queued again at its place, ahead of normal1: the position of normal0 is 0.
    expect(state.holdings.has('normal0')).toBe(false);
    expect(
      state.index.position('default', 't', 2, normal[0]!.record.queueSeq ?? normal[0]!.revision, Date.now(), 0),
    ).toBe(0);
    expect(
      state.index.position('default', 't', 2, normal[1]!.record.queueSeq ?? normal[1]!.revision, Date.now(), 0),
    ).toBe(1);
    expect((await nats.jsm.streams.info(STREAMS.dispatch)).state.messages).toBe(1);
    expect(fenced).toEqual([]);
    dispatcher.deactivate();
  });
});
