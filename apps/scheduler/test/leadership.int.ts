/**
 * Leadership against a real nats-server: the KV lease elects one leader and hands over when it stops or dies, and the
 * fence makes a deposed leader's next dispatch fail while its successor adopts what it had dispatched.
 */
import {
  BUCKETS,
  LEADER_KEY,
  STREAMS,
  SUBJECTS,
  bucketDeclarations,
  newJob,
  streamDeclarations,
  systemClock,
  DEFAULT_TOPOLOGY,
  type DispatchMessage,
  type StoredJob,
} from '@gantry/contracts';
import { NatsHandle, provision } from '@gantry/jetstream';
import { JobStore } from '@gantry/job-store';
import { NatsServer, waitFor, noopSpec } from '@gantry/testing';
import { createLogger, createRegistry } from '@gantry/telemetry';
import { Dispatcher } from '../src/dispatch/dispatcher';
import { SchedulerState } from '../src/domain/scheduler-state';
import { LeaderElection } from '../src/leader/leader-election';
import { SchedulerMetrics } from '../src/stats/metrics';

const logger = createLogger('leadership-test', 'silent');
const LEASE_MS = 1_000;

describe('scheduler leadership (real nats-server)', () => {
  let server: NatsServer;
  const handles: NatsHandle[] = [];

  const connect = async (name: string) => {
    const h = await NatsHandle.connect({ servers: [server.url], name, logger });
    handles.push(h);
    return h;
  };

  beforeAll(async () => {
    server = await NatsServer.start();
    const h = await connect('setup');
    const topology = { ...DEFAULT_TOPOLOGY, leaderLeaseMs: LEASE_MS };
    const s = streamDeclarations(topology);
    const b = bucketDeclarations(topology);
    await provision(h, { streams: [s.jobs, s.dispatch], buckets: [b.leader] }, logger);
  });

  const elections: LeaderElection[] = [];

  afterAll(async () => {
    for (const e of elections) await e.stop().catch(() => undefined);
    for (const h of handles) if (!h.nc.isClosed()) await h.drain().catch(() => undefined);
    await server?.dispose();
  });

  it('elects exactly one leader, hands over at once on a graceful stop and within the lease when one dies', async () => {
    const events: string[] = [];
    const election = async (name: string) => {
      const h = await connect(name);
      const e = new LeaderElection(
        h,
        name,
        LEASE_MS,
        { onElected: (epoch) => void events.push(`${name}+${epoch}`), onDeposed: () => void events.push(`${name}-`) },
        logger,
      );
      elections.push(e);
      await e.start();
      return { e, h };
    };
    const a = await election('a');
    const b = await election('b');
    await waitFor(() => a.e.isLeader || b.e.isLeader, { what: 'a leader' });
    const [first, second] = a.e.isLeader ? [a, b] : [b, a];
    expect(second.e.isLeader).toBe(false);
    const firstEpoch = first.e.epoch;

    const stoppedAt = Date.now();
    await first.e.stop();
    await waitFor(() => second.e.isLeader, { what: 'the standby to take over', timeoutMs: 5_000 });
    // A graceful stop deletes the lease: no need to wait for it to expire.
    expect(Date.now() - stoppedAt).toBeLessThan(LEASE_MS);
    expect(second.e.epoch).toBeGreaterThan(firstEpoch);
    expect(await second.e.verify()).toBe(true);

    // A third replica; then the leader's connection dies without a word (like kill -9).
    const c = await election('c');
    const secondEpoch = second.e.epoch;
    const diedAt = Date.now();
    await second.h.nc.close();
    await waitFor(() => c.e.isLeader, { what: 'the third replica to take over', timeoutMs: 10_000 });
    expect(Date.now() - diedAt).toBeLessThan(LEASE_MS * 4);
    expect(c.e.epoch).toBeGreaterThan(secondEpoch);
    const kv = await handles[0]!.kvm.open(BUCKETS.leader);
    expect((await kv.get(LEADER_KEY))?.revision).toBe(c.e.epoch);
    await c.e.stop();
    expect(events.filter((x) => x.includes('+'))).toHaveLength(3);
  });

  it('fences a deposed leader: its next dispatch fails and the new leader adopts its outstanding dispatches', async () => {
    const h = await connect('fence-setup');
    const jobs = new JobStore(h, systemClock);
    const stored: StoredJob[] = [];
    for (const id of ['fjob1', 'fjob2', 'fjob3']) {
      stored.push(await jobs.create(newJob(noopSpec(id, { maxAttempts: 3, retryDelaysMs: [1_000] }), new Date())));
    }
    const replica = async (name: string) => {
      const nats = await connect(name);
      const state = new SchedulerState(10, undefined);
      for (const s of stored) state.apply(s, false);
      state.capacity.upsertWorker({ id: 'w1', pool: 'default', slots: 1, slotsPerGpu: 1, gpus: [], draining: false });
      state.capacity.setReady('w1', true);
      const fenced: string[] = [];
      const dispatcher = new Dispatcher(
        nats,
        new JobStore(nats, systemClock),
        state,
        systemClock,
        { agingMs: 0, batch: 16 },
        new SchedulerMetrics(
          createRegistry(name),
          state,
          () => true,
          () => ({ maxQueueSize: 1 }),
        ),
        logger,
        (reason) => void fenced.push(reason),
      );
      return { state, dispatcher, fenced };
    };

    const a = await replica('leader-a');
    await a.dispatcher.activate(1, async () => undefined);
    await waitFor(() => a.state.holdings.get('fjob1')?.dispatchSeq, { what: 'the first dispatch' });

    const b = await replica('leader-b');
    await b.dispatcher.activate(2, async () => undefined);
    // B adopted A's dispatch as a held token (the job is not queued in B any more).
    expect(b.state.holdings.get('fjob1')).toMatchObject({ state: 'dispatched', workerId: 'w1', attempt: 1 });
    expect(b.state.index.size).toBe(2);
    expect(b.state.capacity.used).toBe(1);

    // A, unaware, sees a free slot and dispatches again: the fence makes that publish fail.
    a.state.capacity.upsertWorker({ id: 'w2', pool: 'default', slots: 1, slotsPerGpu: 1, gpus: [], draining: false });
    a.state.capacity.setReady('w2', true);
    a.dispatcher.workersChanged();
    await waitFor(() => a.fenced.length > 0, { what: 'the deposed leader to be fenced' });
    expect(a.fenced[0]).toMatch(/fenced/);
    expect(a.dispatcher.active).toBe(false);
    // What it had decided is queued again in its own view; nothing of it reached the stream.
    expect(a.state.holdings.has('fjob2')).toBe(false);
    expect(a.state.index.size).toBe(2);

    const inStream = async () => {
      const out: DispatchMessage[] = [];
      for (let seq = 1; ;) {
        const m = await h.jsm.direct
          .getMessage(STREAMS.dispatch, { next_by_subj: SUBJECTS.dispatchAll, seq })
          .catch(() => null);
        if (!m) return out;
        seq = m.seq + 1;
        if (m.subject !== SUBJECTS.dispatchFence) out.push(m.json<DispatchMessage>());
      }
    };
    expect((await inStream()).map((d) => [d.jobId, d.epoch])).toEqual([['fjob1', 1]]);

    // The new leader dispatches on its own expected sequence.
    b.state.capacity.upsertWorker({ id: 'w2', pool: 'default', slots: 1, slotsPerGpu: 1, gpus: [], draining: false });
    b.state.capacity.setReady('w2', true);
    b.dispatcher.workersChanged();
    await waitFor(() => b.state.holdings.get('fjob2')?.dispatchSeq, { what: "the new leader's dispatch" });
    expect((await inStream()).map((d) => [d.jobId, d.epoch, d.workerId])).toEqual([
      ['fjob1', 1, 'w1'],
      ['fjob2', 2, 'w2'],
    ]);
    expect(b.fenced).toEqual([]);
  });
});
