/**
 * The projection's sync() during a takeover, against a real nats-server: when the projection cannot reach the end of
 * the jobs stream in time it rejects (it used to return silently after 10 s, and the new leader then dispatched with
 * too few running jobs counted), and the elected replica steps down without dispatching.
 */
import {
  DEFAULT_TOPOLOGY,
  SUBJECTS,
  bucketDeclarations,
  newJob,
  priorityLevel,
  streamDeclarations,
  systemClock,
} from '@gantry/contracts';
import { NatsHandle, encodeJson, provision } from '@gantry/jetstream';
import { JobStore } from '@gantry/job-store';
import { NatsServer, waitFor, noopSpec } from '@gantry/testing';
import { createLogger } from '@gantry/telemetry';
import { SchedulerState } from '../src/domain/scheduler-state';
import { LeaderElection } from '../src/leader/leader-election';
import { JobProjection, ProjectionBehindError } from '../src/projection/job-projection';

const logger = createLogger('projection-sync-test', 'silent');
const LEASE_MS = 1_000;

describe('projection sync during a takeover (real nats-server)', () => {
  let server: NatsServer;
  let nats: NatsHandle;
  let jobs: JobStore;

  beforeAll(async () => {
    server = await NatsServer.start();
    nats = await NatsHandle.connect({ servers: [server.url], name: 'projection-sync-test', logger });
    const topology = { ...DEFAULT_TOPOLOGY, leaderLeaseMs: LEASE_MS };
    const s = streamDeclarations(topology);
    await provision(nats, { streams: [s.jobs], buckets: [bucketDeclarations(topology).leader] }, logger);
    jobs = new JobStore(nats, systemClock);
  });
  afterAll(async () => {
    await nats?.drain();
    await server?.dispose();
  });

  const submit = (id: string) => jobs.create(newJob(noopSpec(id), new Date()));

  it('resolves once the live projection has applied the last revision', async () => {
    await submit('first');
    const state = new SchedulerState(4, undefined);
    const projection = new JobProjection(nats, state, logger);
    await projection.start();
    await projection.whenCaughtUp();
    const s = await submit('second');
    await projection.sync(30_000);
    expect(state.lastApplied).toBeGreaterThanOrEqual(s.revision);
    await projection.stop();
  });

  it('skips revisions that break the jobs channel contract, and sync() still reaches the end of the stream', async () => {
    const state = new SchedulerState(4, undefined);
    const projection = new JobProjection(nats, state, logger);
    await projection.start();
    await projection.whenCaughtUp();
    const good = await submit('after-poison');
    const valid = good.event;
    const malformed = [
      new TextEncoder().encode('{"type":'),
      encodeJson({ ...valid, job: { ...valid.job, status: 'exploded' } }),
      encodeJson({ ...valid, job: { ...valid.job, priority: 99 } }),
    ];
    let last = 0;
    for (const data of malformed) last = (await nats.js.publish(SUBJECTS.job('poisoned'), data)).seq;
    // The stream now ends with revisions the projection cannot apply: a takeover's sync() must not wait on them.
    await projection.sync(30_000);
    expect(state.lastApplied).toBe(last);
    const seq = good.record.queueSeq ?? good.revision;
    expect(state.index.has('default', 't', priorityLevel('normal'), seq)).toBe(true);
    await projection.stop();
  });

  it('rejects when the projection stalls, and a takeover that meets it steps down', async () => {
    const state = new SchedulerState(4, undefined);
    const projection = new JobProjection(nats, state, logger);
    await projection.start();
    await projection.whenCaughtUp();
    // The projection's consumer stalls (stopped here); revisions keep being written.
    await projection.stop();
    const s = await submit('unseen');
    const err = await projection.sync(300).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProjectionBehindError);
    expect(err).toMatchObject({ code: 'PROJECTION_BEHIND', target: s.revision });
    expect((err as ProjectionBehindError).applied).toBeLessThan(s.revision);

    // The takeover awaits the same sync: the elected replica deposes itself and releases the lease, dispatching nothing.
    const events: string[] = [];
    let dispatched = 0;
    const e = new LeaderElection(
      nats,
      'stalled',
      LEASE_MS,
      {
        onElected: async () => {
          await projection.sync(300);
          dispatched++;
        },
        onDeposed: (reason) => void events.push(reason),
      },
      logger,
    );
    await e.start();
    await waitFor(() => events.length > 0, { what: 'the leader to step down', timeoutMs: 10_000 });
    expect(events[0]).toBe('takeover failed');
    expect(dispatched).toBe(0);
    await e.stop();
  });
});
