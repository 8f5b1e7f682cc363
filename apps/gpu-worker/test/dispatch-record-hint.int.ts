/**
 * The dispatch's record hint from the worker's side (real nats-server, the runner driven directly through real dispatch
 * messages; docs/architecture.md, "Dispatch record hint"). A worker with no started-revision delay compare-and-sets its
 * start on the record a dispatch carries and says so in its heartbeat (`dispatchRecordHint: true`); one with a delay
 * reads the record from the stream leader before every start, never looks at the hint, and says so (`false`) — the
 * scheduler then leaves the record out. Both run a dispatch with or without the record. Reads of the record are counted
 * on the real store (a port we own): the hint saves exactly the start's read.
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
  type DispatchMessage,
  type StoredJob,
} from '@gantry/contracts';
import { JetStreamContext, NatsHandle, decodePayload, ensureConsumer, provision, publishJson } from '@gantry/jetstream';
import { JobStore } from '@gantry/job-store';
import { NatsServer, noopSpec } from '@gantry/testing';
import { createLogger, createRegistry } from '@gantry/telemetry';
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
  const worker = async (workerId: string, startedRevisionDelayMs: number) => {
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
      slots: 4,
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

  /** Creates a job, dispatches attempt 1 to the worker (with its record and revision or without) and handles it. */
  const runOne = async (w: Awaited<ReturnType<typeof worker>>, withRecord: boolean): Promise<string> => {
    const id = `hint${++counter}`;
    const created = await new JobStore(nats, systemClock).create(newJob(noopSpec(id), new Date()));
    const m: DispatchMessage = {
      v: 1,
      workerId: w.workerId,
      epoch: 1,
      dispatchedAt: new Date().toISOString(),
      jobId: id,
      generation: 1,
      attempt: 1,
      gpuIndices: [],
      memoryMb: 0,
      ...(withRecord ? { record: created.record, revision: created.revision } : {}),
    };
    await publishJson(nats.js, SUBJECTS.dispatch(w.workerId), m);
    const consumer = await nats.js.consumers.get(STREAMS.dispatch, workerConsumer(w.workerId, 4).durable_name);
    const msg = await consumer.next({ expires: 10_000 });
    expect(msg).not.toBeNull();
    // As the worker's transport does: the channel's check, then the runner (which settles the message).
    const ctx = new JetStreamContext(msg!, 'dispatch');
    await w.runner.handle(decodePayload(CHANNELS.dispatch, msg!.data), ctx);
    expect(ctx.settled).toBe('ack');
    // Read on another store: the worker's counts only its own reads.
    const done = await new JobStore(nats, systemClock).get(id, { consistent: true });
    expect(done!.record).toMatchObject({ status: 'completed', attempts: 1, workerId: w.workerId });
    return id;
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

  it('with a started-revision delay: says it takes no hint, reads before every start, and runs dispatches without one', async () => {
    const w = await worker('hint-delay', 250);
    expect(w.runner.usesDispatchRecordHint).toBe(false);
    expect(w.service.heartbeat().dispatchRecordHint).toBe(false);

    // The hint changes nothing here: the same one read (from the stream leader) before the start either way.
    const bare = await runOne(w, false);
    const hinted = await runOne(w, true);
    expect(w.store.reads.get(bare)).toBe(1);
    expect(w.store.reads.get(hinted)).toBe(1);
  });
});
