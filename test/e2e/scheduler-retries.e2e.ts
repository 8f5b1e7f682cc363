/**
 * Issue 4, retries and timeouts: backoff from RETRY_DELAYS_MS between attempts (the job holds no token while it
 * waits), non-retryable failures end at once, the per-attempt timeout ends an attempt with TIMEOUT, a job that
 * exhausts its attempts ends failed and an admin retry starts a new generation — and a retry whose delay is longer
 * than the dispatch AckWait survives a kill -9 of the scheduler and of nats-server while it waits.
 */
import { CONSUMERS, STREAMS, type StoredJob } from '@gantry/contracts';
import { GantryCluster, waitFor } from '@gantry/testing';
import { SCHEDULER_E2E_ENV, StreamReader, runIntervals, workerIdOf } from './support/scheduler-support';

interface View {
  id: string;
  status: string;
  attempts: number;
  generation: number;
  error?: { code: string; message: string };
}

const DELAYS = [300, 700];

/** Checks that every retry waited out its delay: the next attempt started no earlier than `retryAt`. */
function expectBackoff(history: StoredJob[], delays: number[]): void {
  const retrying = history.filter((s) => s.event.type === 'job.retrying');
  const starts = history.filter((s) => s.event.type === 'job.started');
  expect(starts.length).toBe(retrying.length + 1);
  retrying.forEach((r, k) => {
    const retryAt = Date.parse(r.record.retryAt!);
    expect(retryAt - Date.parse(r.record.updatedAt)).toBe(delays[Math.min(k, delays.length - 1)]);
    expect(Date.parse(starts[k + 1]!.record.startedAt!)).toBeGreaterThanOrEqual(retryAt);
  });
}

describe('retries, backoff and timeouts (real processes)', () => {
  let cluster: GantryCluster;
  let reader: StreamReader;

  beforeAll(async () => {
    cluster = await GantryCluster.start({
      workers: 1,
      env: { ...SCHEDULER_E2E_ENV, RETRY_DELAYS_MS: DELAYS.join(','), MAX_CONCURRENT_JOBS: '4' },
    });
    reader = await StreamReader.connect(cluster);
  });

  afterAll(async () => {
    await reader?.close();
    await cluster?.stop();
  });

  it('retries a failing job with backoff until it succeeds', async () => {
    const id = await cluster.submit({ type: 'noop', input: { durationMs: 20, failTimes: 2 }, maxAttempts: 3 });
    const done = (await cluster.waitForStatus(id, 'completed')) as unknown as View;
    expect(done.attempts).toBe(3);
    const history = await reader.history(id);
    expectBackoff(history, DELAYS);
    expect(history.filter((s) => s.event.type === 'job.retrying').map((s) => s.record.error?.code)).toEqual([
      'JOB_FAILED',
      'JOB_FAILED',
    ]);
  });

  it('fails a non-retryable error at once', async () => {
    const id = await cluster.submit({
      type: 'noop',
      input: { failTimes: 1, retryable: false },
      maxAttempts: 4,
    });
    const v = (await cluster.waitForStatus(id, 'failed')) as unknown as View;
    expect(v).toMatchObject({ attempts: 1, error: { code: 'JOB_FAILED' } });
    expect((await reader.history(id)).some((s) => s.event.type === 'job.retrying')).toBe(false);
  });

  it('ends an attempt that runs past its timeout with TIMEOUT, retries it, then fails', async () => {
    const id = await cluster.submit({ type: 'noop', input: { durationMs: 20_000 }, timeoutSeconds: 1, maxAttempts: 2 });
    const v = (await cluster.waitForStatus(id, 'failed', { timeoutMs: 30_000 })) as unknown as View;
    expect(v).toMatchObject({ attempts: 2, error: { code: 'TIMEOUT' } });
    const history = await reader.history(id);
    expectBackoff(history, DELAYS);
    for (const run of runIntervals(history)) {
      expect(run.end - run.start).toBeGreaterThanOrEqual(950);
      expect(run.end - run.start).toBeLessThan(6_000);
    }
  });

  it('dead-letters a job that exhausts its attempts; an admin retry runs it again as a new generation', async () => {
    const id = await cluster.submit({ type: 'noop', input: { failTimes: 10 }, maxAttempts: 2 });
    const failed = (await cluster.waitForStatus(id, 'failed')) as unknown as View;
    expect(failed).toMatchObject({ attempts: 2, generation: 1 });
    expect((await cluster.api('POST', `/v1/jobs/${id}/retry`, undefined)).status).toBe(202);
    const again = await cluster.waitForJob<View>(id, (j) => j.generation === 2 && j.status === 'failed');
    expect(again.attempts).toBe(2);
    const history = await reader.history(id);
    expect(
      history.filter((s) => s.event.type === 'job.started').map((s) => [s.record.generation, s.record.attempts]),
    ).toEqual([
      [1, 1],
      [1, 2],
      [2, 1],
      [2, 2],
    ]);
    // A running or completed job cannot be retried.
    const ok = await cluster.submit({ type: 'noop', input: {} });
    await cluster.waitForStatus(ok, 'completed');
    expect((await cluster.api('POST', `/v1/jobs/${ok}/retry`)).status).toBe(409);

    // A cancelled job retried by an admin completes.
    const paused = await cluster.api('POST', '/v1/queue/pause');
    expect(paused.status).toBe(200);
    const c = await cluster.submit({ type: 'noop', input: { result: { n: 1 } } });
    expect((await cluster.api<View>('POST', `/v1/jobs/${c}/cancel`)).body.status).toBe('cancelled');
    expect((await cluster.api('POST', '/v1/queue/resume')).status).toBe(200);
    expect((await cluster.api('POST', `/v1/jobs/${c}/retry`)).status).toBe(202);
    const completed = (await cluster.waitForStatus(c, 'completed')) as unknown as View;
    expect(completed).toMatchObject({ generation: 2, attempts: 1 });
  });

  it('keeps a retry waiting longer than AckWait through a kill -9 of the scheduler and of nats-server', async () => {
    const RETRY_MS = 35_000;
    // The delay policy is stamped on a job at submit: a gateway with a long one.
    for (const gw of cluster.of('gateway')) await gw.kill('SIGTERM');
    await cluster.startGateway({ RETRY_DELAYS_MS: String(RETRY_MS) });
    const workerId = await workerIdOf(cluster.of('gpu-worker')[0]!);
    const ackWaitMs =
      (await reader.nats.jsm.consumers.info(STREAMS.dispatch, CONSUMERS.worker(workerId))).config.ack_wait! / 1e6;
    expect(RETRY_MS).toBeGreaterThan(ackWaitMs);

    const id = await cluster.submit({ type: 'noop', input: { durationMs: 20, failTimes: 1 }, maxAttempts: 2 });
    await cluster.waitForStatus(id, 'retrying');
    // Waiting out its delay, the job holds no token.
    const q = await waitFor(
      async () => {
        const r = await cluster.api<{ retrying: number; running: number; availableTokens: number }>('GET', '/v1/queue');
        return r.body.retrying === 1 ? r.body : undefined;
      },
      { what: 'the retry counted as retrying' },
    );
    expect(q).toMatchObject({ running: 0, availableTokens: 4 });

    await cluster.of('scheduler')[0]!.kill('SIGKILL');
    await cluster.nats.kill();
    await cluster.nats.restart();
    cluster.spawn('scheduler');

    const done = (await cluster.waitForStatus(id, 'completed', { timeoutMs: 60_000 }).catch(async (err) => {
      console.log(JSON.stringify(await cluster.job(id)), cluster.logs(40));
      throw err;
    })) as unknown as View;
    expect(done.attempts).toBe(2);
    const history = await reader.history(id);
    expectBackoff(history, [RETRY_MS]);
    const retryAt = Date.parse(history.find((s) => s.event.type === 'job.retrying')!.record.retryAt!);
    const secondStart = Date.parse(history.filter((s) => s.event.type === 'job.started')[1]!.record.startedAt!);
    // Not early, and not much later than due either (nothing stuck behind the restarts).
    expect(secondStart - retryAt).toBeLessThan(15_000);
  }, 180_000);
});
