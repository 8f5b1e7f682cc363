/**
 * The GPU worker through the whole system (real processes: scheduler, gateway, two workers; real nats-server, S3
 * store, ffmpeg). One worker finds two GPUs through a fake `nvidia-smi` on its NVIDIA_SMI path (the GPU code path
 * without a GPU); the other finds none (CPU-only mode) and serves pool `cpu`.
 */
import { execFileSync } from 'node:child_process';
import { createReadStream, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CONSUMERS, STREAMS, systemClock, type JobEvent } from '@gantry/contracts';
import { NatsHandle } from '@gantry/jetstream';
import { JobStore } from '@gantry/job-store';
import { OutputStore } from '@gantry/storage';
import { createLogger } from '@gantry/telemetry';
import { CLIENT_KEY, GantryCluster, repoRoot, waitFor, type ServiceProcess } from '@gantry/testing';

const FIXTURES = join(repoRoot(), 'apps', 'gpu-worker', 'test', 'fixtures');
const GPU0 = 'GPU-11111111-2222-3333-4444-555555555555';
const GPU1 = 'GPU-66666666-7777-8888-9999-000000000000';
const HEALTHY = { xidErrors: 0, mig: false, health: 'ok', sampledAt: expect.any(String) as unknown };

interface View {
  id: string;
  status: string;
  attempts: number;
  workerId?: string;
  gpus?: string[];
  progress?: { percent: number; stage?: string };
  result?: Record<string, unknown>;
  outputs?: { name: string; url: string; downloadUrl?: string; sizeBytes: number }[];
  error?: { code: string; message: string; detail?: string };
}

interface WorkerView {
  id: string;
  pool: string;
  slots: number;
  busy: number;
  gpus: { index: number; uuid: string; name: string; memoryTotalMb: number; health: string }[];
  runningJobs: string[];
  lastHeartbeatAt: string;
}

/** Live (non-zombie) processes whose command line matches `pattern` (pgrep -f syntax). */
function live(pattern: string): number[] {
  let pids: number[];
  try {
    pids = execFileSync('pgrep', ['-f', pattern], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
  return pids.filter((pid) => {
    try {
      return !execFileSync('ps', ['-o', 'stat=', '-p', String(pid)], { encoding: 'utf8' })
        .trim()
        .startsWith('Z');
    } catch {
      return false;
    }
  });
}

describe('gpu-worker end to end (fake nvidia-smi, real ffmpeg, real S3)', () => {
  let cluster: GantryCluster;
  let gpuWorker: ServiceProcess;
  let media: string;
  let scratch: string;
  let origin: Server;
  let originUrl: string;
  const puts: { path: string; body: Buffer; contentType: string | undefined }[] = [];
  let nats: NatsHandle;
  let jobs: JobStore;

  beforeAll(async () => {
    media = mkdtempSync(join(tmpdir(), 'gantry-e2e-media-'));
    scratch = mkdtempSync(join(tmpdir(), 'gantry-e2e-scratch-'));
    const ff = (args: string[]) => execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', ...args]);
    ff([
      '-f',
      'lavfi',
      '-i',
      'testsrc=duration=3:size=320x240:rate=25',
      '-pix_fmt',
      'yuv420p',
      join(media, 'clip.mp4'),
    ]);
    ff(['-f', 'lavfi', '-i', 'testsrc=duration=300:size=64x48:rate=5', '-pix_fmt', 'yuv420p', join(media, 'long.mp4')]);
    origin = createServer((req, res) => {
      if (req.method === 'PUT') {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          puts.push({ path: req.url ?? '', body: Buffer.concat(chunks), contentType: req.headers['content-type'] });
          res.writeHead(200).end();
        });
        return;
      }
      const path = join(media, (req.url ?? '/').split('?')[0]!.slice(1));
      if (!existsSync(path)) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-length': statSync(path).size });
      createReadStream(path).pipe(res);
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`;

    cluster = await GantryCluster.start({
      manual: true,
      env: {
        JOB_TYPES_FILE: join(FIXTURES, 'catalog.yaml'),
        WORKER_SCRATCH_DIR: scratch,
        // Generous on a shared 2-core machine: a job process is killed when heartbeats stall for 60 % of this.
        WORKER_LOST_AFTER_MS: '6000',
      },
    });
    cluster.spawn('scheduler');
    gpuWorker = cluster.spawn('gpu-worker', {
      GPU_DISCOVERY: 'true',
      NVIDIA_SMI: join(FIXTURES, 'fake-nvidia-smi'),
      SLOTS_PER_GPU: '2',
      DISPATCH_ACK_WAIT_MS: '2000',
    });
    cluster.spawn('gpu-worker', { WORKER_POOL: 'cpu', GPU_DISCOVERY: 'true', NVIDIA_SMI: '/nonexistent/nvidia-smi' });
    await cluster.startGateway();
    await cluster.waitForWorkers(2);
    nats = await NatsHandle.connect({
      servers: [cluster.nats.url],
      name: 'e2e-observer',
      logger: createLogger('e2e', 'silent'),
    });
    jobs = new JobStore(nats, systemClock);
  });

  afterAll(async () => {
    await nats?.drain().catch(() => undefined);
    await cluster?.stop();
    origin?.closeAllConnections();
    await new Promise<void>((r) => (origin ? origin.close(() => r()) : r()));
    rmSync(media, { recursive: true, force: true });
    rmSync(scratch, { recursive: true, force: true });
  });

  const waitStatus = (id: string, status: string, timeoutMs = 30_000) =>
    cluster.waitForJob<View>(id, (j) => j.status === status, { timeoutMs, what: `job ${id} ${status}` });
  const workers = async () => (await cluster.api<WorkerView[]>('GET', '/v1/workers')).body;

  it('shows workers, their GPUs, slots and running jobs on GET /v1/workers (GPU and CPU-only modes)', async () => {
    const list = await workers();
    const gpu = list.find((w) => w.pool === 'default')!;
    const cpu = list.find((w) => w.pool === 'cpu')!;
    // Since v1.1 with the live figures of the worker's last sample (the fake reports idle GPUs) and their health.
    const idle = { memoryUsedMb: 0, memoryFreeMb: 81559, utilizationPercent: 0, temperatureC: 35, eccErrors: 0 };
    expect(gpu.gpus).toEqual([
      { index: 0, uuid: GPU0, name: 'NVIDIA H100 80GB HBM3', memoryTotalMb: 81559, ...idle, ...HEALTHY },
      { index: 1, uuid: GPU1, name: 'NVIDIA H100 80GB HBM3', memoryTotalMb: 81559, ...idle, ...HEALTHY },
    ]);
    expect(gpu.slots).toBe(4);
    expect(cpu.gpus).toEqual([]);
    expect(cpu.slots).toBe(2);
    expect(gpuWorker.lines.some((l) => l['msg'] === 'worker identity' && l['mode'] === 'gpu')).toBe(true);

    const id = await cluster.submit({ type: 'sleeper', input: { tag: 'listed', seconds: 120 } }, CLIENT_KEY);
    await waitStatus(id, 'running');
    const busy = await waitFor(
      async () => (await workers()).find((w) => w.id === gpu.id && w.runningJobs.includes(id)),
      { what: 'the running job on GET /v1/workers' },
    );
    expect(busy.busy).toBe(1);
    expect(Date.now() - Date.parse(busy.lastHeartbeatAt)).toBeLessThan(10_000);

    // Cancel kills the whole process group of the job.
    const pid = await waitFor(() => live('sleeper.sh listed ')[0], { what: 'the sleeper process' });
    const pgid = Number(execFileSync('ps', ['-o', 'pgid=', '-p', String(pid)], { encoding: 'utf8' }).trim());
    const cancel = await cluster.api<View>('POST', `/v1/jobs/${id}/cancel`, undefined, CLIENT_KEY);
    expect(cancel.status).toBe(200);
    const done = await waitStatus(id, 'cancelled');
    expect(done.error?.code).toBe('CANCELLED');
    await waitFor(() => live('sleeper.sh listed ').length === 0, { what: 'no sleeper left', timeoutMs: 10_000 });
    await waitFor(
      () => {
        try {
          const out = execFileSync('ps', ['-o', 'stat=', '-g', String(pgid)], { encoding: 'utf8' });
          return out.split('\n').every((s) => !s.trim() || s.trim().startsWith('Z'));
        } catch {
          return true;
        }
      },
      { what: 'the job’s process group gone', timeoutMs: 10_000 },
    );
    await waitFor(async () => (await workers()).find((w) => w.id === gpu.id)?.runningJobs.length === 0, {
      what: 'an idle worker',
    });
  });

  it('sets CUDA_VISIBLE_DEVICES to the GPUs each job was given, and removes its scratch dir', async () => {
    const one = await cluster.submit({ type: 'env', input: {} });
    const two = await cluster.submit({ type: 'env', input: {}, gpu: { count: 2, memoryMb: 1000 } });
    const none = await cluster.submit({ type: 'env', input: {}, gpu: { count: 0 } });
    const cpu = await cluster.submit({ type: 'env', input: {}, pool: 'cpu', gpu: { count: 0 } });
    const r1 = await waitStatus(one, 'completed');
    expect(r1.gpus).toHaveLength(1);
    expect([GPU0, GPU1]).toContain(r1.gpus![0]);
    expect(r1.result!['cudaVisibleDevices']).toBe(r1.gpus![0]);
    const r2 = await waitStatus(two, 'completed');
    expect(r2.result!['cudaVisibleDevices']).toBe(`${GPU0},${GPU1}`);
    expect(r2.gpus).toEqual([GPU0, GPU1]);
    expect(r2.result!['gpuMemoryMb']).toBe('1000'); // reserved per GPU by the scheduler
    for (const id of [none, cpu]) {
      const r = await waitStatus(id, 'completed');
      expect(r.result).toMatchObject({ cudaVisibleDevices: '', cudaVisibleDevicesSet: true });
    }
    for (const r of [r1, r2]) {
      const pwd = String(r.result!['pwd']);
      expect(pwd.startsWith(join(scratch, r.workerId!, `${r.id}-1-`))).toBe(true);
      expect(existsSync(pwd)).toBe(false);
    }
  });

  it('runs ffmpeg on inputs from http and s3://, reports progress, and serves the output from S3', async () => {
    const s3env = cluster.s3.env();
    const store = new OutputStore({
      S3_ENDPOINT: s3env['S3_ENDPOINT'],
      S3_REGION: 'us-east-1',
      S3_BUCKET: s3env['S3_BUCKET']!,
      S3_FORCE_PATH_STYLE: true,
      AWS_ACCESS_KEY_ID: s3env['AWS_ACCESS_KEY_ID'],
      AWS_SECRET_ACCESS_KEY: s3env['AWS_SECRET_ACCESS_KEY'],
      S3_PRESIGN_SECONDS: 300,
    });
    await store.putObject('uploads/clip.mp4', readFileSync(join(media, 'clip.mp4')));
    store.destroy();
    const id = await cluster.submit({
      type: 'ffmpeg',
      input: {
        // -re: read at the clip's own pace, so the run lasts ~3 s and reports progress on the way.
        args: [
          '-re',
          '-i',
          'a.mp4',
          '-i',
          'b.mp4',
          '-filter_complex',
          '[0:v][1:v]hstack',
          '-c:v',
          'libx264',
          'out.mp4',
        ],
        inputs: { 'a.mp4': `${originUrl}/clip.mp4`, 'b.mp4': `s3://${s3env['S3_BUCKET']}/uploads/clip.mp4` },
        outputs: ['out.mp4'],
      },
    });
    const done = await waitStatus(id, 'completed', 60_000);
    const history = await jobs.history(id);
    const percents = history
      .filter((h) => h.event.type === 'job.progress' && h.record.progress?.stage === 'encoding')
      .map((h) => h.record.progress!.percent);
    expect(percents.some((p) => p > 0 && p < 98)).toBe(true);
    expect([...percents].sort((a, b) => a - b)).toEqual(percents);
    expect(done.progress?.percent).toBe(100);
    const out = done.outputs![0]!;
    expect(out.url).toBe(`s3://${s3env['S3_BUCKET']}/jobs/${id}/out.mp4`);
    const res = await fetch(out.downloadUrl!);
    expect(res.status).toBe(200);
    const file = join(media, `${id}.mp4`);
    writeFileSync(file, Buffer.from(await res.arrayBuffer()));
    expect(statSync(file).size).toBe(out.sizeBytes);
    const dims = execFileSync(
      'ffprobe',
      ['-v', 'error', '-show_entries', 'stream=width,height', '-of', 'csv=p=0', file],
      {
        encoding: 'utf8',
      },
    ).trim();
    expect(dims).toBe('640,240');
  });

  it('refuses unsafe ffmpeg arguments at submit with 400 problem+json', async () => {
    const bad: [unknown[], string][] = [
      [['-i', '/etc/passwd', 'out.mp4'], 'input.args[1]'],
      [['-i', 'in.mp4', '-vf', "m'ovie'=x.mp4", 'out.mp4'], 'input.args[3]'],
      [['-f', 'lavfi', '-i', 'in.mp4', 'out.mp4'], 'input.args[1]'],
      [['-i', 'in.mp4', '-attach', 'in.mp4', 'out.mp4'], 'input.args[2]'],
      [['-i', 'in.mp4', '../out.mp4'], 'input.args[2]'],
    ];
    for (const [args, field] of bad) {
      const r = await cluster.api<{ status: number; errors: { field: string; message: string }[] }>(
        'POST',
        '/v1/jobs',
        { type: 'ffmpeg', input: { args, inputs: { 'in.mp4': `${originUrl}/clip.mp4` }, outputs: ['out.mp4'] } },
        CLIENT_KEY,
      );
      expect(r.status).toBe(400);
      expect(r.headers.get('content-type')).toContain('application/problem+json');
      expect(r.body.errors.map((e) => e.field)).toContain(field);
    }
    const twoOutputs = await cluster.api<{ errors: { field: string }[] }>('POST', '/v1/jobs', {
      type: 'ffmpeg',
      input: {
        args: ['-i', 'in.mp4', 'a.mp4', 'b.mp4'],
        inputs: { 'in.mp4': `${originUrl}/clip.mp4` },
        outputs: ['a.mp4', 'b.mp4'],
      },
      upload: { url: `${originUrl}/put/x` },
    });
    expect(twoOutputs.status).toBe(400);
    expect(twoOutputs.body.errors.map((e) => e.field)).toEqual(['upload.url']);
  });

  it('kills ffmpeg on cancel and on timeout, leaving no ffmpeg process behind', async () => {
    const run = async (marker: string, extra: Record<string, unknown>) =>
      cluster.submit({
        type: 'ffmpeg',
        input: {
          args: ['-re', '-i', marker, '-c:v', 'libx264', 'out.mp4'],
          inputs: { [marker]: `${originUrl}/long.mp4` },
          outputs: ['out.mp4'],
        },
        ...extra,
      });
    const cancelMarker = `cancel${Date.now()}.mp4`;
    const a = await run(cancelMarker, {});
    await waitFor(() => live(`^ffmpeg .*${cancelMarker}`).length === 1, { what: 'ffmpeg running', timeoutMs: 30_000 });
    expect((await cluster.api('POST', `/v1/jobs/${a}/cancel`)).status).toBe(200);
    await waitStatus(a, 'cancelled');
    await waitFor(() => live(`^ffmpeg .*${cancelMarker}`).length === 0, {
      what: 'no ffmpeg left after cancel',
      timeoutMs: 10_000,
    });

    const timeoutMarker = `timeout${Date.now()}.mp4`;
    // Long enough for the download and the sandbox's start on a loaded machine, so that ffmpeg is seen running.
    const b = await run(timeoutMarker, { timeoutSeconds: 8, maxAttempts: 1 });
    await waitFor(() => live(`^ffmpeg .*${timeoutMarker}`).length === 1, { what: 'ffmpeg running', timeoutMs: 30_000 });
    const failed = await waitStatus(b, 'failed');
    expect(failed.error).toMatchObject({ code: 'TIMEOUT', message: 'attempt exceeded 8 s' });
    await waitFor(() => live(`^ffmpeg .*${timeoutMarker}`).length === 0, {
      what: 'no ffmpeg left after timeout',
      timeoutMs: 10_000,
    });
  });

  it('PUTs the output to upload.url, and an error document there when the job fails', async () => {
    const ok = await cluster.submit({
      type: 'ffmpeg',
      input: {
        args: ['-i', 'in.mp4', '-t', '1', 'out.mp4'],
        inputs: { 'in.mp4': `${originUrl}/clip.mp4` },
        outputs: ['out.mp4'],
      },
      upload: { url: `${originUrl}/put/ok.mp4?X-Amz-Signature=s` },
    });
    const done = await waitStatus(ok, 'completed');
    const put = puts.find((p) => p.path.startsWith('/put/ok.mp4'))!;
    expect(put.body.length).toBe(done.outputs![0]!.sizeBytes);
    expect(done.outputs![0]!.url).toBe(`${originUrl}/put/ok.mp4`);
    expect(done.outputs![0]!.downloadUrl).toBeUndefined();

    const bad = await cluster.submit({
      type: 'report',
      input: { mode: 'fail' },
      upload: { url: `${originUrl}/put/report.txt` },
    });
    const failed = await waitStatus(bad, 'failed');
    expect(failed.error).toMatchObject({
      code: 'EXIT_CODE',
      message: 'report exited with code 2: report generator crashed',
    });
    const doc = await waitFor(() => puts.find((p) => p.path === '/put/report.txt'), { what: 'the error document' });
    expect(doc.contentType).toBe('application/json');
    expect(JSON.parse(doc.body.toString())).toMatchObject({ id: bad, status: 'failed', error: { code: 'EXIT_CODE' } });
  });

  it('maps exit codes to error codes with the output tails in the error', async () => {
    const id = await cluster.submit({ type: 'fail', input: { message: 'no such codec', code: 2 } });
    const failed = await waitStatus(id, 'failed');
    expect(failed.attempts).toBe(1); // 2 is a permanent exit code for this type
    expect(failed.error).toEqual({
      code: 'EXIT_CODE',
      retryable: false,
      message: 'fail exited with code 2: error: no such codec',
      detail: '--- stderr (last 1 lines) ---\nerror: no such codec\n--- stdout (last 1 lines) ---\npartial output',
    });
  });

  it('keeps a job longer than AckWait (2 s here) alive with working(): one delivery, one attempt', async () => {
    const id = await cluster.submit({ type: 'sleeper', input: { tag: 'ackwait', seconds: 7 } });
    const done = await waitStatus(id, 'completed', 40_000);
    expect(done.attempts).toBe(1);
    const info = await nats.jsm.consumers.info(STREAMS.dispatch, CONSUMERS.worker(done.workerId!));
    expect(info.config.ack_wait).toBe(2_000_000_000);
    expect(info.num_redelivered).toBe(0);
    expect(info.num_ack_pending).toBe(0);
    const events = (await jobs.history(id)).map((h) => h.event as JobEvent);
    expect(events.filter((e) => e.type === 'job.started')).toHaveLength(1);
  });
});
