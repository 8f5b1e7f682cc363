/**
 * The listing writer's read-your-writes sync against a real nats-server: `syncTo(seq)` resolves only once every job
 * revision up to `seq` is applied and its page written, gives up with ListingBehindError when the writer cannot get
 * there in time, and does not wait for revisions that retention purged before they were delivered. The projection's
 * feed is played by the test, so it decides when the writer sees each revision.
 */
import {
  STREAMS,
  SUBJECTS,
  bucketDeclarations,
  newJob,
  reportProgress,
  startAttempt,
  streamDeclarations,
  systemClock,
  type ListPage,
  type StoredJob,
} from '@gantry/contracts';
import { NatsHandle, decodeJson, provision } from '@gantry/jetstream';
import { JobStore } from '@gantry/job-store';
import { NatsServer, noopSpec, waitFor } from '@gantry/testing';
import { createLogger } from '@gantry/telemetry';
import { listBucket, ListIndexWriter, ListingBehindError } from '../src/listing/list-index-writer';

const logger = createLogger('list-sync-test', 'silent');

describe('listing writer sync (real nats-server)', () => {
  let server: NatsServer;
  let nats: NatsHandle;
  let jobs: JobStore;
  let writer: ListIndexWriter;
  const subscribers = new Set<(s: StoredJob) => void>();
  const feed = {
    lastApplied: 0,
    subscribe: (fn: (s: StoredJob) => void) => (subscribers.add(fn), () => subscribers.delete(fn)),
  };
  const deliver = (s: StoredJob) => {
    feed.lastApplied = s.revision;
    for (const fn of subscribers) fn(s);
  };
  const lastSeq = async () => (await nats.jsm.streams.info(STREAMS.jobs)).state.last_seq;

  function submit(id: string): Promise<StoredJob> {
    return jobs.create(newJob(noopSpec(id, { tenant: 'acme' }), systemClock.now()));
  }

  /** The ids in the tenant's written page for this job's createSeq. */
  async function listed(s: StoredJob): Promise<string[]> {
    const createSeq = s.record.createSeq ?? s.revision;
    const msg = await nats.jsm.direct.getMessage(STREAMS.list, {
      last_by_subj: SUBJECTS.listPage('acme', listBucket(createSeq)),
    });
    return msg ? decodeJson<ListPage>(msg.data).entries.map((e) => e[1]) : [];
  }

  /** The stream sequence of the last write of the tenant's page that holds this job. */
  async function pageWrittenAt(s: StoredJob): Promise<number | undefined> {
    const msg = await nats.jsm.direct.getMessage(STREAMS.list, {
      last_by_subj: SUBJECTS.listPage('acme', listBucket(s.record.createSeq ?? s.revision)),
    });
    return msg?.seq;
  }

  beforeAll(async () => {
    server = await NatsServer.start();
    nats = await NatsHandle.connect({ servers: [server.url], name: 'list-sync-test', logger });
    const s = streamDeclarations();
    await provision(nats, { streams: [s.jobs, s.list], buckets: [bucketDeclarations().config] }, logger);
    jobs = new JobStore(nats, systemClock);
    writer = new ListIndexWriter(nats, logger, feed);
    await writer.start();
  });

  afterAll(async () => {
    await writer?.stop();
    await nats?.drain();
    await server?.dispose();
  });

  it('resolves only once the revisions up to the target are applied, with their page written', async () => {
    const a = await submit('job-a');
    const target = await lastSeq();
    // The sync's looks for the next revision (it exists: not purged, so keep waiting) and the periodic flushes.
    const gapChecks = jest.spyOn(nats.jsm.direct, 'getMessage');
    const flushes = jest.spyOn(writer, 'flush');
    const looks = () => gapChecks.mock.calls.filter(([, q]) => 'next_by_subj' in q).length;
    let synced = false;
    const sync = writer.syncTo(target, 10_000).then((seq) => {
      synced = true;
      return seq;
    });
    try {
      // Not delivered yet: after two looks for the revision and two periodic flushes, the sync must still be waiting.
      await waitFor(() => looks() >= 2 && flushes.mock.calls.length >= 2, {
        what: 'two gap checks and two flushes while the revision is not delivered',
        timeoutMs: 20_000,
        intervalMs: 10,
      });
    } finally {
      gapChecks.mockRestore();
      flushes.mockRestore();
    }
    expect(synced).toBe(false);
    expect(await listed(a)).toEqual([]);
    deliver(a);
    expect(await sync).toBeGreaterThanOrEqual(target);
    // Written by the time the sync resolved (not by a later periodic flush).
    expect(await listed(a)).toEqual(['job-a']);
  });

  it('gives up with ListingBehindError when the writer cannot reach the target in time', async () => {
    const b = await submit('job-b');
    await expect(writer.syncTo(await lastSeq(), 300)).rejects.toBeInstanceOf(ListingBehindError);
    deliver(b);
    await writer.syncTo(await lastSeq(), 10_000);
    expect(await listed(b)).toEqual(['job-b', 'job-a']);
  });

  it('does not wait for revisions that were purged before the writer saw them', async () => {
    await submit('job-c');
    await nats.jsm.streams.purge(STREAMS.jobs, { filter: SUBJECTS.job('job-c') });
    const started = Date.now();
    await writer.syncTo(await lastSeq(), 10_000);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('does not write a page again for a revision that changes none of its listed fields (progress)', async () => {
    const p = await submit('job-p');
    deliver(p);
    const owner = { workerId: 'w1', generation: p.record.generation, attempt: 1 };
    const started = await jobs.transition('job-p', (c) =>
      startAttempt(c.record, owner, { gpus: [], gpuIndices: [] }, systemClock.now()),
    );
    deliver(started);
    await writer.syncTo(started.revision, 10_000);
    const writtenAt = await pageWrittenAt(p);
    expect(writtenAt).toBeDefined();

    const progress = await jobs.transition('job-p', (c) =>
      reportProgress(c.record, owner, { percent: 50 }, systemClock.now()),
    );
    deliver(progress);
    // The sync still covers the progress revision (the checkpoint moves on), but the page is not rewritten.
    expect(await writer.syncTo(progress.revision, 10_000)).toBeGreaterThanOrEqual(progress.revision);
    expect(await pageWrittenAt(p)).toBe(writtenAt);
    const page = await nats.jsm.direct.getMessage(STREAMS.list, { seq: writtenAt! });
    expect(decodeJson<ListPage>(page!.data).entries.find((e) => e[1] === 'job-p')?.[2]).toBe('running');
  });
});
