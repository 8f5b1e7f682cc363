/**
 * A batch message that must go back to the broker (real nats-server; the runner driven directly so that one
 * attempt's outcome write can be made to fail — a spy on the job store, a port we own). The message is naked only once
 * every attempt in it has settled; on its redelivery the attempt that asked for it is dealt with as before batches
 * (`recoverOwnAttempt` fails it retryably) while the attempts this worker already settled are skipped, not looked at
 * again (the scheduler would otherwise be told a finished attempt was a stale dispatch).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  JobTypeRegistry,
  SUBJECTS,
  newJob,
  streamDeclarations,
  systemClock,
  workerConsumer,
  type DispatchBatch,
  type DispatchReleased,
  type StoredJob,
  type Transition,
} from '@gantry/contracts';
import { JetStreamContext, NatsHandle, decodeJson, ensureConsumer, provision, publishJson } from '@gantry/jetstream';
import { JobStore } from '@gantry/job-store';
import { NatsServer, waitFor, noopSpec } from '@gantry/testing';
import { createLogger, createRegistry } from '@gantry/telemetry';
import { ExecutorRegistry } from '../src/executors/executor-registry';
import { NoopExecutor } from '../src/executors/noop.executor';
import { DEFAULT_TRANSFERS } from '../src/executors/transfers';
import { AttemptRunner } from '../src/runner/attempt-runner';
import { WorkerMetrics } from '../src/runner/worker-metrics';

const logger = createLogger('attempt-runner-batch', 'silent');
const WORKER = 'wbatch';

/** The real store, whose outcome writes for one job fail (as NATS trouble would) while `failing` is set. */
class FlakyStore extends JobStore {
  failing: string | undefined;
  override transition(
    id: string,
    decide: (cur: StoredJob) => Transition,
    o?: Parameters<JobStore['transition']>[2],
  ): Promise<StoredJob> {
    if (id === this.failing) {
      return super.get(id, { consistent: true }).then((cur) => {
        // Only the outcome (the record already running): the start goes through.
        if (cur?.record.status === 'running') throw new Error('nats: timeout');
        return super.transition(id, decide, o);
      });
    }
    return super.transition(id, decide, o);
  }
}

describe('a batch message given back (real nats-server)', () => {
  let server: NatsServer;
  let nats: NatsHandle;
  let scratch: string;

  beforeAll(async () => {
    server = await NatsServer.start();
    nats = await NatsHandle.connect({ servers: [server.url], name: 'attempt-runner-batch', logger });
    const s = streamDeclarations();
    await provision(nats, { streams: [s.jobs, s.dispatch] }, logger);
    await ensureConsumer(nats.jsm, workerConsumer(WORKER, 4), logger);
    scratch = mkdtempSync(join(tmpdir(), 'gantry-runner-batch-'));
  });
  afterAll(async () => {
    await nats?.drain();
    await server?.dispose();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('naks once all settled; the redelivery fails the unrecorded outcome and skips the attempt already done', async () => {
    const store = new FlakyStore(nats, systemClock);
    const create = async (id: string) =>
      store.create(newJob(noopSpec(id, { maxAttempts: 3, retryDelaysMs: [0] }), new Date()));
    const done = await create('nakdone');
    const stuck = await create('nakstuck');
    const released: DispatchReleased[] = [];
    nats.nc.subscribe(SUBJECTS.dispatchReleased, {
      callback: (_e, m) => void released.push(decodeJson<DispatchReleased>(m.data)),
    });
    const runner = new AttemptRunner({
      workerId: WORKER,
      nats,
      jobs: store,
      executors: new ExecutorRegistry(new JobTypeRegistry([JobTypeRegistry.load().get('noop')!]), [new NoopExecutor()]),
      clock: systemClock,
      gpus: () => [],
      scratchRoot: scratch,
      progressIntervalMs: 100,
      metrics: new WorkerMetrics(createRegistry('runner-batch'), () => ({ slots: 4, busy: 0, gpus: 0 })),
      logger,
      transfers: DEFAULT_TRANSFERS,
      outcomeRetryMs: 0, // the first failed outcome write gives the message back
      startedRevisionDelayMs: 0,
      slots: 4,
    });
    const batch: DispatchBatch = {
      v: 1,
      workerId: WORKER,
      epoch: 1,
      dispatchedAt: new Date().toISOString(),
      attempts: [done, stuck].map((s) => ({
        jobId: s.record.id,
        generation: 1,
        attempt: 1,
        gpuIndices: [],
        memoryMb: 0,
        record: s.record,
        revision: s.revision,
      })),
    };
    await publishJson(nats.js, SUBJECTS.dispatch(WORKER), batch);
    const consumer = await nats.js.consumers.get('GANTRY_DISPATCH_V1', `worker_${WORKER}`);

    store.failing = 'nakstuck';
    const first = await consumer.next({ expires: 5_000 });
    const ctx1 = new JetStreamContext(first!, 'dispatch');
    await runner.handle(batch, ctx1);
    expect(ctx1.settled).toBe('nak');
    expect((await store.get('nakdone', { consistent: true }))!.record).toMatchObject({
      status: 'completed',
      attempts: 1,
    });
    expect((await store.get('nakstuck', { consistent: true }))!.record.status).toBe('running');

    // The redelivery (after the nak's 5 s): the stuck attempt is failed retryably, the finished one is not touched.
    store.failing = undefined;
    const again = await waitFor(async () => (await consumer.next({ expires: 10_000 })) ?? undefined, {
      what: 'the redelivery',
      timeoutMs: 20_000,
    });
    expect(again.info.deliveryCount).toBe(2);
    const ctx2 = new JetStreamContext(again, 'dispatch');
    await runner.handle(batch, ctx2);
    expect(ctx2.settled).toBe('ack');
    expect((await store.get('nakstuck', { consistent: true }))!.record).toMatchObject({
      status: 'retrying',
      error: { code: 'INTERNAL', retryable: true },
    });
    const history = (await store.history('nakdone')).map((h) => h.event.type);
    expect(history.filter((t) => t === 'job.completed')).toHaveLength(1);
    expect(history.filter((t) => t === 'job.started')).toHaveLength(1);
    // A finished attempt is never reported as a stale dispatch.
    await nats.nc.flush();
    expect(released.filter((r) => r.jobId === 'nakdone')).toEqual([]);
  });
});
