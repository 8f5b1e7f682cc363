/**
 * Batched dispatch against a real nats-server (docs/architecture.md, "Batched dispatch"): a round's decisions for one
 * worker travel in one message (bounded by attempts and by record bytes), a group of one keeps the single-attempt
 * form, and a new leader adopts every attempt of an outstanding batch as one held token — once, even when the same
 * attempt sits in the stream twice. A worker gets at most what its heartbeat advertises (`dispatchBatchMax`; absent:
 * an older worker, one message per attempt) — heartbeats written to the workers bucket, read by the real monitor. A
 * worker whose heartbeat says it takes no record hint (`dispatchRecordHint: false`) gets its attempts without the job's
 * record and revision; one that says it does, or says nothing (an older worker), gets them.
 */
import {
  BUCKETS,
  CONSUMERS,
  DISPATCH_BATCH_LIMIT,
  STREAMS,
  SUBJECTS,
  bucketDeclarations,
  dispatchAttempts,
  newJob,
  requestCancel,
  streamDeclarations,
  systemClock,
  type DispatchPayload,
  type StoredJob,
  type WorkerHeartbeat,
} from '@gantry/contracts';
import { NatsHandle, decodeJson, encodeJson, provision, publishJson } from '@gantry/jetstream';
import { AckPolicy } from '@nats-io/jetstream';
import { JobStore } from '@gantry/job-store';
import { NatsServer, waitFor, noopSpec } from '@gantry/testing';
import { createLogger, createRegistry } from '@gantry/telemetry';
import { Dispatcher, type DispatchSettings } from '../src/dispatch/dispatcher';
import { storedJobBytes } from '../src/dispatch/record-cache';
import { SchedulerState } from '../src/domain/scheduler-state';
import { SchedulerMetrics } from '../src/stats/metrics';
import { WorkerMonitor } from '../src/workers/worker-monitor';

const logger = createLogger('dispatch-batch-test', 'silent');

/** The real store, counting record reads (a port we own). */
class CountingStore extends JobStore {
  reads = 0;
  override get(id: string, o?: Parameters<JobStore['get']>[1]): Promise<StoredJob | undefined> {
    this.reads++;
    return super.get(id, o);
  }
}

describe('batched dispatch (real nats-server)', () => {
  let server: NatsServer;
  let nats: NatsHandle;
  let counter = 0;

  beforeAll(async () => {
    server = await NatsServer.start();
    nats = await NatsHandle.connect({ servers: [server.url], name: 'dispatch-batch', logger });
    const s = streamDeclarations();
    const b = bucketDeclarations();
    await provision(nats, { streams: [s.jobs, s.dispatch], buckets: [b.leader, b.workers] }, logger);
  });
  afterAll(async () => {
    await nats?.drain();
    await server?.dispose();
  });
  beforeEach(async () => {
    await nats.jsm.streams.purge(STREAMS.dispatch);
  });

  const createJobs = async (n: number, inputChars = 10): Promise<StoredJob[]> => {
    const writer = new JobStore(nats, systemClock);
    const out: StoredJob[] = [];
    for (let i = 0; i < n; i++)
      out.push(
        await writer.create(
          newJob(noopSpec(`bj${++counter}`, { input: { pad: 'x'.repeat(inputChars) }, maxAttempts: 2 }), new Date()),
        ),
      );
    return out;
  };

  /**
   * A scheduler replica's dispatch side over its own state, with the given workers (id → slots), each of this release
   * (accepting the channel's limit per message).
   */
  const replica = (
    name: string,
    stored: StoredJob[],
    workers: Record<string, number>,
    s: Partial<DispatchSettings>,
    store = new JobStore(nats, systemClock),
  ) => {
    const state = new SchedulerState(100, undefined);
    for (const j of stored) state.apply(j, false);
    for (const [id, slots] of Object.entries(workers)) {
      state.capacity.upsertWorker({
        id,
        pool: 'default',
        slots,
        slotsPerGpu: slots,
        gpus: [],
        draining: false,
        dispatchBatchMax: DISPATCH_BATCH_LIMIT,
      });
      state.capacity.setReady(id, true);
    }
    const fenced: string[] = [];
    const dispatcher = new Dispatcher(
      nats,
      store,
      state,
      systemClock,
      { agingMs: 0, batch: 64, recordCacheBytes: 0, ...s },
      new SchedulerMetrics(
        createRegistry(name),
        state,
        () => true,
        () => ({ maxQueueSize: 1_000 }),
      ),
      logger,
      (reason) => void fenced.push(reason),
    );
    return { state, dispatcher, fenced };
  };

  /** Every dispatch message in the stream, read from the server, with its sequence. */
  const inStream = async (): Promise<{ seq: number; subject: string; p: DispatchPayload }[]> => {
    const out: { seq: number; subject: string; p: DispatchPayload }[] = [];
    for (let seq = 1; ;) {
      const m = await nats.jsm.direct
        .getMessage(STREAMS.dispatch, { next_by_subj: SUBJECTS.dispatchAll, seq })
        .catch(() => null);
      if (!m) return out;
      seq = m.seq + 1;
      if (m.subject !== SUBJECTS.dispatchFence) out.push({ seq: m.seq, subject: m.subject, p: decodeJson(m.data) });
    }
  };

  const settle = async (r: ReturnType<typeof replica>, jobs: StoredJob[]) =>
    waitFor(
      () => (jobs.every((j) => r.state.holdings.get(j.record.id)?.dispatchSeq !== undefined) ? true : undefined),
      { what: 'every job dispatched', timeoutMs: 30_000 },
    );

  it("publishes one message per worker holding that worker's attempts of the round", async () => {
    const jobs = await createJobs(7);
    const r = replica('one-message', jobs, { w1: 5, w2: 2 }, { attemptsPerMessage: 16 });
    await r.dispatcher.activate(1, async () => undefined);
    await settle(r, jobs);
    r.dispatcher.deactivate();

    const msgs = await inStream();
    expect(msgs).toHaveLength(2);
    const byWorker = new Map(msgs.map((m) => [m.p.workerId, m]));
    const w1 = byWorker.get('w1')!;
    const w2 = byWorker.get('w2')!;
    expect(w1.subject).toBe(SUBJECTS.dispatch('w1'));
    expect('attempts' in w1.p && w1.p.attempts).toHaveLength(5);
    expect('attempts' in w2.p && w2.p.attempts).toHaveLength(2);
    const attempts = msgs.flatMap((m) => dispatchAttempts(m.p).map((a) => ({ ...a, seq: m.seq })));
    // Every job once, attempt 1, its record riding along; its token points at the message that carries it.
    expect(attempts.map((a) => a.jobId).sort()).toEqual(jobs.map((j) => j.record.id).sort());
    for (const a of attempts) {
      expect(a).toMatchObject({ attempt: 1, generation: 1, epoch: 1 });
      expect(a.record?.id).toBe(a.jobId);
    }
    expect(r.fenced).toEqual([]);
  });

  it('closes a message at attemptsPerMessage attempts and at its record bytes; a group of one keeps the old form', async () => {
    const jobs = await createJobs(7, 20_000);
    const perRecord = storedJobBytes(jobs[0]!);
    // w1: 5 attempts, at most 2 a message by bytes → 2 + 2 + 1 (the last in the single-attempt form).
    // w2: 2 attempts, at most 3 a message by count but 2 by bytes → one batch of 2.
    const r = replica('bounds', jobs, { w1: 5, w2: 2 }, { attemptsPerMessage: 3, messageRecordBytes: 2.5 * perRecord });
    // (Epochs are lease revisions, never reused: message ids are per epoch, so each leader here has its own.)
    await r.dispatcher.activate(2, async () => undefined);
    await settle(r, jobs);
    r.dispatcher.deactivate();

    const msgs = await inStream();
    const sizes = (w: string) => msgs.filter((m) => m.p.workerId === w).map((m) => dispatchAttempts(m.p).length);
    expect(sizes('w1')).toEqual([2, 2, 1]);
    expect(sizes('w2')).toEqual([2]);
    const single = msgs.find((m) => dispatchAttempts(m.p).length === 1)!;
    expect('attempts' in single.p).toBe(false);
    expect(single.p).toMatchObject({ attempt: 1, workerId: 'w1' });
    expect(msgs.flatMap((m) => dispatchAttempts(m.p).map((a) => a.jobId)).sort()).toEqual(
      jobs.map((j) => j.record.id).sort(),
    );

    // attemptsPerMessage 1 (the pre-batch behaviour): one message per attempt.
    await nats.jsm.streams.purge(STREAMS.dispatch);
    const more = await createJobs(4);
    const one = replica('one-each', more, { w1: 4 }, { attemptsPerMessage: 1 });
    await one.dispatcher.activate(3, async () => undefined);
    await settle(one, more);
    one.dispatcher.deactivate();
    const each = await inStream();
    expect(each).toHaveLength(4);
    expect(each.every((m) => !('attempts' in m.p))).toBe(true);
  });

  it('a new leader adopts each attempt of an outstanding batch once', async () => {
    const jobs = await createJobs(4);
    const a = replica('leader-a', jobs, { w1: 4 }, { attemptsPerMessage: 16 });
    await a.dispatcher.activate(10, async () => undefined);
    await settle(a, jobs);
    const [batch] = await inStream();
    expect(batch && 'attempts' in batch.p && batch.p.attempts).toHaveLength(4);
    // The same attempts once more in a second message (as a publish that timed out and was stored after all would
    // leave them): adoption must still hold each attempt once.
    await publishJson(nats.js, SUBJECTS.dispatch('w1'), batch!.p);

    const b = replica('leader-b', jobs, { w1: 4 }, { attemptsPerMessage: 16 });
    await b.dispatcher.activate(11, async () => undefined);
    expect(b.state.holdings.size).toBe(4);
    expect(b.state.capacity.used).toBe(4);
    for (const j of jobs)
      expect(b.state.holdings.get(j.record.id)).toMatchObject({
        state: 'dispatched',
        workerId: 'w1',
        attempt: 1,
        dispatchSeq: batch!.seq,
      });
    // Nothing is dispatched again: the worker's slots are all held by the adopted attempts.
    expect(await inStream()).toHaveLength(2);
    b.dispatcher.deactivate();
    a.dispatcher.deactivate();
  });

  /**
   * Heartbeats as workers write them to the workers bucket (with the given extra fields), each with its dispatch
   * consumer (the monitor checks it exists), read by the real worker monitor into a fresh replica's state: `run` gets
   * the replica once every worker is ready; the workers are removed afterwards.
   */
  const withAdvertisedWorkers = async (
    name: string,
    jobs: StoredJob[],
    workers: [id: string, slots: number, fields: Partial<WorkerHeartbeat>][],
    s: Partial<DispatchSettings>,
    run: (r: ReturnType<typeof replica>) => Promise<void>,
  ) => {
    const kv = await nats.kvm.open(BUCKETS.workers);
    for (const [id, slots, fields] of workers) {
      await nats.jsm.consumers.add(STREAMS.dispatch, {
        durable_name: CONSUMERS.worker(id),
        filter_subject: SUBJECTS.dispatch(id),
        ack_policy: AckPolicy.Explicit,
      });
      const at = new Date().toISOString();
      const hb: WorkerHeartbeat = {
        v: 1,
        id,
        pool: 'default',
        slots,
        slotsPerGpu: slots,
        gpus: [],
        runningJobs: [],
        inflight: [],
        jobTypes: ['noop'],
        ...fields,
        draining: false,
        startedAt: at,
        heartbeatAt: at,
        version: 'test',
      };
      await kv.put(id, encodeJson(hb));
    }
    // No worker known up front: the real monitor reads the heartbeats into the replica's state.
    const r = replica(name, jobs, {}, s);
    const monitor = new WorkerMonitor(
      nats,
      new JobStore(nats, systemClock),
      r.state,
      systemClock,
      600_000,
      {
        isLeader: () => true,
        verifyLeadership: () => Promise.resolve(true),
        workersChanged: () => r.dispatcher.workersChanged(),
        lost: () => undefined,
      },
      logger,
    );
    try {
      await monitor.start();
      await waitFor(() => workers.every(([id]) => r.state.capacity.worker(id)?.ready) || undefined, {
        what: 'every worker ready',
        timeoutMs: 30_000,
      });
      await run(r);
    } finally {
      await monitor.stop();
      for (const [id] of workers) {
        await kv.delete(id).catch(() => undefined);
        await nats.jsm.consumers.delete(STREAMS.dispatch, CONSUMERS.worker(id)).catch(() => undefined);
      }
    }
  };

  it('sends a worker at most what its heartbeat advertises: absent = one message per attempt', async () => {
    const jobs = await createJobs(18);
    // One worker of an older release (no dispatchBatchMax), one advertising 16 and one advertising 4.
    let r: ReturnType<typeof replica> | undefined;
    await withAdvertisedWorkers(
      'advertised',
      jobs,
      [
        ['w-old', 5, {}],
        ['w-16', 6, { dispatchBatchMax: 16 }],
        ['w-4', 7, { dispatchBatchMax: 4 }],
      ],
      { attemptsPerMessage: 16 },
      async (x) => {
        r = x;
        expect(['w-old', 'w-16', 'w-4'].map((id) => x.state.capacity.worker(id)?.dispatchBatchMax)).toEqual([1, 16, 4]);
        // Every worker known before the first round: one round decides all 18 (as many as the slots).
        await x.dispatcher.activate(20, async () => undefined);
        await settle(x, jobs);
        x.dispatcher.deactivate();
      },
    );

    const msgs = await inStream();
    const of = (w: string) => msgs.filter((m) => m.p.workerId === w);
    const sizes = (w: string) => of(w).map((m) => dispatchAttempts(m.p).length);
    // The older worker: one message per attempt, every one in the single-attempt form it reads.
    expect(sizes('w-old')).toEqual([1, 1, 1, 1, 1]);
    expect(of('w-old').every((m) => !('attempts' in m.p))).toBe(true);
    // 16 advertised (and configured): its six attempts in one batch.
    expect(sizes('w-16')).toEqual([6]);
    // 4 advertised, 16 configured: never more than 4 a message.
    expect(sizes('w-4')).toEqual([4, 3]);
    expect(msgs.flatMap((m) => dispatchAttempts(m.p).map((a) => a.jobId)).sort()).toEqual(
      jobs.map((j) => j.record.id).sort(),
    );
    expect(r?.fenced).toEqual([]);
  });

  it('leaves the record out of the dispatches of a worker that takes no record hint, and a new leader adopts them', async () => {
    // Records of ~20 kB, and messages bounded at 2.5 records' bytes: only messages that carry records are closed by it.
    const jobs = await createJobs(12, 20_000);
    const perRecord = storedJobBytes(jobs[0]!);
    const workers: [string, number, Partial<WorkerHeartbeat>][] = [
      ['h-old', 3, { dispatchBatchMax: 16 }], // an older worker: no dispatchRecordHint, it wants the hint
      ['h-yes', 3, { dispatchBatchMax: 16, dispatchRecordHint: true }],
      ['h-no', 4, { dispatchBatchMax: 16, dispatchRecordHint: false }],
      ['h-no-1', 2, { dispatchRecordHint: false }], // no batches either: single-attempt messages without the record
    ];
    let held: ReturnType<typeof replica> | undefined;
    await withAdvertisedWorkers(
      'hint',
      jobs,
      workers,
      { attemptsPerMessage: 16, messageRecordBytes: 2.5 * perRecord },
      async (r) => {
        expect(workers.map(([id]) => r.state.capacity.worker(id)?.dispatchRecordHint)).toEqual([
          true,
          true,
          false,
          false,
        ]);
        await r.dispatcher.activate(30, async () => undefined);
        await settle(r, jobs);
        held = r;
      },
    );

    const msgs = await inStream();
    const of = (w: string) => msgs.filter((m) => m.p.workerId === w);
    const attemptsOf = (w: string) => of(w).flatMap((m) => dispatchAttempts(m.p));
    // With the hint: each attempt carries the job's record and revision, exactly as stored.
    for (const w of ['h-old', 'h-yes']) {
      expect(attemptsOf(w)).toHaveLength(3);
      for (const a of attemptsOf(w)) {
        const stored = jobs.find((j) => j.record.id === a.jobId)!;
        expect(a.record).toEqual(stored.record);
        expect(a.revision).toBe(stored.revision);
      }
      // Records ride along, so the byte bound still closes their messages (2 + 1).
      expect(of(w).map((m) => dispatchAttempts(m.p).length)).toEqual([2, 1]);
    }
    // Without: no record, no revision, in either form — and the byte bound does not split a message of no records.
    expect(of('h-no').map((m) => dispatchAttempts(m.p).length)).toEqual([4]);
    expect(of('h-no-1').map((m) => 'attempts' in m.p)).toEqual([false, false]);
    for (const w of ['h-no', 'h-no-1']) {
      expect(attemptsOf(w).length).toBeGreaterThan(0);
      for (const a of attemptsOf(w)) {
        expect(a).toMatchObject({ attempt: 1, generation: 1 });
        expect('record' in a).toBe(false);
        expect('revision' in a).toBe(false);
      }
    }
    expect(msgs.flatMap((m) => dispatchAttempts(m.p).map((a) => a.jobId)).sort()).toEqual(
      jobs.map((j) => j.record.id).sort(),
    );
    expect(held?.fenced).toEqual([]);

    // A new leader adopts every outstanding attempt, the record-less ones too (it reads the records itself).
    const b = replica('hint-successor', jobs, Object.fromEntries(workers.map(([id, slots]) => [id, slots])), {});
    await b.dispatcher.activate(31, async () => undefined);
    expect(b.state.holdings.size).toBe(12);
    for (const [id] of workers)
      for (const m of of(id))
        for (const a of dispatchAttempts(m.p))
          expect(b.state.holdings.get(a.jobId)).toMatchObject({
            state: 'dispatched',
            workerId: id,
            attempt: 1,
            dispatchSeq: m.seq,
          });
    expect(await inStream()).toHaveLength(msgs.length); // nothing dispatched twice
    b.dispatcher.deactivate();
    held?.dispatcher.deactivate();
  });

  describe('records at depth (docs/architecture.md, "Records at depth")', () => {
    /** Six queued jobs, two of them just seen by the projection (cached), the rest queued long ago (not cached). */
    const depth = async (name: string, readUncachedRecords: boolean, epoch: number) => {
      const jobs = await createJobs(6);
      const store = new CountingStore(nats, systemClock);
      const r = replica(
        name,
        jobs,
        { w1: 6 },
        { attemptsPerMessage: 16, recordCacheBytes: 16 * 1024 * 1024, readUncachedRecords },
        store,
      );
      for (const j of jobs.slice(0, 2)) r.dispatcher.remember(j);
      return { jobs, store, r, epoch };
    };

    it('without reads, a decision the cache does not hold goes without its record and nothing is read; a cached one carries it', async () => {
      const { jobs, store, r, epoch } = await depth('depth-unread', false, 40);
      await r.dispatcher.activate(epoch, async () => undefined);
      await settle(r, jobs);
      r.dispatcher.deactivate();
      expect(store.reads).toBe(0);
      const msgs = await inStream();
      expect(msgs).toHaveLength(1);
      const attempts = dispatchAttempts(msgs[0]!.p);
      expect(attempts.map((a) => a.jobId).sort()).toEqual(jobs.map((j) => j.record.id).sort());
      for (const a of attempts) {
        const j = jobs.find((x) => x.record.id === a.jobId)!;
        if (jobs.indexOf(j) < 2) expect([a.record, a.revision]).toEqual([j.record, j.revision]);
        else expect(['record' in a, 'revision' in a]).toEqual([false, false]);
      }
      expect(r.fenced).toEqual([]);
    });

    it('with reads (the default while spans are recorded), every uncached decision is read and carries its record', async () => {
      const { jobs, store, r, epoch } = await depth('depth-read', true, 41);
      await r.dispatcher.activate(epoch, async () => undefined);
      await settle(r, jobs);
      r.dispatcher.deactivate();
      expect(store.reads).toBe(4);
      const attempts = (await inStream()).flatMap((m) => dispatchAttempts(m.p));
      expect(attempts).toHaveLength(6);
      for (const a of attempts) expect(a.record).toEqual(jobs.find((x) => x.record.id === a.jobId)!.record);
    });

    it('a stale index entry (cancelled in the stream, not yet in the index): dropped by a read; dispatched without one, for the worker to refuse', async () => {
      for (const [readUncachedRecords, epoch] of [
        [true, 42],
        [false, 43],
      ] as const) {
        await nats.jsm.streams.purge(STREAMS.dispatch);
        const { jobs, r } = await depth(`depth-stale-${readUncachedRecords}`, readUncachedRecords, epoch);
        const stale = jobs[5]!; // not cached
        await new JobStore(nats, systemClock).transition(stale.record.id, (c) => requestCancel(c.record, new Date()));
        await r.dispatcher.activate(epoch, async () => undefined);
        const others = jobs.slice(0, 5);
        await settle(r, others);
        r.dispatcher.deactivate();
        const sent = (await inStream()).flatMap((m) => dispatchAttempts(m.p)).map((a) => a.jobId);
        if (readUncachedRecords) {
          // The read found it cancelled: no dispatch, its token given back at once.
          expect(sent.sort()).toEqual(others.map((j) => j.record.id).sort());
        } else {
          // Sent on the index's word; a worker reads the record before starting an attempt that came without one
          // and drops it (apps/gpu-worker/test/dispatch-record-hint.int.ts), telling the scheduler.
          expect(sent).toContain(stale.record.id);
          expect(sent).toHaveLength(6);
        }
        expect(r.fenced).toEqual([]);
      }
    });
  });
});
