import {
  bucketDeclarations,
  DEFAULT_TOPOLOGY,
  newId,
  newJobId,
  SUBJECTS,
  ms,
  streamDeclarations,
  workerConsumer,
  type StreamDeclaration,
} from '@gantry/contracts';
import { ensureBucket, ensureConsumer, ensureStream, NatsHandle, provision, raiseLimit } from '@gantry/jetstream';
import { NatsServer } from '@gantry/testing';
import { createLogger } from '@gantry/telemetry';

const logger = createLogger('provision-test', 'silent');

describe('raiseLimit', () => {
  it('never lowers and treats unlimited as the largest', () => {
    expect(raiseLimit('max_msgs', 100, 50)).toBe(100);
    expect(raiseLimit('max_msgs', 100, 500)).toBe(500);
    expect(raiseLimit('max_msgs', -1, 500)).toBe(-1);
    expect(raiseLimit('max_msgs', 500, -1)).toBe(-1);
    expect(raiseLimit('max_age', 0, ms(1_000))).toBe(0);
    expect(raiseLimit('max_age', ms(5_000), ms(1_000))).toBe(ms(5_000));
  });
});

describe('provisioning on a real nats-server', () => {
  let server: NatsServer;
  let nats: NatsHandle;

  beforeAll(async () => {
    server = await NatsServer.start();
    nats = await NatsHandle.connect({ servers: [server.url], name: 'provision-test', logger });
  });
  afterAll(async () => {
    await nats?.drain();
    await server?.dispose();
  });

  it('creates the whole topology and is idempotent', async () => {
    const streams = Object.values(streamDeclarations());
    const buckets = Object.values(bucketDeclarations());
    await provision(nats, { streams, buckets }, logger);
    await provision(nats, { streams, buckets }, logger);
    const names = new Set<string>();
    for await (const s of nats.jsm.streams.list()) names.add(s.config.name);
    for (const s of streams) expect(names).toContain(s.name);
    for (const b of buckets) expect(names).toContain(`KV_${b.bucket}`);
    expect(nats.serverVersion).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('raises a live stream’s limits but never lowers them (lowering would delete messages)', async () => {
    const base: StreamDeclaration = {
      ...streamDeclarations().batches,
      name: 'LIMITS_TEST',
      subjects: ['limits.test.>'],
      max_age: 0,
      max_msgs: 10,
    };
    await ensureStream(nats.jsm, base, logger);
    for (let i = 0; i < 10; i++) await nats.js.publish(`limits.test.${i}`, new Uint8Array([i]));
    // A declaration with a lower cap must not delete the oldest messages.
    await ensureStream(nats.jsm, { ...base, max_msgs: 3 }, logger);
    let info = await nats.jsm.streams.info('LIMITS_TEST');
    expect(info.config.max_msgs).toBe(10);
    expect(info.state.messages).toBe(10);
    await ensureStream(nats.jsm, { ...base, max_msgs: 50, subjects: ['limits.test.>', 'limits.more.>'] }, logger);
    info = await nats.jsm.streams.info('LIMITS_TEST');
    expect(info.config.max_msgs).toBe(50);
    expect(info.config.subjects).toEqual(['limits.test.>', 'limits.more.>']);
    expect(info.state.messages).toBe(10);
  });

  it('adds the no-callback job subjects to a jobs stream of an older deploy, keeping its records readable', async () => {
    const jobs = streamDeclarations().jobs;
    await nats.jsm.streams.delete(jobs.name).catch(() => undefined);
    // The jobs stream as an older deploy created it: one subject form for every job.
    await ensureStream(nats.jsm, { ...jobs, subjects: [SUBJECTS.jobsWithCallback] }, logger);
    const legacy = newId();
    await nats.js.publish(SUBJECTS.job(legacy), new TextEncoder().encode('legacy'));
    await provision(nats, { streams: [jobs] }, logger);
    const info = await nats.jsm.streams.info(jobs.name);
    expect(info.config.subjects).toEqual([SUBJECTS.jobsWithCallback, SUBJECTS.jobsWithoutCallback]);
    // A record written before is read where it always was; a callback-less job now has its own subject.
    const old = await nats.jsm.direct.getMessage(jobs.name, { last_by_subj: SUBJECTS.job(legacy) });
    expect(old?.string()).toBe('legacy');
    const quiet = newJobId(false);
    expect(SUBJECTS.job(quiet)).toBe(`gantry.v1.job_nocb.${quiet}`);
    const ack = await nats.js.publish(SUBJECTS.job(quiet), new TextEncoder().encode('new'));
    expect(ack.stream).toBe(jobs.name);
    // Provisioning again (every replica does, at every start) changes nothing.
    await provision(nats, { streams: [jobs] }, logger);
    expect((await nats.jsm.streams.info(jobs.name)).config.subjects).toEqual(info.config.subjects);
  });

  it('refuses to change a stream’s retention in place', async () => {
    const base: StreamDeclaration = {
      ...streamDeclarations().batches,
      name: 'RETENTION_TEST',
      subjects: ['retention.test.>'],
    };
    await ensureStream(nats.jsm, base, logger);
    await expect(ensureStream(nats.jsm, { ...base, retention: 'workqueue' }, logger)).rejects.toThrow(/retention/);
  });

  it('creates and updates durable consumers, and buckets with raise-only TTLs', async () => {
    await ensureStream(nats.jsm, streamDeclarations().dispatch, logger);
    const c = workerConsumer('w-test', 2);
    await ensureConsumer(nats.jsm, c, logger);
    await ensureConsumer(nats.jsm, { ...c, max_ack_pending: 4 }, logger);
    const info = await nats.jsm.consumers.info(c.stream, c.durable_name);
    expect(info.config.max_ack_pending).toBe(4);
    expect(info.config.max_deliver).toBe(-1);

    const b = { ...DEFAULT_TOPOLOGY, workerTtlMs: 10_000 };
    await ensureBucket(nats, bucketDeclarations(b).workers, logger);
    await ensureBucket(nats, bucketDeclarations({ ...b, workerTtlMs: 5_000 }).workers, logger);
    let kv = await nats.jsm.streams.info('KV_gantry_workers_v1');
    expect(kv.config.max_age).toBe(ms(60_000)); // created earlier in this file with the default 60 s, never lowered
    await ensureBucket(nats, bucketDeclarations({ ...b, workerTtlMs: 120_000 }).workers, logger);
    kv = await nats.jsm.streams.info('KV_gantry_workers_v1');
    expect(kv.config.max_age).toBe(ms(120_000));
  });
});
