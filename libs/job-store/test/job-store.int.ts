import {
  newJob,
  reportProgress,
  requestCancel,
  startAttempt,
  streamDeclarations,
  systemClock,
  SUBJECTS,
  STREAMS,
  TransitionRefused,
  type NewJobSpec,
} from '@gantry/contracts';
import { isWrongLastSequence, NatsHandle, provision } from '@gantry/jetstream';
import { JobExistsError, JobNotFoundError, JobStore } from '@gantry/job-store';
import { NatsServer, noopSpec } from '@gantry/testing';
import { createLogger } from '@gantry/telemetry';

const logger = createLogger('job-store-test', 'silent');

const spec = (id: string): NewJobSpec => noopSpec(id, { tenant: 't1', maxAttempts: 2, retryDelaysMs: [10] });

describe('JobStore on a real nats-server', () => {
  let server: NatsServer;
  let nats: NatsHandle;
  let store: JobStore;

  beforeAll(async () => {
    server = await NatsServer.start();
    nats = await NatsHandle.connect({ servers: [server.url], name: 'job-store-test', logger });
    await provision(nats, { streams: [streamDeclarations().jobs] }, logger);
    store = new JobStore(nats, systemClock);
  });
  afterAll(async () => {
    await nats?.drain();
    await server?.dispose();
  });

  it('creates a job once; a second create of the same id is refused', async () => {
    const s = await store.create(newJob(spec('a1'), new Date()));
    expect(s.record.createSeq).toBe(s.revision);
    expect(s.record.queueSeq).toBe(s.revision);
    await expect(store.create(newJob(spec('a1'), new Date()))).rejects.toBeInstanceOf(JobExistsError);
    const read = await store.get('a1');
    expect(read?.record.id).toBe('a1');
    expect(read?.revision).toBe(s.revision);
    expect(await store.get('missing')).toBeUndefined();
    await expect(store.transition('missing', (c) => requestCancel(c.record, new Date()))).rejects.toBeInstanceOf(
      JobNotFoundError,
    );
  });

  it('lets exactly one of two racing writers win a transition', async () => {
    await store.create(newJob(spec('race'), new Date()));
    const owner = (w: string) => ({ workerId: w, generation: 1, attempt: 1 });
    const results = await Promise.allSettled([
      store.transition('race', (c) => startAttempt(c.record, owner('w1'), { gpus: [], gpuIndices: [] }, new Date())),
      store.transition('race', (c) => startAttempt(c.record, owner('w2'), { gpus: [], gpuIndices: [] }, new Date())),
    ]);
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.filter((r) => r.status === 'rejected');
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect((lost[0] as PromiseRejectedResult).reason).toBeInstanceOf(TransitionRefused);
    const cur = await store.get('race', { consistent: true });
    expect(cur?.record.status).toBe('running');
    expect(cur?.record.sequence).toBe(2);
  });

  it('re-reads and decides again when another writer changed the record in between', async () => {
    await store.create(newJob(spec('retry-cas'), new Date()));
    const owner = { workerId: 'w1', generation: 1, attempt: 1 };
    await store.transition('retry-cas', (c) => startAttempt(c.record, owner, { gpus: [], gpuIndices: [] }, new Date()));
    let calls = 0;
    const out = await store.transition('retry-cas', (c) => {
      calls++;
      if (calls === 1) {
        // Another writer slips in a progress revision before our write lands.
        void store.transition('retry-cas', (x) => reportProgress(x.record, owner, { percent: 10 }, new Date()));
      }
      return reportProgress(c.record, owner, { percent: 20 + calls }, new Date());
    });
    expect(out.record.progress?.percent).toBe(20 + calls);
    const history = await store.history('retry-cas');
    expect(history.map((h) => h.event.type)).toEqual(
      expect.arrayContaining(['job.queued', 'job.started', 'job.progress']),
    );
    const seqs = history.map((h) => h.record.sequence);
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
    expect(new Set(seqs).size).toBe(seqs.length);
  });

  it('stores each revision once without a de-duplication id: the same publish sent again is refused by its compare-and-set', async () => {
    await store.create(newJob(spec('replayed'), new Date()));
    const owner = { workerId: 'w1', generation: 1, attempt: 1 };
    const started = await store.transition('replayed', (c) =>
      startAttempt(c.record, owner, { gpus: [], gpuIndices: [] }, new Date()),
    );
    // The stored message, sent again exactly as it was (headers with the expected subject sequence included), as a
    // publish resent by a client or a broker would be.
    const stored = (await nats.jsm.streams.getMessage(STREAMS.jobs, { seq: started.revision }))!;
    expect(stored.header.get('Nats-Msg-Id')).toBe('');
    expect(stored.header.get('Nats-Expected-Last-Subject-Sequence')).not.toBe('');
    const again = await nats.js.publish(SUBJECTS.job('replayed'), stored.data, { headers: stored.header }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(isWrongLastSequence(again)).toBe(true);
    const cur = await store.get('replayed', { consistent: true });
    expect(cur?.revision).toBe(started.revision);
    expect(cur?.record.sequence).toBe(2);
  });

  it('reads a missing job as undefined, but a broker error (no jobs stream) as an error, not as "no such job"', async () => {
    expect(await store.get('never-written', { consistent: true })).toBeUndefined();
    expect(await store.get('never-written')).toBeUndefined();
    const bare = await NatsServer.start();
    const h = await NatsHandle.connect({ servers: [bare.url], name: 'job-store-bare', logger, timeoutMs: 1_000 });
    try {
      const lost = new JobStore(h, systemClock);
      await expect(lost.get('x', { consistent: true })).rejects.toThrow();
      await expect(lost.get('x')).rejects.toThrow();
      await expect(
        lost.transition('x', () => {
          throw new Error('never decided');
        }),
      ).rejects.not.toBeInstanceOf(JobNotFoundError);
    } finally {
      await h.drain();
      await bare.dispose();
    }
  });
});
