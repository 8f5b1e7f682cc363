/**
 * Pipelines through the whole system (v1.1; real processes: scheduler, gateway, worker; real nats-server, S3 store,
 * ffmpeg): a batch transcode → thumbnail whose second stage reads the first one's stored output
 * (`job:ref:transcode/out.mp4`), a failing first stage that cascades DEPENDENCY_FAILED down the pipeline, the listing's
 * `status=waiting`, and the worker's own checks: a child record written straight into the jobs stream (bypassing the
 * gateway) that names another tenant's output, a parent outside its `dependsOn`, or a parent that sent its output to
 * an `upload.url` is refused by the worker (INVALID_INPUT, not retried), while the same record naming its own tenant's
 * declared parent runs.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { newId, newJob, systemClock, type JobRecord } from '@gantry/contracts';
import { NatsHandle } from '@gantry/jetstream';
import { JobStore } from '@gantry/job-store';
import { OutputStore } from '@gantry/storage';
import { createLogger } from '@gantry/telemetry';
import { CLIENT_KEY, GantryCluster, OTHER_TENANT_KEY, repoRoot } from '@gantry/testing';

interface View {
  id: string;
  tenant: string;
  status: string;
  dependsOn?: string[];
  outputs?: { name: string; url: string; downloadUrl?: string; sizeBytes: number }[];
  error?: { code: string; message: string };
}

const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47]);

describe('pipelines end to end (real ffmpeg, real S3)', () => {
  let cluster: GantryCluster;
  let media: string;
  let scratch: string;
  let bucket: string;
  let source: string;
  let nats: NatsHandle;
  let jobs: JobStore;
  let receiver: Server;
  let receiverUrl: string;

  beforeAll(async () => {
    media = mkdtempSync(join(tmpdir(), 'gantry-e2e-pipeline-'));
    scratch = mkdtempSync(join(tmpdir(), 'gantry-e2e-scratch-'));
    execFileSync('ffmpeg', [
      '-hide_banner',
      '-loglevel',
      'error',
      '-y',
      '-f',
      'lavfi',
      '-i',
      'testsrc=duration=2:size=320x240:rate=25',
      '-pix_fmt',
      'yuv420p',
      join(media, 'clip.mp4'),
    ]);
    // Receives the output of a parent that uses upload.url.
    receiver = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(200).end());
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;

    cluster = await GantryCluster.start({
      manual: true,
      // The example catalog's `thumbnail` type: a catalog download that names a parent output.
      env: { WORKER_SCRATCH_DIR: scratch, JOB_TYPES_FILE: join(repoRoot(), 'examples', 'job-types.yaml') },
    });
    const s3env = cluster.s3.env();
    bucket = s3env['S3_BUCKET']!;
    const store = new OutputStore({
      S3_ENDPOINT: s3env['S3_ENDPOINT'],
      S3_REGION: 'us-east-1',
      S3_BUCKET: bucket,
      S3_FORCE_PATH_STYLE: true,
      AWS_ACCESS_KEY_ID: s3env['AWS_ACCESS_KEY_ID'],
      AWS_SECRET_ACCESS_KEY: s3env['AWS_SECRET_ACCESS_KEY'],
      S3_PRESIGN_SECONDS: 300,
    });
    await store.putObject('uploads/clip.mp4', readFileSync(join(media, 'clip.mp4')));
    store.destroy();
    source = `s3://${bucket}/uploads/clip.mp4`;
    cluster.spawn('scheduler');
    cluster.spawn('gpu-worker', { SLOTS_PER_GPU: '2' });
    await cluster.startGateway();
    await cluster.waitForWorkers(1);
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
    receiver?.closeAllConnections();
    await new Promise<void>((r) => (receiver ? receiver.close(() => r()) : r()));
    rmSync(media, { recursive: true, force: true });
    rmSync(scratch, { recursive: true, force: true });
  });

  const waitEnd = (id: string, timeoutMs = 90_000) =>
    cluster.waitForJob<View>(id, (j) => ['completed', 'failed', 'cancelled'].includes(j.status), {
      timeoutMs,
      what: `job ${id} ended`,
    });

  const transcode = (input = source, extra: Record<string, unknown> = {}) => ({
    type: 'ffmpeg',
    input: {
      args: ['-i', 'in.mp4', '-vf', 'scale=160:-2', '-c:v', 'libx264', 'out.mp4'],
      inputs: { 'in.mp4': input },
      outputs: ['out.mp4'],
    },
    ...extra,
  });
  const thumbnail = (input: string, extra: Record<string, unknown> = {}) => ({
    type: 'ffmpeg',
    input: {
      args: ['-i', 'in.mp4', '-frames:v', '1', 'thumb.png'],
      inputs: { 'in.mp4': input },
      outputs: ['thumb.png'],
    },
    ...extra,
  });

  async function batch(body: unknown, key = CLIENT_KEY): Promise<View[]> {
    const r = await cluster.api<{ jobs: View[] }>('POST', '/v1/batches', body, key);
    if (r.status !== 202) throw new Error(`batch answered ${r.status}: ${JSON.stringify(r.body)}`);
    return r.body.jobs;
  }

  it('runs transcode → thumbnail as one batch: the thumbnail reads the transcode’s stored output', async () => {
    const [t, th] = await batch({
      jobs: [
        transcode(source, { ref: 'transcode' }),
        thumbnail('job:ref:transcode/out.mp4', { ref: 'thumb', dependsOn: ['ref:transcode'] }),
      ],
    });
    expect(th).toMatchObject({ status: 'waiting', dependsOn: [t!.id] });
    const first = await waitEnd(t!.id);
    expect(first.status).toBe('completed');
    const second = await waitEnd(th!.id);
    if (second.status !== 'completed') throw new Error(`${JSON.stringify(second.error)}\n${cluster.logs()}`);
    const out = second.outputs!.find((o) => o.name === 'thumb.png')!;
    expect(out.url).toBe(`s3://${bucket}/jobs/${th!.id}/thumb.png`);
    const png = Buffer.from(await (await fetch(out.downloadUrl!)).arrayBuffer());
    expect(png.subarray(0, 4)).toEqual(PNG_MAGIC);
    expect(png.length).toBe(out.sizeBytes);
  });

  it('a catalog type reads a parent output through its download (job:ref: in an input field, stored as the id)', async () => {
    const [t, th] = await batch({
      jobs: [
        transcode(source, { ref: 'transcode' }),
        {
          type: 'thumbnail',
          ref: 'thumb',
          dependsOn: ['ref:transcode'],
          input: { url: 'job:ref:transcode/out.mp4', at: 0.5, width: 64 },
        },
      ],
    });
    expect(th).toMatchObject({ status: 'waiting', dependsOn: [t!.id], input: { url: `job:${t!.id}/out.mp4` } });
    const v = await waitEnd(th!.id);
    if (v.status !== 'completed') throw new Error(`${JSON.stringify(v.error)}\n${cluster.logs()}`);
    const out = v.outputs!.find((o) => o.name === 'thumb.jpg')!;
    expect(out.url).toBe(`s3://${bucket}/jobs/${th!.id}/thumb.jpg`);
    const jpg = Buffer.from(await (await fetch(out.downloadUrl!)).arrayBuffer());
    expect(jpg.subarray(0, 2)).toEqual(Buffer.from([0xff, 0xd8]));
  });

  it('a failing first stage cascades DEPENDENCY_FAILED down the pipeline', async () => {
    const [t, th, an] = await batch({
      jobs: [
        // No such object: the download fails for good (404 is not retried).
        transcode(`s3://${bucket}/uploads/missing.mp4`, { ref: 'transcode', maxAttempts: 1 }),
        thumbnail('job:ref:transcode/out.mp4', { ref: 'thumb', dependsOn: ['ref:transcode'] }),
        { type: 'noop', ref: 'analyze', dependsOn: ['ref:thumb'] },
      ],
    });
    expect((await waitEnd(t!.id)).status).toBe('failed');
    for (const child of [th!, an!]) {
      const v = await waitEnd(child.id);
      expect(v).toMatchObject({ status: 'cancelled', error: { code: 'DEPENDENCY_FAILED' } });
    }
    // A job submitted later naming the failed parent is accepted (202) and ends the same way at once.
    const late = await cluster.submit({ type: 'noop', dependsOn: [t!.id] }, CLIENT_KEY);
    expect(await waitEnd(late, 15_000)).toMatchObject({ status: 'cancelled', error: { code: 'DEPENDENCY_FAILED' } });
  });

  it('lists waiting jobs with status=waiting; cancelling a parent cascades to its waiting child', async () => {
    const parent = await cluster.submit({ type: 'noop', delaySeconds: 3_000 }, CLIENT_KEY);
    const child = await cluster.submit({ type: 'noop', dependsOn: [parent] }, CLIENT_KEY);
    const listed = await cluster.api<{ items: View[] }>('GET', '/v1/jobs?status=waiting', undefined, CLIENT_KEY);
    expect(listed.status).toBe(200);
    expect(listed.body.items.map((v) => v.id)).toContain(child);
    expect(listed.body.items.every((v) => v.status === 'waiting')).toBe(true);
    expect((await cluster.api('POST', `/v1/jobs/${parent}/cancel`, undefined, CLIENT_KEY)).status).toBe(200);
    expect(await waitEnd(child)).toMatchObject({ status: 'cancelled', error: { code: 'DEPENDENCY_FAILED' } });
  });

  describe('the worker checks the records itself (a child written straight into the jobs stream)', () => {
    let mine: View;
    let theirs: View;
    let uploaded: View;

    beforeAll(async () => {
      const [a, b, c] = await Promise.all([
        cluster.submit(transcode(), CLIENT_KEY),
        cluster.submit(transcode(), OTHER_TENANT_KEY),
        cluster.submit(transcode(source, { upload: { url: `${receiverUrl}/put/out.mp4` } }), CLIENT_KEY),
      ]);
      [mine, theirs, uploaded] = await Promise.all([waitEnd(a), waitEnd(b), waitEnd(c)]);
      for (const v of [mine, theirs, uploaded]) expect(v.status).toBe('completed');
      expect(mine.tenant).not.toBe(theirs.tenant);
    });

    /** Writes a queued ffmpeg child of `tenant` reading `url`, with `dependsOn`, as no gateway would check it. */
    async function forge(tenant: string, url: string, dependsOn: string[]): Promise<string> {
      const id = newId();
      const created = newJob(
        {
          ...thumbnail(url),
          id,
          tenant,
          priority: 'normal',
          pool: 'default',
          timeoutSeconds: 120,
          maxAttempts: 3,
          retryDelaysMs: [100],
          metadata: {},
        },
        new Date(),
      );
      const record: JobRecord = { ...created.record, status: 'queued', dependsOn };
      if (dependsOn.length === 0) delete record.dependsOn;
      await jobs.create({ type: 'job.queued', record });
      return id;
    }

    it('a single submit naming an already completed parent’s output runs at once', async () => {
      const id = await cluster.submit(thumbnail(`job:${mine.id}/out.mp4`, { dependsOn: [mine.id] }), CLIENT_KEY);
      const v = await waitEnd(id);
      if (v.status !== 'completed') throw new Error(JSON.stringify(v.error));
      expect(v.outputs!.map((o) => o.name)).toEqual(['thumb.png']);
    });

    it('runs a forged child that names its own tenant’s declared parent (the control)', async () => {
      const id = await forge(mine.tenant, `job:${mine.id}/out.mp4`, [mine.id]);
      const v = await waitEnd(id);
      if (v.status !== 'completed') throw new Error(JSON.stringify(v.error));
    });

    it('refuses another tenant’s output, even when the forged record lists it in dependsOn', async () => {
      const id = await forge(mine.tenant, `job:${theirs.id}/out.mp4`, [theirs.id]);
      const v = await waitEnd(id);
      expect(v).toMatchObject({ status: 'failed', error: { code: 'INVALID_INPUT' } });
      expect(v.error!.message).toContain(`job ${theirs.id} is an unknown job`);
      // The same answer as for an id no job has.
      const ghost = newId();
      const g = await waitEnd(await forge(mine.tenant, `job:${ghost}/out.mp4`, [ghost]));
      expect(g.error!.message.replaceAll(ghost, 'X')).toBe(v.error!.message.replaceAll(theirs.id, 'X'));
      expect((await jobs.get(id))!.record.attempts).toBe(1);
    });

    it('refuses a parent that is not in dependsOn, and a parent that sent its output to upload.url', async () => {
      const notDeclared = await waitEnd(await forge(mine.tenant, `job:${mine.id}/out.mp4`, []));
      expect(notDeclared).toMatchObject({ status: 'failed', error: { code: 'INVALID_INPUT' } });
      expect(notDeclared.error!.message).toMatch(/not in this job's dependsOn/);
      const viaUpload = await waitEnd(await forge(mine.tenant, `job:${uploaded.id}/out.mp4`, [uploaded.id]));
      expect(viaUpload).toMatchObject({ status: 'failed', error: { code: 'INVALID_INPUT' } });
      expect(viaUpload.error!.message).toMatch(/upload\.url/);
    });
  });
});
