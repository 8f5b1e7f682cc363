/**
 * The retry timer while NATS is down, against a real nats-server that is stopped and started again: a re-queue
 * (`retrying → queued`) that fails is tried again after an exponential backoff with jitter — a bounded rate, where it
 * used to be tried every second whatever happened — nothing is decided while the broker is away, and once it is back
 * the job is re-queued.
 */
import {
  jobError,
  failAttempt,
  newJob,
  startAttempt,
  streamDeclarations,
  systemClock,
  type StoredJob,
} from '@gantry/contracts';
import { NatsHandle, provision } from '@gantry/jetstream';
import { JobStore } from '@gantry/job-store';
import { NatsServer, waitFor, noopSpec } from '@gantry/testing';
import { createLogger } from '@gantry/telemetry';
import { SchedulerState } from '../src/domain/scheduler-state';
import { RetryTimer } from '../src/retries/retry-timer';

const logger = createLogger('retry-timer-backoff-test', 'silent');
/** Calls fail fast while the server is down, so the retry rate is the timer's own, not the call timeout's. */
const CALL_TIMEOUT_MS = 200;
const BACKOFF = { initialMs: 100, maxMs: 2_000 };
const OUTAGE_MS = 6_000;

describe('retry timer while nats-server is down (real nats-server)', () => {
  let server: NatsServer;
  let nats: NatsHandle;
  /** Writes and reads of the test itself, with the client's usual timeout (200 ms ones fail on a loaded machine). */
  let setup: NatsHandle;
  let timer: RetryTimer | undefined;

  beforeAll(async () => {
    server = await NatsServer.start();
    nats = await NatsHandle.connect({
      servers: [server.url],
      name: 'retry-timer-backoff-test',
      logger,
      timeoutMs: CALL_TIMEOUT_MS,
    });
    setup = await NatsHandle.connect({ servers: [server.url], name: 'retry-timer-backoff-setup', logger });
    await provision(setup, { streams: [streamDeclarations().jobs], buckets: [] }, logger);
  });
  afterAll(async () => {
    timer?.deactivate();
    await nats?.drain().catch(() => undefined);
    await setup?.drain().catch(() => undefined);
    await server?.dispose();
  });

  it('backs off with jitter while the re-queue fails, decides nothing, and re-queues once NATS is back', async () => {
    const jobs = new JobStore(setup, systemClock);
    const ids = ['r1', 'r2', 'r3'];
    const retryAt = new Map<string, number>();
    for (const id of ids) {
      await jobs.create(
        newJob(noopSpec(id, { tenant: 'acme', maxAttempts: 3, retryDelaysMs: [50] }), systemClock.now()),
      );
      const owner = { workerId: 'w1', generation: 1, attempt: 1 };
      await jobs.transition(id, (c) => startAttempt(c.record, owner, { gpus: [], gpuIndices: [] }, systemClock.now()));
      const failed: StoredJob = await jobs.transition(id, (c) =>
        failAttempt(c.record, owner, jobError('EXIT_CODE', 'boom', true), systemClock.now()),
      );
      expect(failed.record.status).toBe('retrying');
      retryAt.set(id, Date.parse(failed.record.retryAt!));
    }

    const state = new SchedulerState(4, undefined);
    const errors: { at: number; jobs: number; retryInMs: number }[] = [];
    // The timer's own calls fail fast (200 ms) while the server is down.
    timer = new RetryTimer(new JobStore(nats, systemClock), state, systemClock, logger, {
      backoff: BACKOFF,
      onRequeueError: (failedIds, _err, retryInMs) =>
        void errors.push({ at: Date.now(), jobs: failedIds.length, retryInMs }),
    });
    for (const id of ids) {
      // What the projection does on a `job.retrying` revision.
      state.retrying.set(id, retryAt.get(id)!);
      timer.scheduled(id, retryAt.get(id)!);
    }

    // Every retry is due before the outage begins, so each pass below covers all of them.
    const lastDue = Math.max(...retryAt.values());
    await waitFor(() => Date.now() > lastDue, { what: 'the retries to be due' });
    await server.stop();
    const downAt = Date.now();
    timer.activate();
    await waitFor(() => Date.now() - downAt >= OUTAGE_MS, { what: 'the outage', timeoutMs: OUTAGE_MS + 1_000 });
    const during = errors.filter((e) => e.at - downAt <= OUTAGE_MS);
    if (process.env['GANTRY_TEST_LOG']) console.log(during.map((e) => ({ ...e, at: e.at - downAt })));

    // The old timer: every due job again every 1 s whatever happened (≥ 6 passes in 6 s; with a 100 ms step, ~20).
    // With the backoff (100 ms doubling to 2 s, each wait in [½, 1] of its ceiling, plus the failing call itself):
    // the waits' lower bounds 50+100+200+400+800+1000+1000+1000 already pass 4.5 s, so at most ~9 passes.
    expect(during.length).toBeGreaterThanOrEqual(3);
    expect(during.length).toBeLessThanOrEqual(9);
    // One pass covers every due job (one outage, one backoff), not one retry loop per job.
    expect(during.every((e) => e.jobs === ids.length)).toBe(true);
    // Each wait is within [½, 1] of its ceiling (jitter), the ceilings double up to the maximum…
    during.forEach((e, i) => {
      const ceiling = Math.min(BACKOFF.maxMs, BACKOFF.initialMs * 2 ** i);
      expect(e.retryInMs).toBeGreaterThanOrEqual(ceiling / 2);
      expect(e.retryInMs).toBeLessThanOrEqual(ceiling);
    });
    // …and the timer really waited that long between passes (the observed rate is bounded, not just the number).
    for (let i = 1; i < during.length; i++)
      expect(during[i]!.at - during[i - 1]!.at).toBeGreaterThanOrEqual(during[i - 1]!.retryInMs - 20);
    // Nothing decided while the broker was away: the jobs are still waiting to be re-queued.
    for (const id of ids) expect(state.retrying.has(id)).toBe(true);

    await server.restart();
    const upAt = Date.now();
    // Within the largest wait plus a reconnect, on a loaded machine.
    await waitFor(
      async () => {
        for (const id of ids) if ((await jobs.get(id, { consistent: true }))?.record.status !== 'queued') return false;
        return true;
      },
      { what: 'every job re-queued after NATS is back', timeoutMs: 30_000, intervalMs: 200 },
    );
    const recoveredInMs = Date.now() - upAt;
    expect(recoveredInMs).toBeLessThan(30_000);
    for (const id of ids) {
      const j = await jobs.get(id, { consistent: true });
      // Re-queued once: attempt 2 has not been dispatched, the revision is queued after retrying.
      expect(j?.record).toMatchObject({ status: 'queued', attempts: 1 });
    }
  }, 90_000);
});
