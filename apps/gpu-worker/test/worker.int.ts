/**
 * The worker in-process against a real nats-server and a real S3-compatible store, with the test playing the
 * scheduler and the gateway: it writes job records and publishes dispatches addressed to this worker, then checks
 * records, acks, heartbeats, processes and HTTP traffic. GPUs come from a fake `nvidia-smi` (two H100s).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BUCKETS,
  CONSUMERS,
  DISPATCH_BATCH_LIMIT,
  STREAMS,
  SUBJECTS,
  newJob,
  requestCancel,
  requeueAfterDelay,
  startAttempt,
  systemClock,
  workerLost,
  type DispatchBatch,
  type DispatchMessage,
  type DispatchReleased,
  type JobRecord,
  type WorkerControl,
  type WorkerHeartbeat,
} from '@gantry/contracts';
import { loadConfig } from '@gantry/config';
import { NatsHandle, decodeJson, encodeJson, publishJson } from '@gantry/jetstream';
import { JobStore } from '@gantry/job-store';
import { createLogger, createRegistry } from '@gantry/telemetry';
import { OutputStore } from '@gantry/storage';
import { Deferred, NatsServer, S3Server, waitFor } from '@gantry/testing';
import { workerSpec } from '../src/config';
import { startWorker, type WorkerApp } from '../src/worker.app';

const FIXTURES = join(__dirname, 'fixtures');
const logger = createLogger('worker-int', process.env['GANTRY_TEST_ECHO'] ? 'debug' : 'silent');

interface Put {
  path: string;
  body: Buffer;
  contentType: string | undefined;
}

/** Process group of the sleeper tagged `tag` (its script's command line carries the tag). */
function sleeperGroup(tag: string): number | undefined {
  try {
    const pid = execFileSync('pgrep', ['-f', `sleeper.sh ${tag} `], { encoding: 'utf8' }).split('\n')[0];
    const pgid = execFileSync('ps', ['-o', 'pgid=', '-p', pid!], { encoding: 'utf8' }).trim();
    return pgid ? Number(pgid) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Live processes of a process group. Zombies are left out: a killed job's orphans are reparented to init, and reaping
 * them is init's job (in containers, run the worker under an init such as tini).
 */
function groupMembers(pgid: number): number[] {
  try {
    return execFileSync('ps', ['-o', 'pid=,stat=', '-g', String(pgid)], { encoding: 'utf8' })
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .filter(([pid, stat]) => pid && stat && !stat.startsWith('Z'))
      .map(([pid]) => Number(pid));
  } catch {
    return [];
  }
}

describe('gpu-worker (in-process, real NATS and S3)', () => {
  let nats: NatsServer;
  let s3: S3Server;
  let client: NatsHandle;
  let jobs: JobStore;
  let app: WorkerApp;
  let scratchParent: string;
  let origin: Server;
  let originUrl: string;
  const puts: Put[] = [];
  let holdPuts: Deferred | undefined;
  const released: DispatchReleased[] = [];
  const registry = createRegistry('gpu-worker');

  beforeAll(async () => {
    nats = await NatsServer.start();
    s3 = await S3Server.start();
    scratchParent = mkdtempSync(join(tmpdir(), 'gantry-worker-int-'));
    origin = createServer((req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        puts.push({ path: req.url ?? '', body: Buffer.concat(chunks), contentType: req.headers['content-type'] });
        const answer = () => res.writeHead(200).end();
        if (req.url?.startsWith('/hold') && holdPuts) void holdPuts.promise.then(answer);
        else answer();
      });
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`;

    const config = loadConfig(workerSpec, {
      NATS_URL: nats.url,
      ...s3.env(),
      JOB_TYPES_FILE: join(FIXTURES, 'catalog.yaml'),
      NVIDIA_SMI: join(FIXTURES, 'fake-nvidia-smi'),
      ALLOW_PRIVATE_URLS: 'true',
      WORKER_HTTP_PORT: '0',
      HEARTBEAT_INTERVAL_MS: '200',
      WORKER_LOST_AFTER_MS: '5000',
      PROGRESS_RECORD_INTERVAL_MS: '100',
      DISPATCH_ACK_WAIT_MS: '1500',
      WORKER_SCRATCH_DIR: scratchParent,
      WORKER_SHUTDOWN_GRACE_SECONDS: '3',
      LOG_LEVEL: 'silent',
    });
    app = await startWorker(config, {
      logger,
      registry,
      transfers: { backoffMs: 50, connectTimeoutMs: 2_000, idleTimeoutMs: 5_000 },
    });
    client = await NatsHandle.connect({ servers: [nats.url], name: 'worker-int-test', logger });
    jobs = new JobStore(client, systemClock);
    client.nc.subscribe(SUBJECTS.dispatchReleased, {
      callback: (_e, m) => {
        released.push(decodeJson<DispatchReleased>(m.data));
      },
    });
  });

  afterAll(async () => {
    await app?.shutdown('test over').catch(() => undefined);
    await client?.drain().catch(() => undefined);
    origin?.closeAllConnections();
    await new Promise<void>((r) => (origin ? origin.close(() => r()) : r()));
    await s3?.stop();
    await nats?.dispose();
    rmSync(scratchParent, { recursive: true, force: true });
  });

  let seq = 0;
  async function createJob(
    type: string,
    input: Record<string, unknown>,
    extra: Partial<{ maxAttempts: number; timeoutSeconds: number; upload: { url: string }; tenant: string }> = {},
  ): Promise<string> {
    const id = `int${Date.now().toString(36)}${seq++}`;
    await jobs.create(
      newJob(
        {
          id,
          tenant: extra.tenant ?? 'default',
          type,
          input,
          priority: 'normal',
          pool: 'default',
          timeoutSeconds: extra.timeoutSeconds ?? 60,
          maxAttempts: extra.maxAttempts ?? 3,
          retryDelaysMs: [0],
          metadata: {},
          ...(extra.upload ? { upload: extra.upload } : {}),
        },
        new Date(),
      ),
    );
    return id;
  }

  async function dispatch(jobId: string, attempt = 1, gpuIndices: number[] = []): Promise<void> {
    const rec = (await jobs.get(jobId))!.record;
    const m: DispatchMessage = {
      v: 1,
      jobId,
      generation: rec.generation,
      attempt,
      workerId: app.id,
      gpuIndices,
      memoryMb: 0,
      epoch: 1,
      dispatchedAt: new Date().toISOString(),
    };
    await publishJson(client.js, SUBJECTS.dispatch(app.id), m);
  }

  /** Publishes one batch message holding these attempts (attempt 1 unless given), as a scheduler round would. */
  async function dispatchBatch(attempts: { jobId: string; attempt?: number }[], workerId = app.id): Promise<void> {
    const batch: DispatchBatch = {
      v: 1,
      workerId,
      epoch: 1,
      dispatchedAt: new Date().toISOString(),
      attempts: await Promise.all(
        attempts.map(async (a) => {
          const stored = (await jobs.get(a.jobId))!;
          return {
            jobId: a.jobId,
            generation: stored.record.generation,
            attempt: a.attempt ?? 1,
            gpuIndices: [],
            memoryMb: 0,
            record: stored.record,
            revision: stored.revision,
          };
        }),
      ),
    };
    await publishJson(client.js, SUBJECTS.dispatch(app.id), batch);
  }

  async function record(jobId: string): Promise<JobRecord> {
    return (await jobs.get(jobId, { consistent: true }))!.record;
  }

  async function until(jobId: string, pred: (r: JobRecord) => boolean, what: string, timeoutMs = 20_000) {
    return waitFor(
      async () => {
        const r = await record(jobId);
        return pred(r) ? r : undefined;
      },
      { what: `${jobId} ${what}`, timeoutMs, intervalMs: 50 },
    );
  }

  async function consumerInfo() {
    return client.jsm.consumers.info(STREAMS.dispatch, CONSUMERS.worker(app.id));
  }

  async function heartbeat(): Promise<WorkerHeartbeat> {
    const kv = await client.kvm.open(BUCKETS.workers);
    const e = await kv.get(app.id);
    return e!.json<WorkerHeartbeat>();
  }

  it('registers its GPUs and slots, and heartbeats the jobs it runs', async () => {
    expect(app.gpus.map((g) => g.uuid)).toEqual([
      'GPU-11111111-2222-3333-4444-555555555555',
      'GPU-66666666-7777-8888-9999-000000000000',
    ]);
    expect(app.slots).toBe(4); // 2 GPUs × SLOTS_PER_GPU (2)
    const hb = await heartbeat();
    expect(hb).toMatchObject({ id: app.id, pool: 'default', slots: 4, slotsPerGpu: 2, draining: false });
    // It reads batched dispatches, and says so: schedulers send it up to this many attempts per message (an older
    // worker's heartbeat lacks the field and gets one message per attempt).
    expect(hb.dispatchBatchMax).toBe(DISPATCH_BATCH_LIMIT);
    // With a started-revision delay (250 ms by default) it checks its start against the record a dispatch carries
    // (docs/architecture.md, "Trusted dispatch records") and says so; only WORKER_READ_BEFORE_START=true says no.
    // Its dispatches here carry none (`dispatch` below): it reads the record then.
    expect(hb.dispatchRecordHint).toBe(true);
    expect(hb.gpus).toEqual(app.gpus.map((g) => expect.objectContaining({ ...g, health: 'ok' })));
    expect(hb.jobTypes).toEqual(expect.arrayContaining(['noop', 'ffmpeg', 'env', 'sleeper']));

    const id = await createJob('sleeper', { tag: 'hb', seconds: 2 });
    await dispatch(id);
    await waitFor(async () => (await heartbeat()).runningJobs.includes(id), { what: 'the job in the heartbeat' });
    await until(id, (r) => r.status === 'completed', 'completed');
    await waitFor(async () => (await heartbeat()).runningJobs.length === 0, { what: 'an idle heartbeat' });
  });

  it('gives each attempt CUDA_VISIBLE_DEVICES of its own GPUs and a private scratch dir removed afterwards', async () => {
    const cases: [number[], string][] = [
      [[1], 'GPU-66666666-7777-8888-9999-000000000000'],
      [[0, 1], 'GPU-11111111-2222-3333-4444-555555555555,GPU-66666666-7777-8888-9999-000000000000'],
      [[], ''],
    ];
    for (const [indices, expected] of cases) {
      const id = await createJob('env', {});
      await dispatch(id, 1, indices);
      const done = await until(id, (r) => r.status === 'completed', 'completed');
      const result = done.result as Record<string, string | boolean>;
      expect(result['cudaVisibleDevices']).toBe(expected);
      expect(result['cudaVisibleDevicesSet']).toBe(true); // set even when empty: no GPU visible at all
      expect(done.gpus).toEqual(expected ? expected.split(',') : []);
      expect(result['jobId']).toBe(id);
      const pwd = String(result['pwd']);
      expect(pwd.startsWith(join(app.scratchRoot, `${id}-1-`))).toBe(true);
      expect(result['workDir']).toBe(pwd);
      expect(existsSync(pwd)).toBe(false);
    }
    expect(readdirSync(app.scratchRoot)).toEqual(['.gantry-owner.json']);
  });

  it('keeps the dispatch alive with working() through a job longer than AckWait, and acks it after the outcome', async () => {
    const before = (await consumerInfo()).num_redelivered;
    const id = await createJob('sleeper', { tag: 'ackwait', seconds: 5 }); // AckWait is 1.5 s
    await dispatch(id);
    await until(id, (r) => r.status === 'running', 'running');
    expect((await consumerInfo()).num_ack_pending).toBe(1);
    const done = await until(id, (r) => r.status === 'completed', 'completed');
    expect(done.attempts).toBe(1);
    expect(done.result).toEqual({ tag: 'ackwait', slept: 5 });
    await waitFor(async () => (await consumerInfo()).num_ack_pending === 0, { what: 'the ack' });
    expect((await consumerInfo()).num_redelivered).toBe(before);
    const history = await jobs.history(id);
    expect(history.filter((h) => h.event.type === 'job.started')).toHaveLength(1);
    expect(history.filter((h) => h.event.type === 'job.progress').length).toBeGreaterThan(2);
  });

  it('acks the dispatch only after the output is uploaded', async () => {
    holdPuts = new Deferred();
    const id = await createJob('report', { mode: 'ok' }, { upload: { url: `${originUrl}/hold/report.txt?sig=x` } });
    await dispatch(id);
    await waitFor(() => puts.some((p) => p.path.startsWith('/hold/report.txt')), { what: 'the PUT to arrive' });
    const during = await record(id);
    expect(during.status).toBe('running');
    expect(during.progress).toEqual({ percent: 99, stage: 'uploading' });
    expect((await consumerInfo()).num_ack_pending).toBe(1);
    holdPuts.resolve();
    const done = await until(id, (r) => r.status === 'completed', 'completed');
    expect(done.outputs).toEqual([
      { name: 'report.txt', url: `${originUrl}/hold/report.txt`, sizeBytes: expect.any(Number) },
    ]);
    expect(puts.find((p) => p.path.startsWith('/hold/'))!.body.toString()).toBe(`report for ${id}\n`);
    await waitFor(async () => (await consumerInfo()).num_ack_pending === 0, { what: 'the ack' });
    holdPuts = undefined;
  });

  it('uploads an error document to upload.url when the generation fails, not while it will be retried', async () => {
    const id = await createJob(
      'report',
      { mode: 'flaky' },
      { maxAttempts: 2, upload: { url: `${originUrl}/err/${'x'}` } },
    );
    await dispatch(id, 1);
    const retrying = await until(id, (r) => r.status === 'retrying', 'retrying');
    expect(retrying.error).toMatchObject({ code: 'EXIT_CODE', retryable: true });
    expect(puts.filter((p) => p.path.startsWith('/err/'))).toHaveLength(0);

    await jobs.transition(id, (cur) => requeueAfterDelay(cur.record, new Date(Date.parse(cur.record.retryAt!) + 1)));
    await dispatch(id, 2);
    const failed = await until(id, (r) => r.status === 'failed', 'failed');
    const doc = await waitFor(() => puts.find((p) => p.path.startsWith('/err/')), { what: 'the error document' });
    expect(doc.contentType).toBe('application/json');
    expect(JSON.parse(doc.body.toString())).toEqual({
      id,
      status: 'failed',
      attempts: 2,
      finishedAt: failed.finishedAt,
      error: {
        code: 'EXIT_CODE',
        message: 'report exited with code 3: temporary problem',
        detail: '--- stderr (last 1 lines) ---\ntemporary problem',
      },
    });
  });

  it('maps exit codes to error codes and keeps the output tails', async () => {
    const retryable = await createJob('fail', { message: 'disk full', code: 3 });
    await dispatch(retryable);
    const r1 = await until(retryable, (r) => r.status === 'retrying', 'retrying');
    expect(r1.error).toMatchObject({
      code: 'EXIT_CODE',
      retryable: true,
      message: 'fail exited with code 3: error: disk full',
    });
    expect(r1.error!.detail).toBe(
      '--- stderr (last 1 lines) ---\nerror: disk full\n--- stdout (last 1 lines) ---\npartial output',
    );

    const permanent = await createJob('fail', { message: 'bad input', code: 2 });
    await dispatch(permanent);
    const r2 = await until(permanent, (r) => r.status === 'failed', 'failed');
    expect(r2.attempts).toBe(1);
    expect(r2.error).toMatchObject({ code: 'EXIT_CODE', retryable: false });

    const missing = await createJob('missing-binary', {});
    await dispatch(missing);
    const r3 = await until(missing, (r) => r.status === 'failed', 'failed');
    expect(r3.error).toMatchObject({ code: 'SPAWN_FAILED', retryable: false });
  });

  it('cancels a running job at once on the control message, killing its whole process group', async () => {
    const id = await createJob('sleeper', { tag: 'cancelctl', seconds: 120 });
    await dispatch(id);
    await until(id, (r) => r.status === 'running' && r.progress !== undefined, 'running');
    const pgid = await waitFor(() => sleeperGroup('cancelctl'), { what: 'the sleeper', timeoutMs: 30_000 });
    expect(groupMembers(pgid).length).toBeGreaterThanOrEqual(3); // guard, script, background sleep 3600 …
    await jobs.transition(id, (cur) => requestCancel(cur.record, new Date())); // the gateway's part
    const control: WorkerControl = { v: 1, type: 'cancel', jobId: id, generation: 1 };
    client.nc.publish(SUBJECTS.workerControl(app.id), encodeJson(control));
    const done = await until(id, (r) => r.status === 'cancelled', 'cancelled', 10_000);
    expect(done.error?.code).toBe('CANCELLED');
    await waitFor(() => groupMembers(pgid).length === 0, { what: 'no process of the job left', timeoutMs: 10_000 });
  });

  it('cancels on the record alone (a missed control message) within a heartbeat', async () => {
    const id = await createJob('sleeper', { tag: 'cancelrec', seconds: 120 });
    await dispatch(id);
    await until(id, (r) => r.status === 'running', 'running');
    const pgid = await waitFor(() => sleeperGroup('cancelrec'), { what: 'the sleeper', timeoutMs: 30_000 });
    await jobs.transition(id, (cur) => requestCancel(cur.record, new Date()));
    await until(id, (r) => r.status === 'cancelled', 'cancelled', 10_000);
    await waitFor(() => groupMembers(pgid).length === 0, { what: 'no process of the job left', timeoutMs: 10_000 });
  });

  it('times out an attempt, kills it, and reports TIMEOUT', async () => {
    // 6 s: the sleeper must be seen running after the sandbox's start, even on a loaded machine.
    const id = await createJob('sleeper', { tag: 'timeout', seconds: 120 }, { timeoutSeconds: 6, maxAttempts: 1 });
    await dispatch(id);
    const pgid = await waitFor(() => sleeperGroup('timeout'), { what: 'the sleeper', timeoutMs: 30_000 });
    const done = await until(id, (r) => r.status === 'failed', 'failed', 20_000);
    expect(done.error).toMatchObject({ code: 'TIMEOUT', message: 'attempt exceeded 6 s' });
    expect(Date.parse(done.finishedAt!) - Date.parse(done.startedAt!)).toBeLessThan(12_000);
    await waitFor(() => groupMembers(pgid).length === 0, { what: 'no process of the job left', timeoutMs: 10_000 });
  });

  it('kills its job and writes nothing once the attempt is no longer its own (declared lost)', async () => {
    const id = await createJob('sleeper', { tag: 'lost', seconds: 120 });
    await dispatch(id);
    await until(id, (r) => r.status === 'running', 'running');
    const pgid = await waitFor(() => sleeperGroup('lost'), { what: 'the sleeper', timeoutMs: 30_000 });
    const verdict = await jobs.transition(id, (cur) => workerLost(cur.record, app.id, new Date())); // the scheduler
    expect(verdict.record.status).toBe('retrying');
    await waitFor(() => groupMembers(pgid).length === 0, { what: 'the job killed', timeoutMs: 10_000 });
    await waitFor(async () => (await consumerInfo()).num_ack_pending === 0, { what: 'the dispatch acked' });
    const history = await jobs.history(id);
    expect(history.at(-1)!.revision).toBe(verdict.revision); // nothing written after the verdict
  });

  it('ends an attempt its own watchdog fenced, even when the scheduler never declares the worker lost', async () => {
    // Heartbeats that stall for 60 % of the lost period and then recover: the watchdog kills the attempt, and no
    // scheduler verdict follows. The attempt must still end (WORKER_LOST, retried), not stay running forever.
    const id = await createJob('sleeper', { tag: 'fenced', seconds: 120 }, { maxAttempts: 3 });
    await dispatch(id);
    await until(id, (r) => r.status === 'running', 'running');
    const pgid = await waitFor(() => sleeperGroup('fenced'), { what: 'the sleeper', timeoutMs: 30_000 });
    app.runner.abortAll('fenced');
    const ended = await until(id, (r) => r.status === 'retrying', 'retrying after the fenced attempt', 20_000);
    expect(ended.error?.code).toBe('WORKER_LOST');
    expect(ended.attempts).toBe(1);
    await waitFor(() => groupMembers(pgid).length === 0, { what: 'the job killed', timeoutMs: 10_000 });
    await waitFor(async () => (await consumerInfo()).num_ack_pending === 0, { what: 'the dispatch acked' });
    // The scheduler's verdict, coming late, finds the attempt already ended and changes nothing.
    const before = (await jobs.history(id)).at(-1)!.revision;
    await expect(jobs.transition(id, (cur) => workerLost(cur.record, app.id, new Date()))).rejects.toThrow();
    expect((await jobs.history(id)).at(-1)!.revision).toBe(before);
  });

  it('hands an attempt back uncharged when its lease lapses because NATS is away (issue #19)', async () => {
    // nats-server `kill -9` while a job runs: heartbeats fail, the lease lapses (60 % of the 5 s lost period) and the
    // job is killed — the broker, not the job or the worker, was at fault, so once NATS is back the attempt is handed
    // back to the queue without costing it (the old worker recorded WORKER_LOST: one attempt burnt per outage).
    const id = await createJob('sleeper', { tag: 'outage', seconds: 120 }, { maxAttempts: 3 });
    await dispatch(id);
    const running = await until(id, (r) => r.status === 'running', 'running');
    const pgid = await waitFor(() => sleeperGroup('outage'), { what: 'the sleeper', timeoutMs: 30_000 });
    await nats.kill();
    try {
      await waitFor(() => groupMembers(pgid).length === 0, { what: 'the job killed', timeoutMs: 20_000 });
    } finally {
      await nats.restart();
    }
    const back = await until(id, (r) => r.status !== 'running', 'out of running', 60_000);
    expect(back).toMatchObject({ status: 'queued', attempts: running.attempts - 1 });
    const history = await jobs.history(id);
    expect(history.at(-1)!.event.type).toBe('job.queued');
    expect(history.some((h) => h.event.job.error?.code === 'WORKER_LOST')).toBe(false);
    // The worker is healthy again before the next test (heartbeats stored, dispatch acked).
    await waitFor(() => app.worker.registered, { what: 'heartbeats stored again', timeoutMs: 30_000 });
    await waitFor(async () => (await consumerInfo()).num_ack_pending === 0, {
      what: 'the dispatch acked',
      timeoutMs: 30_000,
    });
  }, 120_000);

  it('still charges the attempt when the lease lapses because the worker itself stalled (NATS was there)', async () => {
    // The counterpart: the worker's event loop blocked past the lease (a long pause, possibly the job's doing) while
    // NATS answered. The job's guard kills it, and the attempt ends WORKER_LOST, costing it, as before.
    const id = await createJob('sleeper', { tag: 'stall', seconds: 120 }, { maxAttempts: 3 });
    await dispatch(id);
    await until(id, (r) => r.status === 'running', 'running');
    const pgid = await waitFor(() => sleeperGroup('stall'), { what: 'the sleeper', timeoutMs: 30_000 });
    // The fault itself: this process (the worker runs in it) does nothing else for 80 % of the lost period.
    const end = Date.now() + 4_000;
    while (Date.now() < end) {
      // blocked on purpose
    }
    const ended = await until(id, (r) => r.status !== 'running', 'out of running', 30_000);
    expect(ended).toMatchObject({ status: 'retrying', attempts: 1, error: { code: 'WORKER_LOST' } });
    await waitFor(() => groupMembers(pgid).length === 0, { what: 'the job killed', timeoutMs: 10_000 });
    await waitFor(async () => (await consumerInfo()).num_ack_pending === 0, { what: 'the dispatch acked' });
  });

  it('refuses s3:// inputs outside S3_INPUT_BUCKETS and other tenants’ job outputs, before reading them', async () => {
    const theirs = await createJob('noop', {}, { tenant: 'other-tenant' });
    const env = s3.env();
    const bucket = env['S3_BUCKET'];
    // Their output really is in the store, and the store resolves `..` in keys: the spellings below would read it.
    const store = new OutputStore({
      S3_ENDPOINT: env['S3_ENDPOINT'],
      S3_REGION: 'us-east-1',
      S3_BUCKET: bucket!,
      S3_FORCE_PATH_STYLE: true,
      AWS_ACCESS_KEY_ID: env['AWS_ACCESS_KEY_ID'],
      AWS_SECRET_ACCESS_KEY: env['AWS_SECRET_ACCESS_KEY'],
      S3_PRESIGN_SECONDS: 60,
    });
    await store.putObject(`jobs/${theirs}/out.mp4`, 'their secret output');
    store.destroy();
    const cases: [string, RegExp][] = [
      [`s3://${bucket}/jobs/${theirs}/out.mp4`, /not the output of one of this tenant's jobs/],
      [`s3://${bucket}/x/../jobs/${theirs}/out.mp4`, /not the output of one of this tenant's jobs/],
      [`s3://${bucket}/x/%2e%2e/jobs/${theirs}/out.mp4`, /not the output of one of this tenant's jobs/],
      [`s3://${bucket}/x%2f..%2fjobs/${theirs}/out.mp4`, /not the output of one of this tenant's jobs/],
      [`s3://${bucket}/x\\..\\jobs\\${theirs}/out.mp4`, /not the output of one of this tenant's jobs/],
      [`s3://${bucket}//jobs//${theirs}//out.mp4`, /not the output of one of this tenant's jobs/],
      [`s3://${bucket}/../${bucket}/jobs/${theirs}/out.mp4`, /leaves the bucket/],
      ['s3://somebody-elses-bucket/in.mp4', /not one of S3_INPUT_BUCKETS/],
    ];
    for (const [url, why] of cases) {
      const id = await createJob('ffmpeg', {
        args: ['-i', 'in.mp4', 'out.mp4'],
        inputs: { 'in.mp4': url },
        outputs: ['out.mp4'],
      });
      await dispatch(id);
      const r = await until(id, (x) => x.status === 'failed', 'failed');
      expect(r.error).toMatchObject({ code: 'INVALID_INPUT', retryable: false });
      expect(r.error!.message).toMatch(why);
    }
  });

  it('terminates dispatches that break the channel contract (never run, never redelivered) and keeps serving', async () => {
    const valid: DispatchMessage = {
      v: 1,
      jobId: 'poison1',
      generation: 1,
      attempt: 1,
      workerId: app.id,
      gpuIndices: [],
      memoryMb: 0,
      epoch: 1,
      dispatchedAt: new Date().toISOString(),
    };
    const malformed = [
      new TextEncoder().encode('{"v":1,'),
      new Uint8Array(0),
      encodeJson({ ...valid, v: 2 }),
      encodeJson({ ...valid, gpuIndices: 'all' }),
      encodeJson({ ...valid, attempt: '1' }),
      encodeJson({ ...valid, record: { id: 'poison1' } }),
      // Batches: none, too many, or one bad attempt among good ones — the whole message is poison, nothing of it runs.
      encodeJson({ v: 1, workerId: app.id, epoch: 1, dispatchedAt: valid.dispatchedAt, attempts: [] }),
      encodeJson({ ...valid, attempts: Array.from({ length: DISPATCH_BATCH_LIMIT + 1 }, () => valid) }),
      encodeJson({ ...valid, attempts: [valid, { ...valid, jobId: 'poison2', generation: '1' }] }),
    ];
    for (const data of malformed) await client.js.publish(SUBJECTS.dispatch(app.id), data);
    // A good dispatch behind them runs as usual.
    const id = await createJob('noop', {});
    await dispatch(id);
    await until(id, (r) => r.status === 'completed', 'completed');
    const poisoned = async () => {
      const text = await registry.getSingleMetricAsString('gantry_transport_poison_messages_total');
      return Number(/binding="dispatch"[^}]*\} (\d+)/.exec(text)?.[1] ?? 0);
    };
    await waitFor(async () => (await poisoned()) === malformed.length, { what: 'every poison dispatch counted' });
    // Terminated: gone from the work queue for good (AckWait is 1.5 s; a left-over would come back and count again).
    await waitFor(
      async () => {
        const subject = SUBJECTS.dispatch(app.id);
        const info = await client.jsm.streams.info(STREAMS.dispatch, { subjects_filter: subject });
        return (info.state.subjects?.[subject] ?? 0) === 0 && (await consumerInfo()).num_ack_pending === 0;
      },
      { what: 'the poison dispatches gone from the work queue' },
    );
    expect(await poisoned()).toBe(malformed.length);
    expect(released.some((r) => r.jobId === 'poison1' || r.jobId === 'poison2')).toBe(false);
  });

  describe('started revisions (WORKER_STARTED_REVISION_DELAY_MS, 250 ms by default)', () => {
    const types = async (id: string) => (await jobs.history(id, { raw: true })).map((s) => s.event.type);
    /** Waits for the attempt to run with its start not recorded (and no start write begun), and acts in that tick. */
    const whileUnrecorded = (id: string, act: () => void) =>
      waitFor(
        () => {
          const a = app.runner.running.get(id);
          if (!a?.pending || a.startWrite) return undefined;
          act();
          return true;
        },
        { what: `${id} running unrecorded`, intervalMs: 5 },
      );

    it('records an attempt shorter than the delay in one revision, and a longer one with running first', async () => {
      const short = await createJob('noop', { durationMs: 10, result: { n: 1 } });
      await dispatch(short);
      const done = await until(short, (r) => r.status === 'completed', 'completed');
      expect(done).toMatchObject({ attempts: 1, workerId: app.id, result: { n: 1 }, sequence: 3 });
      expect(await types(short)).toEqual(['job.queued', 'job.completed']);
      const last = (await jobs.history(short, { raw: true })).at(-1)!.event;
      expect(last.started).toMatchObject({ sequence: 2, workerId: app.id, timestamp: done.startedAt });
      expect((await jobs.history(short)).map((s) => s.event.type)).toEqual([
        'job.queued',
        'job.started',
        'job.completed',
      ]);

      const long = await createJob('noop', { durationMs: 1_000 });
      await dispatch(long);
      const running = await until(long, (r) => r.status === 'running', 'running');
      expect(app.runner.running.get(long)?.pending).toBeUndefined();
      await until(long, (r) => r.status === 'completed', 'completed');
      expect(await types(long)).toEqual(['job.queued', 'job.started', 'job.completed']);
      expect((await record(long)).startedAt).toBe(running.startedAt);
      await waitFor(async () => (await consumerInfo()).num_ack_pending === 0, { what: 'the dispatches acked' });
    });

    it('writes running before the first progress of an attempt still inside the delay', async () => {
      const id = await createJob('noop', { durationMs: 40, progressSteps: 2 });
      await dispatch(id);
      await until(id, (r) => r.status === 'completed', 'completed');
      const t = await types(id);
      expect(t.slice(0, 3)).toEqual(['job.queued', 'job.started', 'job.progress']);
      expect(t.at(-1)).toBe('job.completed');
      expect((await jobs.history(id, { raw: true })).at(-1)!.event.started).toBeUndefined();
    });

    it('hands back an unrecorded attempt by writing nothing and telling the scheduler', async () => {
      const id = await createJob('noop', { durationMs: 30_000 });
      await dispatch(id);
      await whileUnrecorded(id, () => app.runner.abortJob(id, 'shutdown'));
      const notice = await waitFor(() => released.find((r) => r.jobId === id), { what: 'the release notice' });
      expect(notice).toMatchObject({ attempt: 1, workerId: app.id });
      await waitFor(async () => (await consumerInfo()).num_ack_pending === 0, { what: 'the dispatch acked' });
      expect(app.runner.running.has(id)).toBe(false);
      expect(await types(id)).toEqual(['job.queued']);
      expect(await record(id)).toMatchObject({ status: 'queued', attempts: 0 });
    });

    it('records start and WORKER_LOST in one revision when its watchdog fences an unrecorded attempt', async () => {
      const id = await createJob('noop', { durationMs: 30_000 });
      await dispatch(id);
      await whileUnrecorded(id, () => app.runner.abortJob(id, 'fenced'));
      const r = await until(id, (x) => x.status === 'retrying', 'retrying');
      expect(r).toMatchObject({ attempts: 1, error: { code: 'WORKER_LOST', retryable: true } });
      expect(await types(id)).toEqual(['job.queued', 'job.retrying']);
      const [started] = (await jobs.history(id)).filter((s) => s.event.type === 'job.started');
      expect(started?.record).toMatchObject({ status: 'running', attempts: 1, workerId: app.id });
    });

    it('kills an unrecorded attempt whose job was cancelled while queued, and writes nothing', async () => {
      const id = await createJob('sleeper', { tag: 'unrecorded', seconds: 30 });
      await dispatch(id);
      // Cancelled as a queued job is (the record does not say it runs); the worker's next look kills the process.
      await whileUnrecorded(id, () => undefined);
      await jobs.transition(id, (cur) => requestCancel(cur.record, new Date()));
      await waitFor(() => !app.runner.running.has(id) || undefined, { what: 'the attempt ended', timeoutMs: 10_000 });
      await waitFor(() => sleeperGroup('unrecorded') === undefined || undefined, { what: 'the process gone' });
      expect(await types(id)).toEqual(['job.queued', 'job.cancelled']);
      await waitFor(async () => (await consumerInfo()).num_ack_pending === 0, { what: 'the dispatch acked' });
    });
  });

  it('drops a stale dispatch and tells the scheduler at once', async () => {
    const id = await createJob('noop', {});
    await dispatch(id, 2); // attempt 2 of a job with no attempt yet
    const notice = await waitFor(() => released.find((r) => r.jobId === id), { what: 'the release notice' });
    expect(notice).toMatchObject({ attempt: 2, workerId: app.id });
    expect((await record(id)).status).toBe('queued');
    await waitFor(async () => (await consumerInfo()).num_ack_pending === 0, { what: 'the dispatch acked' });
  });

  it('fails (retryably) an attempt of its own that it finds recorded but not running, instead of running it again', async () => {
    const id = await createJob('sleeper', { tag: 'orphan', seconds: 1 });
    await jobs.transition(id, (cur) =>
      startAttempt(
        cur.record,
        { workerId: app.id, generation: 1, attempt: 1 },
        { gpus: [], gpuIndices: [] },
        new Date(),
      ),
    );
    await dispatch(id, 1);
    const r = await until(id, (x) => x.status === 'retrying', 'retrying');
    expect(r.error).toMatchObject({ code: 'INTERNAL', retryable: true });
    expect(sleeperGroup('orphan')).toBeUndefined();
  });

  it('runs every attempt of a batch message, keeps it alive while one runs, and acks it once all have settled', async () => {
    const before = (await consumerInfo()).num_redelivered;
    const short = await createJob('sleeper', { tag: 'batchshort', seconds: 1 });
    const long = await createJob('sleeper', { tag: 'batchlong', seconds: 4 }); // AckWait is 1.5 s
    const noop = await createJob('noop', {});
    const stale = await createJob('noop', {});
    await dispatchBatch([{ jobId: short }, { jobId: long }, { jobId: noop }, { jobId: stale, attempt: 2 }]);

    // The stale attempt is dropped and the scheduler told at once, not when the message is acked.
    const notice = await waitFor(() => released.find((r) => r.jobId === stale), { what: 'the release notice' });
    expect(notice).toMatchObject({ attempt: 2, workerId: app.id });
    await until(noop, (r) => r.status === 'completed', 'completed');
    await until(short, (r) => r.status === 'completed', 'completed');
    // The long attempt still runs: its message is neither acked nor redelivered.
    expect((await record(long)).status).toBe('running');
    expect((await consumerInfo()).num_ack_pending).toBe(1);

    const done = await until(long, (r) => r.status === 'completed', 'completed');
    expect(done.result).toEqual({ tag: 'batchlong', slept: 4 });
    await waitFor(async () => (await consumerInfo()).num_ack_pending === 0, { what: 'the batch acked' });
    expect((await consumerInfo()).num_redelivered).toBe(before);
    for (const id of [short, long, noop]) {
      const history = await jobs.history(id);
      expect((await record(id)).attempts).toBe(1);
      expect(history.filter((h) => h.event.type === 'job.started')).toHaveLength(1);
      expect(history.filter((h) => h.event.type === 'job.completed')).toHaveLength(1);
    }
    expect(await record(stale)).toMatchObject({ status: 'queued', attempts: 0 });
  });

  it('never runs more attempts at once than its slots, however many one message carries', async () => {
    const ids: string[] = [];
    for (let i = 0; i < app.slots + 2; i++) ids.push(await createJob('sleeper', { tag: `gate${i}`, seconds: 2 }));
    let most = 0;
    let queued = 0;
    const watch = setInterval(() => {
      most = Math.max(most, app.runner.running.size);
      queued = Math.max(queued, app.runner.waitingForSlot);
    }, 10);
    try {
      await dispatchBatch(ids.map((jobId) => ({ jobId })));
      for (const id of ids) await until(id, (r) => r.status === 'completed', 'completed', 40_000);
    } finally {
      clearInterval(watch);
    }
    expect(most).toBe(app.slots);
    expect(queued).toBe(2);
    await waitFor(async () => (await consumerInfo()).num_ack_pending === 0, { what: 'the batch acked' });
  });

  it('drops a batch addressed to another worker without running any of it', async () => {
    const id = await createJob('noop', {});
    const acked = (await consumerInfo()).ack_floor.stream_seq;
    await dispatchBatch([{ jobId: id }], 'someone-else');
    await waitFor(async () => (await consumerInfo()).ack_floor.stream_seq > acked, { what: 'the batch acked' });
    expect(await record(id)).toMatchObject({ status: 'queued', attempts: 0 });
    expect(released.some((r) => r.jobId === id)).toBe(false);
  });

  it('on shutdown, finishes what fits in the grace period and hands the rest back', async () => {
    const short = await createJob('sleeper', { tag: 'shortjob', seconds: 1 });
    const long = await createJob('sleeper', { tag: 'longjob', seconds: 120 });
    await dispatch(short);
    await dispatch(long);
    await until(long, (r) => r.status === 'running', 'running');
    const pgid = await waitFor(() => sleeperGroup('longjob'), { what: 'the long sleeper', timeoutMs: 30_000 });
    // A batch of 4 more on 4 slots, one held by the long job: one attempt waits for a slot when the grace period ends.
    const batched: string[] = [];
    for (let i = 0; i < 4; i++) batched.push(await createJob('sleeper', { tag: `stopbatch${i}`, seconds: 120 }));
    await dispatchBatch(batched.map((jobId) => ({ jobId })));
    await until(short, (r) => r.status === 'completed', 'completed');
    await waitFor(() => app.runner.running.size === 4 && app.runner.waitingForSlot === 1, {
      what: 'four attempts running and one waiting for a slot',
      timeoutMs: 30_000,
    });
    const started = Date.now();
    await app.shutdown('test');
    expect(Date.now() - started).toBeLessThan(3_000 + 10_000);
    expect((await record(short)).status).toBe('completed');
    const back = await record(long);
    expect(back.status).toBe('queued'); // handed back: another worker can take it at once
    expect(back.attempts).toBe(0); // the handed-back attempt does not count
    expect(back.workerId).toBeUndefined();
    expect(groupMembers(pgid)).toEqual([]);
    // Every attempt of the batch is handed back, the one that never got a slot without ever starting.
    for (const id of batched) expect(await record(id)).toMatchObject({ status: 'queued', attempts: 0 });
    const unstarted = released.filter((r) => batched.includes(r.jobId) && /before it started/.test(r.reason));
    expect(unstarted).toHaveLength(1);
    expect((await jobs.history(unstarted[0]!.jobId)).map((h) => h.event.type)).toEqual(['job.queued']);
    const kv = await client.kvm.open(BUCKETS.workers);
    expect(await kv.get(app.id).then((e) => e?.operation)).not.toBe('PUT'); // deregistered
    expect(existsSync(app.scratchRoot)).toBe(false);
  });
});
