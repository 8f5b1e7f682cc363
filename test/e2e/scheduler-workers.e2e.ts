/**
 * Issue 4, lost and zombie workers: the tokens a dead worker held come back when its heartbeats stop (its attempt ends
 * WORKER_LOST, consuming the attempt), and a worker frozen with SIGSTOP and thawed with SIGCONT after its attempt was
 * handed to another worker can neither complete that attempt nor ack the new one; thawed, it serves again.
 */
import { STREAMS, SUBJECTS, type DispatchMessage } from '@gantry/contracts';
import { GantryCluster, waitFor, type ServiceProcess } from '@gantry/testing';
import { SCHEDULER_E2E_ENV, StreamReader, workerIdOf } from './support/scheduler-support';

interface View {
  id: string;
  status: string;
  attempts: number;
  workerId?: string;
  error?: { code: string };
}
interface Stats {
  activeJobs: number;
  availableTokens: number;
}

describe('lost and zombie workers (real processes)', () => {
  let cluster: GantryCluster;
  let reader: StreamReader;
  const workers = new Map<string, ServiceProcess>();

  const spawnWorker = async () => {
    const p = cluster.spawn('gpu-worker', { WORKER_SLOTS: '1', GPU_DISCOVERY: 'false' });
    const id = await workerIdOf(p);
    workers.set(id, p);
    return id;
  };
  const stats = async () => (await cluster.api<Stats>('GET', '/v1/concurrency/stats')).body;

  beforeAll(async () => {
    cluster = await GantryCluster.start({ workers: 0, env: { ...SCHEDULER_E2E_ENV, MAX_CONCURRENT_JOBS: '2' } });
    await spawnWorker();
    await spawnWorker();
    await cluster.waitForWorkers(2);
    reader = await StreamReader.connect(cluster);
  });

  afterAll(async () => {
    for (const p of workers.values()) p.signal('SIGCONT');
    await reader?.close();
    await cluster?.stop();
  });

  it('gives back the tokens of a worker killed with kill -9 and runs its attempt elsewhere', async () => {
    const long = { type: 'noop', input: { durationMs: 60_000 }, maxAttempts: 3 };
    const j1 = await cluster.submit(long);
    const j2 = await cluster.submit(long);
    const r1 = (await cluster.waitForStatus(j1, 'running')) as unknown as View;
    await cluster.waitForStatus(j2, 'running');
    expect(await stats()).toMatchObject({ activeJobs: 2, availableTokens: 0 });

    await workers.get(r1.workerId!)!.kill('SIGKILL');
    // Its attempt is lost (and counted); its token comes back though nowhere can run the job right now.
    const lost = await cluster.waitForJob<View>(j1, (j) => j.status === 'queued' && j.attempts === 1, {
      timeoutMs: 20_000,
    });
    expect(lost.error?.code).toBe('WORKER_LOST');
    await waitFor(async () => (await stats()).availableTokens === 1, { what: 'the dead worker’s token back' });
    expect((await cluster.api<{ id: string }[]>('GET', '/v1/workers')).body.map((w) => w.id)).not.toContain(
      r1.workerId,
    );

    const fresh = await spawnWorker();
    const again = await cluster.waitForJob<View>(j1, (j) => j.status === 'running' && j.attempts === 2, {
      timeoutMs: 20_000,
    });
    expect(again.workerId).toBe(fresh);
    expect(await stats()).toMatchObject({ activeJobs: 2, availableTokens: 0 });

    // Cancelling running jobs frees their workers within seconds.
    for (const id of [j1, j2]) {
      const r = await cluster.api<View>('POST', `/v1/jobs/${id}/cancel`);
      expect(r.status).toBe(200);
      await cluster.waitForStatus(id, 'cancelled', { timeoutMs: 5_000 });
    }
    await waitFor(async () => (await stats()).activeJobs === 0, { what: 'no token held' });
  });

  it('keeps a zombie (SIGSTOP … SIGCONT) from completing or acking an attempt it no longer owns', async () => {
    const z = await cluster.submit({ type: 'noop', input: { durationMs: 8_000 }, maxAttempts: 3 });
    const first = (await cluster.waitForStatus(z, 'running')) as unknown as View;
    const zombieId = first.workerId!;
    const zombie = workers.get(zombieId)!;
    zombie.signal('SIGSTOP');

    // Declared lost: the attempt is counted, the job runs again on the other live worker.
    const second = await cluster.waitForJob<View>(z, (j) => j.status === 'running' && j.attempts === 2, {
      timeoutMs: 20_000,
    });
    const ownerId = second.workerId!;
    expect(ownerId).not.toBe(zombieId);

    const mark = zombie.lines.length;
    zombie.signal('SIGCONT');
    // The zombie wakes up: it kills its stale attempt, or its outcome is refused by the record.
    await zombie.waitForLog(
      (l) => zombie.lines.indexOf(l) >= mark && /killing running attempts|attempt no longer ours/.test(String(l.msg)),
      { timeoutMs: 10_000 },
    );
    // The new attempt's dispatch is still waiting for its owner's ack: nobody else acked it.
    const pending = await reader.nats.jsm.direct
      .getMessage(STREAMS.dispatch, { last_by_subj: SUBJECTS.dispatch(ownerId) })
      .catch(() => null);
    expect((await reader.record(z)).status).toBe('running');
    expect(pending?.json<DispatchMessage>()).toMatchObject({ jobId: z, attempt: 2, workerId: ownerId });

    const done = (await cluster.waitForStatus(z, 'completed', { timeoutMs: 20_000 })) as unknown as View;
    expect(done).toMatchObject({ workerId: ownerId, attempts: 2 });
    const history = await reader.history(z);
    const types = history.map((s) => s.event.type);
    expect(types.filter((t) => t === 'job.completed')).toHaveLength(1);
    expect(types.filter((t) => t === 'job.started')).toHaveLength(2);
    const retry = history.find((s) => s.event.type === 'job.retrying')!;
    expect(retry.record.error?.code).toBe('WORKER_LOST');
    // After the verdict, nothing was written on the zombie's behalf.
    expect(history.filter((s) => s.revision > retry.revision).every((s) => s.record.workerId !== zombieId)).toBe(true);

    // Thawed, the worker recreates its dispatch consumer and serves again; no token was leaked on the way.
    // (Either path may win: the worker notices it was declared lost and rejoins, or its pull loop finds its consumer
    // deleted and creates it again.)
    await zombie.waitForLog(
      (l) =>
        l.msg === 'durable consumer was gone; created it again' ||
        l.msg === 'heartbeats resumed after this worker was declared lost; rejoining',
      { timeoutMs: 20_000 },
    );
    const more = [];
    for (let i = 0; i < 6; i++) more.push(await cluster.submit({ type: 'noop', input: { durationMs: 300 } }));
    for (const id of more) await cluster.waitForStatus(id, 'completed');
    await waitFor(async () => (await stats()).activeJobs === 0, { what: 'no token held' });
    expect(zombie.running).toBe(true);
  });
});
