/**
 * A dispatch round holds at most its byte budget of job records (issue 15), against a real nats-server: a round
 * decides up to `batch` jobs and each dispatch carries the job's whole record (up to MAX_JOB_BYTES), so 256 records
 * of 1 MiB were 256 MB in one round. Records are read in chunks sized from what the earlier ones weighed; once the
 * budget is held, the rest of the round's decisions go back to the queue and the next round takes them — every job is
 * still dispatched, once.
 */
import {
  STREAMS,
  bucketDeclarations,
  newJob,
  streamDeclarations,
  systemClock,
  type DispatchMessage,
  type StoredJob,
} from '@gantry/contracts';
import { decodeJson } from '@gantry/jetstream';
import { JobStore } from '@gantry/job-store';
import { waitFor, noopSpec } from '@gantry/testing';
import { createLogger, createRegistry } from '@gantry/telemetry';
import { Dispatcher } from '../src/dispatch/dispatcher';
import { storedJobBytes } from '../src/dispatch/record-cache';
import { SchedulerState } from '../src/domain/scheduler-state';
import { SchedulerMetrics } from '../src/stats/metrics';
import { realNats } from './real-nats';

const logger = createLogger('dispatch-round-bytes-test', 'silent');
const JOBS = 12;
const RECORD_CHARS = 100_000;

/** The real store, recording how many records each read asked for (a spy on a port we own, not a fake). */
class CountingStore extends JobStore {
  readonly reads: number[] = [];
  override getMany(ids: readonly string[], o?: Parameters<JobStore['getMany']>[1]): Promise<Map<string, StoredJob>> {
    // (The takeover's adoption of outstanding dispatches reads too: none here, an empty read.)
    if (ids.length > 0) this.reads.push(ids.length);
    return super.getMany(ids, o);
  }
}

describe('dispatch round byte budget (real nats-server)', () => {
  const real = realNats('round-bytes', logger, {
    streams: [streamDeclarations().jobs, streamDeclarations().dispatch],
    buckets: [bucketDeclarations().leader],
  });

  it('reads no more records per round than its budget holds, and still dispatches every job once', async () => {
    const { nats } = real;
    const writer = new JobStore(nats, systemClock);
    const stored: StoredJob[] = [];
    for (let i = 0; i < JOBS; i++)
      stored.push(
        await writer.create(newJob(noopSpec(`big${i}`, { input: { result: 'x'.repeat(RECORD_CHARS) } }), new Date())),
      );
    const perRecord = storedJobBytes(stored[0]!);
    const budget = 3 * perRecord;

    const state = new SchedulerState(JOBS, undefined);
    for (const s of stored) state.apply(s, false);
    state.capacity.upsertWorker({
      id: 'w1',
      pool: 'default',
      slots: JOBS,
      slotsPerGpu: JOBS,
      gpus: [],
      draining: false,
    });
    state.capacity.setReady('w1', true);
    const store = new CountingStore(nats, systemClock);
    const fenced: string[] = [];
    const dispatcher = new Dispatcher(
      nats,
      store,
      state,
      systemClock,
      // No record cache: every record is read, so every read is seen.
      { agingMs: 0, batch: JOBS, recordCacheBytes: 0, roundRecordBytes: budget },
      new SchedulerMetrics(
        createRegistry('round-bytes'),
        state,
        () => true,
        () => ({ maxQueueSize: 1_000 }),
      ),
      logger,
      (reason) => void fenced.push(reason),
    );
    await dispatcher.activate(1, async () => undefined);

    const dispatched = await waitFor(
      async () => {
        const info = await nats.jsm.streams.info(STREAMS.dispatch);
        return info.state.messages >= JOBS ? info.state : undefined;
      },
      { what: `${JOBS} dispatches`, timeoutMs: 30_000, intervalMs: 50 },
    );
    // Every job once: read every dispatch back.
    const ids: string[] = [];
    for (let seq = dispatched.first_seq; seq <= dispatched.last_seq; seq++) {
      const m = await nats.jsm.streams.getMessage(STREAMS.dispatch, { seq }).catch(() => undefined);
      if (m) ids.push(decodeJson<DispatchMessage>(m.data).jobId);
    }
    expect(ids.sort()).toEqual(stored.map((s) => s.record.id).sort());
    expect(fenced).toEqual([]);
    // The first read of the process knows no record size (at most 8); every later one fits the budget (3 records).
    expect(store.reads[0]).toBeLessThanOrEqual(8);
    expect(Math.max(...store.reads.slice(1))).toBeLessThanOrEqual(3);
    expect(store.reads.reduce((a, b) => a + b, 0)).toBe(JOBS);
    dispatcher.deactivate();
  });
});
