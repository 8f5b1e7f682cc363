/**
 * Live GPU telemetry and health in the worker, in-process against a real nats-server and S3-compatible store, with the
 * test playing the scheduler (job records and dispatches) and the gateway (cordon requests). The GPUs are two H100s of
 * the fake `nvidia-smi`, whose answers the test rewrites while jobs run: memory moving, the tool hanging, ECC errors;
 * XIDs arrive as kernel-log lines appended to the file the worker tails.
 */
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BUCKETS,
  SUBJECTS,
  newJob,
  systemClock,
  type DispatchMessage,
  type GpuCordonControl,
  type GpuStatus,
  type JobRecord,
  type WorkerHeartbeat,
} from '@gantry/contracts';
import { loadConfig } from '@gantry/config';
import { NatsHandle, RpcError, publishJson, rpcRequest } from '@gantry/jetstream';
import { JobStore } from '@gantry/job-store';
import { createLogger, createRegistry } from '@gantry/telemetry';
import { NatsServer, S3Server, waitFor } from '@gantry/testing';
import { workerSpec } from '../src/config';
import { startWorker, type WorkerApp } from '../src/worker.app';

const FIXTURES = join(__dirname, 'fixtures');
const logger = createLogger('gpu-health-int', process.env['GANTRY_TEST_ECHO'] ? 'debug' : 'silent');
const G0 = 'GPU-11111111-2222-3333-4444-555555555555';
const G1 = 'GPU-66666666-7777-8888-9999-000000000000';

/** The fake's telemetry answer: [uuid, pci, used, free, util, temp, ecc] per GPU. */
function telemetry(dir: string, rows: [string, string, number, number, number, number, number][]): void {
  writeFileSync(join(dir, 'telemetry.csv'), rows.map((r) => r.join(', ')).join('\n') + '\n');
}
const idle = (ecc0 = 0, ecc1 = 0): [string, string, number, number, number, number, number][] => [
  [G0, '00000000:1B:00.0', 0, 81559, 0, 35, ecc0],
  [G1, '00000000:1C:00.0', 0, 81559, 0, 36, ecc1],
];

describe('gpu-worker GPU telemetry and health (fake nvidia-smi, real NATS and S3)', () => {
  let nats: NatsServer;
  let s3: S3Server;
  let client: NatsHandle;
  let jobs: JobStore;
  let app: WorkerApp;
  let smiDir: string;
  let xidLog: string;
  let scratch: string;

  beforeAll(async () => {
    nats = await NatsServer.start();
    s3 = await S3Server.start();
    smiDir = mkdtempSync(join(tmpdir(), 'gantry-smi-int-'));
    scratch = mkdtempSync(join(tmpdir(), 'gantry-gpu-int-'));
    xidLog = join(smiDir, 'kern.log');
    writeFileSync(xidLog, 'kernel: NVRM: Xid (PCI:0000:1c:00): 79, from before the worker started\n');
    telemetry(smiDir, idle());
    process.env['FAKE_NVIDIA_SMI_DIR'] = smiDir;
    const config = loadConfig(workerSpec, {
      NATS_URL: nats.url,
      ...s3.env(),
      JOB_TYPES_FILE: join(FIXTURES, 'catalog.yaml'),
      NVIDIA_SMI: join(FIXTURES, 'fake-nvidia-smi'),
      WORKER_HTTP_PORT: '0',
      HEARTBEAT_INTERVAL_MS: '200',
      WORKER_LOST_AFTER_MS: '5000',
      GPU_SAMPLE_INTERVAL_MS: '200',
      GPU_SAMPLE_TIMEOUT_MS: '1500',
      GPU_XID_LOG: xidLog,
      GPU_CORDON_RECHECK_SECONDS: '2',
      GPU_START_FAILURES: '2',
      WORKER_SCRATCH_DIR: scratch,
      WORKER_SHUTDOWN_GRACE_SECONDS: '1',
      LOG_LEVEL: 'silent',
    });
    app = await startWorker(config, { logger, registry: createRegistry('gpu-worker') });
    client = await NatsHandle.connect({ servers: [nats.url], name: 'gpu-health-int', logger });
    jobs = new JobStore(client, systemClock);
  });

  afterAll(async () => {
    await app?.shutdown('test over').catch(() => undefined);
    await client?.drain().catch(() => undefined);
    await s3?.stop();
    await nats?.dispose();
    delete process.env['FAKE_NVIDIA_SMI_DIR'];
    rmSync(smiDir, { recursive: true, force: true });
    rmSync(scratch, { recursive: true, force: true });
  });

  let seq = 0;
  async function run(type: string, input: Record<string, unknown>, gpuIndices: number[]): Promise<string> {
    const id = `gpuint${Date.now().toString(36)}${seq++}`;
    await jobs.create(
      newJob(
        {
          id,
          tenant: 'default',
          type,
          input,
          priority: 'normal',
          pool: 'default',
          timeoutSeconds: 120,
          maxAttempts: 3,
          retryDelaysMs: [0],
          metadata: {},
        },
        new Date(),
      ),
    );
    const rec = (await jobs.get(id))!.record;
    const m: DispatchMessage = {
      v: 1,
      jobId: id,
      generation: rec.generation,
      attempt: rec.attempts + 1,
      workerId: app.id,
      gpuIndices,
      memoryMb: 0,
      epoch: 1,
      dispatchedAt: new Date().toISOString(),
    };
    await publishJson(client.js, SUBJECTS.dispatch(app.id), m);
    return id;
  }

  const record = async (id: string): Promise<JobRecord> => (await jobs.get(id, { consistent: true }))!.record;
  const until = (id: string, pred: (r: JobRecord) => boolean, what: string) =>
    waitFor(async () => ((r) => (pred(r) ? r : undefined))(await record(id)), {
      what: `${id} ${what}`,
      timeoutMs: 30_000,
      intervalMs: 50,
    });
  async function heartbeat(): Promise<WorkerHeartbeat> {
    const kv = await client.kvm.open(BUCKETS.workers);
    return (await kv.get(app.id))!.json<WorkerHeartbeat>();
  }
  const gpuOf = async (uuid: string): Promise<GpuStatus> => (await heartbeat()).gpus.find((g) => g.uuid === uuid)!;
  const waitGpu = (uuid: string, pred: (g: GpuStatus) => boolean, what: string) =>
    waitFor(async () => ((g) => (pred(g) ? g : undefined))(await gpuOf(uuid)), { what, timeoutMs: 20_000 });
  const metrics = async () => (await fetch(`${app.opsUrl}/metrics`)).text();
  const control = (c: Omit<GpuCordonControl, 'v'>) =>
    rpcRequest<GpuStatus[]>(client.nc, SUBJECTS.workerControl(app.id), { v: 1, ...c }, { timeoutMs: 10_000 });

  it('heartbeats live memory, utilization and temperature, following memory that changes under a running job', async () => {
    const first = await gpuOf(G0);
    expect(first).toMatchObject({
      index: 0,
      memoryTotalMb: 81559,
      memoryUsedMb: 0,
      memoryFreeMb: 81559,
      utilizationPercent: 0,
      temperatureC: 35,
      eccErrors: 0,
      xidErrors: 0, // the XID already in the log before the start is history
      health: 'ok',
    });
    expect(Date.now() - Date.parse(first.sampledAt!)).toBeLessThan(10_000);

    const id = await run('sleeper', { tag: 'telemetry', seconds: 30 }, [0]);
    await until(id, (r) => r.status === 'running', 'running');
    // The job allocates: the next samples show it.
    telemetry(smiDir, [[G0, '00000000:1B:00.0', 30_000, 51_559, 97, 71, 0], idle()[1]!]);
    await waitGpu(G0, (g) => g.memoryUsedMb === 30_000, 'the job’s memory in the heartbeat');
    expect(await gpuOf(G0)).toMatchObject({ memoryFreeMb: 51_559, utilizationPercent: 97, temperatureC: 71 });
    expect((await heartbeat()).runningJobs).toContain(id);
    const text = await metrics();
    expect(text).toMatch(new RegExp(`gantry_gpu_memory_used_mb\\{[^}]*uuid="${G0}"[^}]*\\} 30000`));
    expect(text).toMatch(new RegExp(`gantry_gpu_utilization_percent\\{[^}]*uuid="${G0}"[^}]*\\} 97`));
    expect(text).toMatch(new RegExp(`gantry_gpu_temperature_celsius\\{[^}]*uuid="${G1}"[^}]*\\} 36`));
    // It grows further, then frees its memory.
    telemetry(smiDir, [[G0, '00000000:1B:00.0', 60_000, 21_559, 99, 75, 0], idle()[1]!]);
    await waitGpu(G0, (g) => g.memoryFreeMb === 21_559, 'more memory used');
    telemetry(smiDir, idle());
    await waitGpu(G0, (g) => g.memoryUsedMb === 0, 'memory freed');
    expect((await record(id)).status).toBe('running');
    await client.nc
      .request(
        SUBJECTS.workerControl(app.id),
        new TextEncoder().encode(JSON.stringify({ v: 1, type: 'cancel', jobId: id, generation: 1 })),
        { timeout: 1000 },
      )
      .catch(() => undefined); // cancel has no reply
    await until(id, (r) => r.status !== 'running', 'stopped');
  });

  it('survives the tool hanging or failing: figures go unknown, heartbeats go on, and come back with the tool', async () => {
    writeFileSync(join(smiDir, 'hang'), '');
    const stale = await waitGpu(G0, (g) => g.memoryUsedMb === null, 'unknown figures while the tool hangs');
    expect(stale).toMatchObject({ memoryFreeMb: null, utilizationPercent: null, temperatureC: null, sampledAt: null });
    const a = Date.parse((await heartbeat()).heartbeatAt);
    await waitFor(async () => Date.parse((await heartbeat()).heartbeatAt) > a, { what: 'heartbeats going on' });
    rmSync(join(smiDir, 'hang'));
    await waitGpu(G0, (g) => g.memoryFreeMb === 81559, 'figures back');
    writeFileSync(join(smiDir, 'telemetry-fail'), '');
    await waitGpu(G0, (g) => g.memoryFreeMb === null, 'unknown figures while the tool fails');
    rmSync(join(smiDir, 'telemetry-fail'));
    await waitGpu(G0, (g) => g.memoryFreeMb === 81559, 'figures back again');
  });

  it('an admin cordon hands the GPU’s running attempt back without costing it; uncordon reopens the GPU', async () => {
    const id = await run('sleeper', { tag: 'cordoned', seconds: 60 }, [1]);
    await until(id, (r) => r.status === 'running' && r.attempts === 1, 'running');
    const other = await run('sleeper', { tag: 'spared', seconds: 60 }, [0]);
    await until(other, (r) => r.status === 'running', 'running');

    const reply = await control({ type: 'cordon', uuid: G1, reason: 'fan failing' });
    expect(reply).toEqual([expect.objectContaining({ uuid: G1, health: 'cordoned', cordonReason: 'fan failing' })]);
    // The heartbeat that says so is already stored when the reply comes.
    expect(await gpuOf(G1)).toMatchObject({ health: 'cordoned', cordonReason: 'fan failing' });
    const back = await until(id, (r) => r.status === 'queued', 'handed back');
    expect(back.attempts).toBe(0); // the attempt was not counted
    expect(back.workerId).toBeUndefined();
    expect((await record(other)).status).toBe('running'); // only the cordoned GPU's attempts go
    const text = await metrics();
    expect(text).toMatch(new RegExp(`gantry_gpu_cordoned\\{[^}]*uuid="${G1}"[^}]*\\} 1`));
    expect(text).toMatch(new RegExp(`gantry_gpu_cordoned\\{[^}]*uuid="${G0}"[^}]*\\} 0`));
    expect(text).toMatch(/gantry_gpu_cordons_total\{[^}]*kind="admin"[^}]*\} 1/);

    // An admin cordon outlasts clean probes (the recheck time here is 2 s).
    const quiet = Date.now();
    await waitFor(async () => Date.parse((await gpuOf(G1)).sampledAt!) > quiet + 2_500, {
      what: 'clean samples past the recheck time',
      timeoutMs: 20_000,
    });
    expect((await gpuOf(G1)).health).toBe('cordoned');

    const reopened = await control({ type: 'uncordon', uuid: G1 });
    expect(reopened[0]).toMatchObject({ uuid: G1, health: 'ok' });
    expect(reopened[0]!.cordonReason).toBeUndefined();
    expect((await gpuOf(G1)).health).toBe('ok');

    await expect(control({ type: 'cordon', uuid: 'GPU-not-here' })).rejects.toEqual(
      expect.objectContaining({ status: 404 }),
    );
    await expect(control({ type: 'cordon', uuid: 'GPU-not-here' })).rejects.toBeInstanceOf(RpcError);
    await client.nc
      .request(
        SUBJECTS.workerControl(app.id),
        new TextEncoder().encode(JSON.stringify({ v: 1, type: 'cancel', jobId: other, generation: 1 })),
        { timeout: 1000 },
      )
      .catch(() => undefined);
    await until(other, (r) => r.status !== 'running', 'stopped');
  });

  it('cordons a GPU on an XID from the kernel log, hands back its attempt, and a clean probe later lifts it', async () => {
    const id = await run('sleeper', { tag: 'xid', seconds: 60 }, [1]);
    await until(id, (r) => r.status === 'running', 'running');
    appendFileSync(xidLog, 'kernel: NVRM: Xid (PCI:0000:1c:00): 13, Graphics Exception (a job fault: no cordon)\n');
    await waitGpu(G1, (g) => g.xidErrors === 1, 'the XID counted');
    expect((await gpuOf(G1)).health).toBe('ok');
    appendFileSync(xidLog, "kernel: NVRM: Xid (PCI:0000:1c:00): 79, pid='<unknown>', GPU has fallen off the bus.\n");
    const bad = await waitGpu(G1, (g) => g.health === 'cordoned', 'cordoned on XID 79');
    expect(bad).toMatchObject({ cordonReason: 'XID 79', xidErrors: 2 });
    expect((await gpuOf(G0)).health).toBe('ok');
    const back = await until(id, (r) => r.status === 'queued', 'handed back');
    expect(back.attempts).toBe(0);
    expect(await metrics()).toMatch(/gantry_gpu_cordons_total\{[^}]*kind="xid"[^}]*\} 1/);
    // No new error for the recheck time (2 s): the next probe lifts the cordon.
    await waitGpu(G1, (g) => g.health === 'ok', 'uncordoned by a clean probe');
  });

  it('cordons a GPU on new uncorrected ECC errors', async () => {
    telemetry(smiDir, idle(3, 0));
    const bad = await waitGpu(G0, (g) => g.health === 'cordoned', 'cordoned on ECC errors');
    expect(bad).toMatchObject({ eccErrors: 3, cordonReason: 'ECC: 3 uncorrected errors (was 0)' });
    await control({ type: 'uncordon', uuid: G0 });
    expect((await gpuOf(G0)).health).toBe('ok');
  });

  it('cordons a GPU on which attempts of several jobs in a row fail at start', async () => {
    for (let i = 0; i < 2; i++) {
      const id = await run('fail', { message: 'cuInit failed', code: 3 }, [1]);
      await until(id, (r) => r.status === 'retrying' || r.status === 'failed', 'failed');
    }
    const bad = await waitGpu(G1, (g) => g.health === 'cordoned', 'cordoned on start failures');
    expect(bad.cordonReason).toBe('attempts of 2 jobs in a row failed at start');
    expect(await metrics()).toMatch(/gantry_gpu_cordons_total\{[^}]*kind="start-failures"[^}]*\} 1/);
    await control({ type: 'uncordon', uuid: G1 });
  });

  it('learns a job type’s peak GPU memory from its processes and heartbeats it', async () => {
    expect((await heartbeat()).learnedPeaksMb).toEqual({});
    const id = await run('sleeper', { tag: 'peak', seconds: 60 }, [0]);
    await until(id, (r) => r.status === 'running', 'running');
    // The job's processes on GPU 0, as nvidia-smi --query-compute-apps reports them: 9 GB, then 12 GB, then 4 GB.
    for (const mb of [9_000, 12_000, 4_000]) {
      writeFileSync(join(smiDir, 'apps.csv'), `4242, ${G0}, ${mb - 500}\n4243, ${G0}, 500\n`);
      const after = Date.now();
      await waitFor(async () => Date.parse((await gpuOf(G0)).sampledAt!) > after + 500, {
        what: 'samples taken with these processes',
        timeoutMs: 20_000,
      });
    }
    expect((await heartbeat()).learnedPeaksMb).toEqual({}); // learned when the attempt ends
    client.nc.publish(
      SUBJECTS.workerControl(app.id),
      new TextEncoder().encode(JSON.stringify({ v: 1, type: 'cancel', jobId: id, generation: 1 })),
    );
    await until(id, (r) => r.status === 'cancelled', 'cancelled');
    rmSync(join(smiDir, 'apps.csv'));
    await waitFor(async () => (await heartbeat()).learnedPeaksMb?.['sleeper'] === 12_000, {
      what: 'the learned peak in the heartbeat',
    });
  });
});
