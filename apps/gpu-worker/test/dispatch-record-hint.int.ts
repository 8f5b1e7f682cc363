/**
 * The dispatch's record hint from the worker's side (real nats-server, the runner driven directly through real dispatch
 * messages; docs/architecture.md, "Dispatch record hint" and "Trusted dispatch records"). A worker with no
 * started-revision delay compare-and-sets its start on the record a dispatch carries; one with a delay (the default)
 * checks its start against that record and lets its first write's compare-and-set catch a record that moved since;
 * both say so in their heartbeat (`dispatchRecordHint: true`). One with `readBeforeStart` reads the record from the
 * stream leader before every start, never looks at the hint, and says so (`false`) — the scheduler then leaves the
 * record out. All run a dispatch with or without the record. Reads of the record are counted on the real store (a
 * port we own): the hint saves exactly the start's read, and a record that moved costs the read it saved.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CHANNELS,
  JobTypeRegistry,
  STREAMS,
  SUBJECTS,
  newJob,
  streamDeclarations,
  systemClock,
  workerConsumer,
  requestCancel,
  reprioritize,
  type DispatchMessage,
  type DispatchPayload,
  type StoredJob,
} from '@gantry/contracts';
import {
  JetStreamContext,
  NatsHandle,
  decodeJson,
  decodePayload,
  ensureConsumer,
  provision,
  publishJson,
} from '@gantry/jetstream';
import { JobStore } from '@gantry/job-store';
import { NatsServer, noopSpec } from '@gantry/testing';
import {
  contextFromTraceparent,
  createLogger,
  createRegistry,
  extractTrace,
  inContext,
  startTelemetry,
  type Context,
  type Telemetry,
} from '@gantry/telemetry';
import { ExecutorRegistry } from '../src/executors/executor-registry';
import { NoopExecutor } from '../src/executors/noop.executor';
import { DEFAULT_TRANSFERS } from '../src/executors/transfers';
import { AttemptRunner } from '../src/runner/attempt-runner';
import { WorkerMetrics } from '../src/runner/worker-metrics';
import { WorkerService } from '../src/worker.service';

const logger = createLogger('dispatch-record-hint', 'silent');

/** The real store, counting the reads of each job's record (a compare-and-set without a hint reads first). */
class CountingStore extends JobStore {
  readonly reads = new Map<string, number>();
  override get(id: string, o?: Parameters<JobStore['get']>[1]): Promise<StoredJob | undefined> {
    this.reads.set(id, (this.reads.get(id) ?? 0) + 1);
    return super.get(id, o);
  }
}

describe('the dispatch record hint on the worker (real nats-server)', () => {
  let server: NatsServer;
  let nats: NatsHandle;
  let scratch: string;
  let counter = 0;

  beforeAll(async () => {
    server = await NatsServer.start();
    nats = await NatsHandle.connect({ servers: [server.url], name: 'dispatch-record-hint', logger });
    const s = streamDeclarations();
    await provision(nats, { streams: [s.jobs, s.dispatch] }, logger);
    scratch = mkdtempSync(join(tmpdir(), 'gantry-record-hint-'));
  });
  afterAll(async () => {
    await nats?.drain();
    await server?.dispose();
    rmSync(scratch, { recursive: true, force: true });
  });

  /** A worker's runner and its service (not started: only its heartbeat is read) with this started-revision delay. */
  const worker = async (
    workerId: string,
    startedRevisionDelayMs: number,
    o: { readBeforeStart?: boolean; slots?: number } = {},
  ) => {
    await ensureConsumer(nats.jsm, workerConsumer(workerId, 4), logger);
    const store = new CountingStore(nats, systemClock);
    const runner = new AttemptRunner({
      workerId,
      nats,
      jobs: store,
      executors: new ExecutorRegistry(new JobTypeRegistry([JobTypeRegistry.load().get('noop')!]), [new NoopExecutor()]),
      clock: systemClock,
      gpus: () => [],
      scratchRoot: scratch,
      progressIntervalMs: 100,
      metrics: new WorkerMetrics(createRegistry(workerId), () => ({ slots: 4, busy: 0, gpus: 0 })),
      logger,
      transfers: DEFAULT_TRANSFERS,
      startedRevisionDelayMs,
      ...(o.readBeforeStart !== undefined ? { readBeforeStart: o.readBeforeStart } : {}),
      slots: o.slots ?? 4,
    });
    const service = new WorkerService(
      { id: workerId, pool: 'default', slots: 4, slotsPerGpu: 4, gpus: [], jobTypes: ['noop'], version: 'test' },
      nats,
      runner,
      systemClock,
      { heartbeatMs: 1_000, lostAfterMs: 10_000 },
      logger,
    );
    return { workerId, store, runner, service };
  };

  /** A new queued job, as the gateway stores it. */
  const createJob = async (o: Parameters<typeof noopSpec>[1] = {}): Promise<StoredJob> =>
    new JobStore(nats, systemClock).create(newJob(noopSpec(`hint${++counter}`, o), new Date()));

  /** Attempt 1 of `job` for the worker, with the record and revision it was given (or none). */
  const attempt = (w: Awaited<ReturnType<typeof worker>>, job: StoredJob, withRecord: boolean): DispatchMessage => ({
    v: 1,
    workerId: w.workerId,
    epoch: 1,
    dispatchedAt: new Date().toISOString(),
    jobId: job.record.id,
    generation: 1,
    attempt: 1,
    gpuIndices: [],
    memoryMb: 0,
    ...(withRecord ? { record: job.record, revision: job.revision } : {}),
  });

  /** Attempt 1 of each job in one batch message for the worker, each with its record and revision. */
  const batchOf = (w: Awaited<ReturnType<typeof worker>>, jobs: StoredJob[]): DispatchPayload => {
    const { v, workerId, epoch, dispatchedAt } = attempt(w, jobs[0]!, true);
    return {
      v,
      workerId,
      epoch,
      dispatchedAt,
      attempts: jobs.map((j) => {
        const { v: _v, workerId: _w, epoch: _e, dispatchedAt: _d, ...one } = attempt(w, j, true);
        return one;
      }),
    };
  };

  /** Publishes the dispatch to the worker's subject and takes the next delivery from its durable consumer. */
  const deliver = async (w: Awaited<ReturnType<typeof worker>>, p: DispatchPayload, parent?: Context) => {
    await publishJson(nats.js, SUBJECTS.dispatch(w.workerId), p, parent ? { parent } : {});
    return next(w);
  };
  const next = async (w: Awaited<ReturnType<typeof worker>>) => {
    const consumer = await nats.js.consumers.get(STREAMS.dispatch, workerConsumer(w.workerId, 4).durable_name);
    const msg = await consumer.next({ expires: 10_000 });
    expect(msg).not.toBeNull();
    return msg!;
  };

  /** As the worker's transport does: the channel's check, then the runner (which settles the message). */
  const handle = async (w: Awaited<ReturnType<typeof worker>>, msg: Awaited<ReturnType<typeof next>>) => {
    const ctx = new JetStreamContext(msg, 'dispatch');
    await w.runner.handle(decodePayload(CHANNELS.dispatch, msg.data), ctx);
    return ctx;
  };

  /** Read on another store: the worker's counts only its own reads. */
  const stored = async (id: string) => (await new JobStore(nats, systemClock).get(id, { consistent: true }))!;

  /** Creates a job, dispatches attempt 1 to the worker (with its record and revision or without) and handles it. */
  const runOne = async (w: Awaited<ReturnType<typeof worker>>, withRecord: boolean): Promise<string> => {
    const job = await createJob();
    const ctx = await handle(w, await deliver(w, attempt(w, job, withRecord)));
    expect(ctx.settled).toBe('ack');
    expect((await stored(job.record.id)).record).toMatchObject({
      status: 'completed',
      attempts: 1,
      workerId: w.workerId,
    });
    return job.record.id;
  };

  it('with no started-revision delay: says it uses the hint, and its start reads nothing when the dispatch has one', async () => {
    const w = await worker('hint-zero', 0);
    expect(w.runner.usesDispatchRecordHint).toBe(true);
    expect(w.service.heartbeat().dispatchRecordHint).toBe(true);

    const hinted = await runOne(w, true);
    expect(w.store.reads.get(hinted) ?? 0).toBe(0); // the start's compare-and-set on the hint, the outcome on its own write
    const bare = await runOne(w, false);
    expect(w.store.reads.get(bare)).toBe(1); // no hint: the start reads the record first
  });

  it('with a started-revision delay (the default): says it uses the hint, and a first delivery with one reads nothing', async () => {
    const w = await worker('hint-delay', 250);
    expect(w.runner.usesDispatchRecordHint).toBe(true);
    expect(w.service.heartbeat().dispatchRecordHint).toBe(true);

    const hinted = await runOne(w, true);
    expect(w.store.reads.get(hinted) ?? 0).toBe(0); // checked on the carried record; one revision, its outcome
    const bare = await runOne(w, false);
    expect(w.store.reads.get(bare)).toBe(1); // no record carried: read before the start
    const history = await new JobStore(nats, systemClock).history(hinted, { raw: true });
    expect(history.map((e) => e.record.status)).toEqual(['queued', 'completed']);
  });

  it('with readBeforeStart: says it takes no hint, reads before every start, and runs dispatches without one', async () => {
    const w = await worker('hint-read', 250, { readBeforeStart: true });
    expect(w.runner.usesDispatchRecordHint).toBe(false);
    expect(w.service.heartbeat().dispatchRecordHint).toBe(false);

    // The hint changes nothing here: the same one read (from the stream leader) before the start either way.
    const bare = await runOne(w, false);
    const hinted = await runOne(w, true);
    expect(w.store.reads.get(bare)).toBe(1);
    expect(w.store.reads.get(hinted)).toBe(1);
  });

  it('a job cancelled after its dispatch: the carried record is trusted, the outcome write is refused, nothing is written over the cancel', async () => {
    const w = await worker('hint-cancelled', 250);
    const job = await createJob();
    const msg = await deliver(w, attempt(w, job, true));
    // The cancel lands between the scheduler's read (the carried record) and the worker's start.
    await new JobStore(nats, systemClock).transition(job.record.id, (c) => requestCancel(c.record, new Date()));
    const ctx = await handle(w, msg);
    expect(ctx.settled).toBe('ack');
    const after = await stored(job.record.id);
    expect(after.record.status).toBe('cancelled');
    expect(after.record.attempts).toBe(0); // no attempt counted, no start recorded
    const history = await new JobStore(nats, systemClock).history(job.record.id, { raw: true });
    expect(history.map((e) => e.record.status)).toEqual(['queued', 'cancelled']);
    expect(w.store.reads.get(job.record.id)).toBe(1); // the refused compare-and-set's read, which found the cancel
  });

  it('a job cancelled after its dispatch that runs past the delay: its start write is refused and the process killed at the delay', async () => {
    const w = await worker('hint-cancelled-long', 100);
    const job = await createJob({ input: { durationMs: 30_000 } });
    const msg = await deliver(w, attempt(w, job, true));
    await new JobStore(nats, systemClock).transition(job.record.id, (c) => requestCancel(c.record, new Date()));
    const begun = Date.now();
    const ctx = await handle(w, msg); // would take 30 s if the job ran to its end
    expect(Date.now() - begun).toBeLessThan(15_000);
    expect(ctx.settled).toBe('ack');
    const history = await new JobStore(nats, systemClock).history(job.record.id, { raw: true });
    expect(history.map((e) => e.record.status)).toEqual(['queued', 'cancelled']);
  });

  it('a priority change after its dispatch: the carried revision is stale, the outcome is stored on the current record', async () => {
    const w = await worker('hint-moved', 250);
    const job = await createJob();
    const msg = await deliver(w, attempt(w, job, true));
    await new JobStore(nats, systemClock).transition(job.record.id, (c) =>
      reprioritize(c.record, 'urgent', new Date()),
    );
    const ctx = await handle(w, msg);
    expect(ctx.settled).toBe('ack');
    const after = await stored(job.record.id);
    expect(after.record).toMatchObject({ status: 'completed', attempts: 1, priority: 'urgent', workerId: w.workerId });
    expect(w.store.reads.get(job.record.id)).toBe(1); // the compare-and-set on the carried revision lost, then read
  });

  it('a message delivered again reads before it starts, whatever it carries', async () => {
    const w = await worker('hint-redelivered', 250);
    const job = await createJob();
    const first = await deliver(w, attempt(w, job, true));
    expect(first.info.deliveryCount).toBe(1);
    first.nak();
    const again = await next(w);
    expect(again.info.deliveryCount).toBe(2);
    const ctx = await handle(w, again);
    expect(ctx.settled).toBe('ack');
    expect((await stored(job.record.id)).record.status).toBe('completed');
    expect(w.store.reads.get(job.record.id)).toBe(1);
  });

  it('an attempt that waited for a slot reads before it starts (its carried record may be old by then)', async () => {
    const w = await worker('hint-slot', 250, { slots: 1 });
    const a = await createJob({ input: { durationMs: 300 } });
    const b = await createJob();
    const ctx = await handle(w, await deliver(w, batchOf(w, [a, b])));
    expect(ctx.settled).toBe('ack');
    expect((await stored(a.record.id)).record.status).toBe('completed');
    expect((await stored(b.record.id)).record.status).toBe('completed');
    expect(w.store.reads.get(a.record.id) ?? 0).toBe(0); // got the slot at once
    expect(w.store.reads.get(b.record.id)).toBe(1); // waited for a's slot
  });

  it('an attempt sent without its record whose job was cancelled since: read, dropped, the scheduler told', async () => {
    const w = await worker('hint-stale-unread', 250);
    const job = await createJob();
    await new JobStore(nats, systemClock).transition(job.record.id, (c) => requestCancel(c.record, new Date()));
    const released = nats.nc.subscribe(SUBJECTS.dispatchReleased, { max: 1 });
    const ctx = await handle(w, await deliver(w, attempt(w, job, false)));
    expect(ctx.settled).toBe('ack');
    for await (const m of released) {
      expect(decodeJson(m.data)).toMatchObject({ jobId: job.record.id, workerId: w.workerId });
      break;
    }
    const history = await new JobStore(nats, systemClock).history(job.record.id, { raw: true });
    expect(history.map((e) => e.record.status)).toEqual(['queued', 'cancelled']);
    expect(w.store.reads.get(job.record.id)).toBe(2); // the start's check, then the look for an own unfinished attempt
  });

  describe('traces (telemetry started as a worker starts it, nothing exported)', () => {
    let telemetry: Telemetry;
    beforeAll(() => {
      telemetry = startTelemetry('dispatch-record-hint-test', {});
    });
    afterAll(async () => {
      await telemetry.shutdown();
    });

    const traceOf = (traceparent: string | undefined) => traceparent?.slice(3, 35);
    /** The trace id of the job's last stored revision (its outcome's publish span is in that trace). */
    const outcomeTrace = async (id: string) =>
      traceOf(
        (await nats.jsm.streams.getMessage(STREAMS.jobs, { last_by_subj: SUBJECTS.job(id) }))?.header.get(
          'traceparent',
        ),
      );

    /** As the worker's transport does: the message's trace context active while it is handled. */
    const handleInItsTrace = async (w: Awaited<ReturnType<typeof worker>>, msg: Awaited<ReturnType<typeof next>>) => {
      const ctx = new JetStreamContext(msg, 'dispatch');
      await inContext(extractTrace(msg.headers), () =>
        w.runner.handle(decodePayload(CHANNELS.dispatch, msg.data), ctx),
      );
      return ctx;
    };

    it("an attempt dispatched in another trace than its job's (sent without its record at depth) runs and ends in its job's trace", async () => {
      const w = await worker('trace-unread', 250);
      const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
      const job = await createJob({ traceparent: `00-${traceId}-00f067aa0ba902b7-01` });
      const msg = await deliver(w, attempt(w, job, false)); // published in a trace of its own, as at depth
      expect(traceOf(msg.headers?.get('traceparent'))).not.toBe(traceId);
      expect((await handleInItsTrace(w, msg)).settled).toBe('ack');
      expect(await outcomeTrace(job.record.id)).toBe(traceId);
    });

    it("each attempt of a batch (in its first job's trace) ends in its own job's trace", async () => {
      const w = await worker('trace-batch', 250);
      const ids = ['aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1', 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb2'];
      const a = await createJob({ traceparent: `00-${ids[0]}-00f067aa0ba902b7-01` });
      const b = await createJob({ traceparent: `00-${ids[1]}-00f067aa0ba902b7-01` });
      const msg = await deliver(w, batchOf(w, [a, b]), contextFromTraceparent(a.record.traceparent));
      expect(traceOf(msg.headers?.get('traceparent'))).toBe(ids[0]);
      expect((await handleInItsTrace(w, msg)).settled).toBe('ack');
      expect(await outcomeTrace(a.record.id)).toBe(ids[0]);
      expect(await outcomeTrace(b.record.id)).toBe(ids[1]);
    });
  });
});
