/**
 * Retention against a real nats-server and a real S3-compatible store: terminal jobs older than the retention lose
 * their subject (record and events), their listing entry and their outputs; queued jobs and jobs retried since never
 * do. The clock (a port we own) is moved past the retention instead of waiting a week.
 */
import {
  BUCKETS,
  STREAMS,
  SUBJECTS,
  adminRetry,
  bucketDeclarations,
  completeAttempt,
  failAttempt,
  jobError,
  newJob,
  startAttempt,
  streamDeclarations,
  type Clock,
  type JobOutput,
  type ListPage,
  type StoredJob,
} from '@gantry/contracts';
import { NatsHandle, decodeJson, provision } from '@gantry/jetstream';
import { JobStore } from '@gantry/job-store';
import { OutputStore } from '@gantry/storage';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { NatsServer, S3Server, waitFor, noopSpec } from '@gantry/testing';
import { createLogger } from '@gantry/telemetry';
import { listBucket, ListIndexWriter } from '../src/listing/list-index-writer';
import { RetentionSweeper } from '../src/retention/retention-sweeper';

const logger = createLogger('retention-test', 'silent');
const HOUR = 3_600_000;
const RETENTION = 168 * HOUR;

describe('retention sweeper (real nats-server and S3)', () => {
  let server: NatsServer;
  let s3: S3Server;
  let nats: NatsHandle;
  let outputs: OutputStore;

  beforeAll(async () => {
    server = await NatsServer.start();
    s3 = await S3Server.start();
    nats = await NatsHandle.connect({ servers: [server.url], name: 'retention-test', logger });
    const s = streamDeclarations();
    await provision(nats, { streams: [s.jobs, s.list], buckets: [bucketDeclarations().config] }, logger);
    const env = s3.env();
    outputs = new OutputStore({
      S3_ENDPOINT: env['S3_ENDPOINT'],
      S3_REGION: 'us-east-1',
      S3_BUCKET: 'gantry-outputs',
      S3_FORCE_PATH_STYLE: true,
      AWS_ACCESS_KEY_ID: env['AWS_ACCESS_KEY_ID'],
      AWS_SECRET_ACCESS_KEY: env['AWS_SECRET_ACCESS_KEY'],
      S3_PRESIGN_SECONDS: 60,
    });
  });

  afterAll(async () => {
    outputs?.destroy();
    await nats?.drain();
    await s3?.stop();
    await server?.dispose();
  });

  it('removes expired terminal jobs with their listing entries and outputs, and nothing else', async () => {
    const clock: Clock & { t: number } = { t: Date.now(), now: (): Date => new Date(clock.t) };
    const jobs = new JobStore(nats, clock);
    const submit = (id: string) => jobs.create(newJob(noopSpec(id, { tenant: 'acme' }), clock.now()));
    const owner = { workerId: 'w1', generation: 1, attempt: 1 };
    const run = (id: string) =>
      jobs.transition(id, (c) => startAttempt(c.record, owner, { gpus: [], gpuIndices: [] }, clock.now()));

    // done: completed with an output in the store; failed: failed; waiting: queued forever; retried: failed, then
    // retried by an admin (queued again).
    await submit('done');
    await submit('failed');
    await submit('waiting');
    await submit('retried');
    await outputs.putObject(outputs.outputKey('done', 'out.txt'), 'result');
    const out: JobOutput = { name: 'out.txt', url: `s3://gantry-outputs/jobs/done/out.txt`, sizeBytes: 6 };
    await run('done');
    await jobs.transition('done', (c) => completeAttempt(c.record, owner, { outputs: [out] }, clock.now()));
    await run('failed');
    await jobs.transition('failed', (c) =>
      failAttempt(c.record, owner, jobError('EXIT_CODE', 'boom', false), clock.now()),
    );
    await run('retried');
    await jobs.transition('retried', (c) =>
      failAttempt(c.record, owner, jobError('EXIT_CODE', 'boom', false), clock.now()),
    );
    await jobs.transition('retried', (c) => adminRetry(c.record, clock.now()));

    const last = (await nats.jsm.streams.info(STREAMS.jobs)).state.last_seq;
    const writer = new ListIndexWriter(nats, logger, { lastApplied: last, subscribe: () => () => undefined });
    await writer.start();
    await waitFor(() => writer.appliedSeq >= last, { what: 'the listing to catch up' });
    await writer.flush();
    const sweeper = new RetentionSweeper(
      nats,
      jobs,
      clock,
      { retentionMs: RETENTION, intervalMs: 60_000, outputs, listing: () => writer },
      logger,
    );

    // Nothing is old enough yet.
    expect(await sweeper.sweep()).toMatchObject({ scanned: 0, removed: 0 });
    const stored = await outputs.client.send(
      new GetObjectCommand({ Bucket: 'gantry-outputs', Key: 'jobs/done/out.txt' }),
    );
    expect(await stored.Body?.transformToString()).toBe('result');

    clock.t += RETENTION + HOUR;
    const result = await sweeper.sweep();
    expect(result).toMatchObject({ removed: 2, checkpoint: last });
    await writer.flush();

    const exists = async (id: string) => (await jobs.get(id, { consistent: true })) !== undefined;
    expect(await exists('done')).toBe(false);
    expect(await exists('failed')).toBe(false);
    expect(await exists('waiting')).toBe(true);
    expect(await exists('retried')).toBe(true);
    // The whole subject went, events included.
    const left = await nats.jsm.streams.info(STREAMS.jobs, { subjects_filter: SUBJECTS.jobsAll });
    expect(Object.keys(left.state.subjects ?? {}).sort()).toEqual([SUBJECTS.job('retried'), SUBJECTS.job('waiting')]);
    expect(await jobs.history('done')).toEqual([]);
    // Outputs are gone from the store.
    await expect(
      outputs.client.send(new GetObjectCommand({ Bucket: 'gantry-outputs', Key: 'jobs/done/out.txt' })),
    ).rejects.toThrow(/NoSuchKey|not exist/i);

    const waiting = (await jobs.get('waiting')) as StoredJob;
    const page = await nats.jsm.direct.getMessage(STREAMS.list, {
      last_by_subj: SUBJECTS.listPage('acme', listBucket(waiting.record.createSeq!)),
    });
    const ids = decodeJson<ListPage>(page!.data).entries.map((e) => e[1]);
    expect(ids.sort()).toEqual(['retried', 'waiting']);

    // Idempotent: a second run removes nothing more, and the checkpoint was kept.
    expect(await sweeper.sweep()).toMatchObject({ removed: 0 });
    const cp = await (await nats.kvm.open(BUCKETS.config)).get('sweep_checkpoint');
    expect(Number(cp?.string())).toBe(last);
    await writer.stop();
  });

  it('an admin retry that re-queues a job between the check and the purge wins: the job, and its listing entry stay', async () => {
    const clock: Clock & { t: number } = { t: Date.now(), now: (): Date => new Date(clock.t) };
    const admin = new JobStore(nats, clock);
    /** The sweeper's store: right after the sweeper reads the record it judges, an admin retries the job. */
    class RacingStore extends JobStore {
      race: ((id: string) => Promise<unknown>) | undefined;
      override async get(id: string, o: { consistent?: boolean } = {}): Promise<StoredJob | undefined> {
        const s = await super.get(id, o);
        const race = this.race;
        if (race && s && o.consistent) {
          this.race = undefined;
          await race(id);
        }
        return s;
      }
    }
    const jobs = new RacingStore(nats, clock);
    const id = 'raced';
    await admin.create(newJob(noopSpec(id, { tenant: 'race' }), clock.now()));
    const owner = { workerId: 'w1', generation: 1, attempt: 1 };
    await admin.transition(id, (c) => startAttempt(c.record, owner, { gpus: [], gpuIndices: [] }, clock.now()));
    await admin.transition(id, (c) => failAttempt(c.record, owner, jobError('EXIT_CODE', 'boom', false), clock.now()));
    const judged = (await admin.get(id, { consistent: true }))!;

    const last = (await nats.jsm.streams.info(STREAMS.jobs)).state.last_seq;
    const writer = new ListIndexWriter(nats, logger, { lastApplied: last, subscribe: () => () => undefined });
    await writer.start();
    await waitFor(() => writer.appliedSeq >= last, { what: 'the listing to catch up' });
    await writer.flush();
    const sweeper = new RetentionSweeper(
      nats,
      jobs,
      clock,
      { retentionMs: RETENTION, intervalMs: 60_000, outputs, listing: () => writer },
      logger,
    );
    let retried: StoredJob | undefined;
    jobs.race = async (raced) => {
      retried = await admin.transition(raced, (c) => adminRetry(c.record, clock.now()));
    };
    clock.t += RETENTION + HOUR;
    expect(await sweeper.sweep()).toMatchObject({ removed: 0 });
    expect(retried?.revision).toBeGreaterThan(judged.revision); // the race really happened, after the check

    // The retry won: the job is queued (its new generation) and still listed.
    const now = await admin.get(id, { consistent: true });
    expect(now).toMatchObject({ revision: retried!.revision, record: { status: 'queued', generation: 2 } });
    await writer.flush();
    const page = await nats.jsm.direct.getMessage(STREAMS.list, {
      last_by_subj: SUBJECTS.listPage('race', listBucket(now!.record.createSeq!)),
    });
    expect(decodeJson<ListPage>(page!.data).entries.map((e) => e[1])).toContain(id);
    await writer.stop();
  });
});
