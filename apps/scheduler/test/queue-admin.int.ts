/**
 * Admin commands against a real nats-server: only the leader writes the queue config, every replica applies it
 * (dispatch paused, token cap), bounds are refused before anything is written, and a standby refuses with a 503.
 */
import {
  BUCKETS,
  CONFIG_KEYS,
  bucketDeclarations,
  streamDeclarations,
  systemClock,
  type QueueConfigRecord,
} from '@gantry/contracts';
import { NatsHandle, provision, RpcError } from '@gantry/jetstream';
import { JobStore } from '@gantry/job-store';
import { NatsServer, waitFor } from '@gantry/testing';
import { createLogger, createRegistry } from '@gantry/telemetry';
import { QueueAdmin } from '../src/admin/queue-admin';
import { Dispatcher } from '../src/dispatch/dispatcher';
import { SchedulerState } from '../src/domain/scheduler-state';
import { JobProjection } from '../src/projection/job-projection';
import { SchedulerMetrics } from '../src/stats/metrics';

const logger = createLogger('queue-admin-test', 'silent');
const DEFAULTS = { maxConcurrentJobs: 8, maxQueueSize: 1_000 };

describe('QueueAdmin (real nats-server)', () => {
  let server: NatsServer;
  let nats: NatsHandle;
  const admins: QueueAdmin[] = [];

  beforeAll(async () => {
    server = await NatsServer.start();
    nats = await NatsHandle.connect({ servers: [server.url], name: 'queue-admin-test', logger });
    const s = streamDeclarations();
    await provision(nats, { streams: [s.jobs, s.dispatch], buckets: [bucketDeclarations().config] }, logger);
  });
  afterAll(async () => {
    for (const a of admins) await a.stop();
    await nats?.drain();
    await server?.dispose();
  });

  /** One replica's admin over its own state and dispatcher; `role.leader` decides whether it may write. */
  async function replica(name: string, role: { leader: boolean }) {
    const state = new SchedulerState(DEFAULTS.maxConcurrentJobs, undefined);
    const jobs = new JobStore(nats, systemClock);
    const metrics = new SchedulerMetrics(
      createRegistry(name),
      state,
      () => role.leader,
      () => DEFAULTS,
    );
    const dispatcher = new Dispatcher(
      nats,
      jobs,
      state,
      systemClock,
      { agingMs: 0, batch: 16 },
      metrics,
      logger,
      () => {},
    );
    let changed = 0;
    const admin = new QueueAdmin(
      {
        state,
        dispatcher,
        projection: new JobProjection(nats, state, logger),
        isLeader: () => role.leader,
        changed: () => void changed++,
      },
      { nats, jobs, clock: systemClock, logger },
      DEFAULTS,
    );
    await admin.start();
    admins.push(admin);
    return { admin, state, dispatcher, changed: () => changed };
  }

  const stored = async () => {
    const e = await (await nats.kvm.open(BUCKETS.config)).get(CONFIG_KEYS.queue);
    return e?.operation === 'PUT' ? { revision: e.revision, record: e.json<QueueConfigRecord>() } : undefined;
  };

  it('writes as the leader, applies on every replica, and refuses a standby and out-of-bounds caps', async () => {
    const leader = await replica('leader', { leader: true });
    const standby = await replica('standby', { leader: false });
    expect(leader.admin.maxQueueSize).toBe(DEFAULTS.maxQueueSize);

    const refused = await standby.admin.pause().catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(RpcError);
    expect((refused as RpcError).status).toBe(503);
    expect(await stored()).toBeUndefined();

    await leader.admin.pause();
    expect(leader.dispatcher.paused).toBe(true);
    expect(leader.changed()).toBe(1);
    await waitFor(() => standby.dispatcher.paused, { what: 'the standby to apply the pause' });
    expect(standby.admin.paused).toBe(true);

    await leader.admin.updateConfig({ maxConcurrentJobs: 2, maxQueueSize: 50 });
    await leader.admin.drain();
    await waitFor(() => standby.state.capacity.maxConcurrent === 2, { what: 'the standby to apply the cap' });
    await waitFor(() => standby.admin.draining, { what: 'the standby to apply the drain' });
    expect(standby.admin.maxQueueSize).toBe(50);
    expect(leader.state.capacity.maxConcurrent).toBe(2);

    const before = await stored();
    for (const bad of [{ maxConcurrentJobs: -1 }, { maxQueueSize: 0 }, { maxConcurrentJobs: 2_000_000 }]) {
      const err = await leader.admin.updateConfig(bad).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RpcError);
      expect((err as RpcError).status).toBe(400);
    }
    expect((await stored())?.revision).toBe(before?.revision);
    expect(leader.state.capacity.maxConcurrent).toBe(2);

    await leader.admin.resume();
    expect(leader.dispatcher.paused).toBe(false);
    expect((await stored())?.record).toMatchObject({ paused: false, draining: false, maxConcurrentJobs: 2 });
    await waitFor(() => !standby.admin.paused && !standby.admin.draining, { what: 'the standby to resume' });

    // A replica that starts later takes the stored record, not the environment's defaults.
    const late = await replica('late', { leader: false });
    await waitFor(() => late.state.capacity.maxConcurrent === 2, { what: 'the late replica to apply the record' });
    expect(late.admin.maxQueueSize).toBe(50);
  });
});
