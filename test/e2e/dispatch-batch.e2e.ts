/**
 * Batched dispatch through the whole system (real processes; docs/architecture.md, "Batched dispatch"): jobs queued
 * before their worker arrives reach it in ONE dispatch message (read from the server), and a worker killed with
 * kill -9 halfway through that batch loses nothing and runs nothing twice — the attempts it finished stay finished
 * (one run, one outcome each), the ones it was running are declared lost and run once more elsewhere. Each attempt of
 * the message carries its job's record and revision as the scheduler read them: the worker (default started-revision
 * delay) checks its starts against them (docs/architecture.md, "Trusted dispatch records").
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { STREAMS, SUBJECTS, dispatchAttempts, systemClock, type DispatchPayload } from '@gantry/contracts';
import { NatsHandle, decodeJson } from '@gantry/jetstream';
import { JobStore } from '@gantry/job-store';
import { createLogger } from '@gantry/telemetry';
import { CopiesMonitor, GantryCluster, repoRoot, runningCopies, waitFor, type ServiceProcess } from '@gantry/testing';

const FIXTURES = join(repoRoot(), 'apps', 'gpu-worker', 'test', 'fixtures');
const LOST_AFTER_MS = 5_000;

interface View {
  id: string;
  status: string;
  attempts: number;
  workerId?: string;
  result?: unknown;
}

const sleeperPattern = (tag: string) => new RegExp(`^sh .*/sleeper\\.sh ${tag} `);

describe('batched dispatch end to end', () => {
  let cluster: GantryCluster;
  let scratch: string;
  let nats: NatsHandle;
  let jobs: JobStore;

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'gantry-e2e-batch-'));
    cluster = await GantryCluster.start({
      manual: true,
      env: {
        JOB_TYPES_FILE: join(FIXTURES, 'catalog.yaml'),
        WORKER_SCRATCH_DIR: scratch,
        WORKER_LOST_AFTER_MS: String(LOST_AFTER_MS),
        WORKER_SLOTS: '4',
        DISPATCH_BATCH_MAX: '16',
      },
    });
    cluster.spawn('scheduler');
    await cluster.startGateway();
    nats = await NatsHandle.connect({
      servers: [cluster.nats.url],
      name: 'e2e-observer',
      logger: createLogger('e2e', 'silent'),
    });
    jobs = new JobStore(nats, systemClock);
  }, 300_000);

  afterAll(async () => {
    await nats?.drain().catch(() => undefined);
    await cluster?.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  const waitJob = (id: string, pred: (v: View) => boolean, what: string, timeoutMs = 60_000) =>
    cluster.waitForJob<View>(id, pred, { what: `job ${id} ${what}`, timeoutMs });

  async function workerId(p: ServiceProcess): Promise<string> {
    const line = await p.waitForLog((l) => l['msg'] === 'worker identity', { timeoutMs: 90_000 });
    return String(line['workerId']);
  }

  /** The dispatch messages on a worker's subject, read from the server. */
  async function dispatchesFor(worker: string): Promise<DispatchPayload[]> {
    const out: DispatchPayload[] = [];
    for (let seq = 1; ;) {
      const m = await nats.jsm.direct
        .getMessage(STREAMS.dispatch, { next_by_subj: SUBJECTS.dispatch(worker), seq })
        .catch(() => null);
      if (!m) return out;
      seq = m.seq + 1;
      out.push(decodeJson<DispatchPayload>(m.data));
    }
  }

  it('kill -9 halfway through a batch: every job ends exactly once, none lost, none run twice', async () => {
    // Queued before any worker exists, so the worker's arrival lets one round dispatch all four to it.
    const short = [
      await cluster.submit({ type: 'sleeper', input: { tag: 'bshort1', seconds: 1 }, maxAttempts: 3 }),
      await cluster.submit({ type: 'sleeper', input: { tag: 'bshort2', seconds: 1 }, maxAttempts: 3 }),
    ];
    const long = [
      await cluster.submit({ type: 'sleeper', input: { tag: 'blong1', seconds: 20 }, maxAttempts: 3 }),
      await cluster.submit({ type: 'sleeper', input: { tag: 'blong2', seconds: 20 }, maxAttempts: 3 }),
    ];
    const all = [...short, ...long];
    const victim = cluster.spawn('gpu-worker');
    const victimId = await workerId(victim);

    await waitFor(
      async () => {
        const views = await Promise.all(long.map((id) => cluster.job<View>(id)));
        return views.every((v) => v.status === 'running') ? true : undefined;
      },
      { what: 'the long jobs running', timeoutMs: 90_000 },
    );
    // One message holds the four attempts; it stays in the stream (unacked) while any of them runs.
    const messages = await dispatchesFor(victimId);
    expect(messages).toHaveLength(1);
    expect(
      dispatchAttempts(messages[0]!)
        .map((a) => a.jobId)
        .sort(),
    ).toEqual([...all].sort());
    // The worker runs with a started-revision delay (the default) and checks each start against the record the
    // dispatch carries: its attempts travel with the job's record and revision (docs/architecture.md, "Trusted
    // dispatch records"; WORKER_READ_BEFORE_START=true would leave them out).
    for (const a of dispatchAttempts(messages[0]!)) {
      expect(a.record).toMatchObject({ id: a.jobId, status: 'queued', generation: a.generation });
      expect(a.revision).toEqual(expect.any(Number));
    }
    for (const id of short) await waitJob(id, (v) => v.status === 'completed', 'completed');
    await waitFor(() => long.every((_, i) => runningCopies(sleeperPattern(`blong${i + 1}`)).length === 1), {
      what: 'both long sleepers running',
    });
    expect(await dispatchesFor(victimId)).toHaveLength(1); // half-run: two settled, two running, not acked

    const monitors = [...long.keys()].map((i) => new CopiesMonitor(sleeperPattern(`blong${i + 1}`)));
    try {
      await victim.kill('SIGKILL');
      const rescuer = cluster.spawn('gpu-worker');
      const rescuerId = await workerId(rescuer);
      for (const id of long) {
        const done = await waitJob(id, (v) => v.status === 'completed', 'completed', 120_000);
        expect(done.attempts).toBe(2);
        expect(done.workerId).toBe(rescuerId);
      }
    } finally {
      for (const m of monitors) m.stop();
    }
    for (const m of monitors) expect(m.max).toBe(1);

    for (const id of all) {
      const types = (await jobs.history(id)).map((h) => h.event.type);
      expect(types.filter((t) => t === 'job.completed')).toHaveLength(1);
      // A finished attempt never ran again; a lost one ran exactly once more.
      expect(types.filter((t) => t === 'job.started')).toHaveLength(short.includes(id) ? 1 : 2);
      if (long.includes(id)) expect(types.filter((t) => t === 'job.retrying')).toHaveLength(1);
    }
    for (const id of short) expect((await cluster.job<View>(id)).attempts).toBe(1);
    // The lost worker's batch was purged with its queue; nothing is left addressed to it.
    expect(await dispatchesFor(victimId)).toEqual([]);
  });
});
