/**
 * Operator-defined job types through the catalog executor, with the shipped examples (examples/job-types.yaml):
 * the CUDA example is built with nvcc when it is installed and run — on a GPU host it must succeed on the GPU it was
 * given; without a GPU it must fail cleanly (retryable) saying why.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCatalog, newJob, parseCatalog, type JobRecord } from '@gantry/contracts';
import { OutputStore } from '@gantry/storage';
import { createLogger } from '@gantry/telemetry';
import { S3Server } from '@gantry/testing';
import { CatalogExecutor, MAX_RESULT_BYTES } from './catalog.executor';
import { JobFailure, type AttemptContext } from './executor';

const ROOT = join(__dirname, '..', '..', '..', '..');
const EXAMPLES = join(ROOT, 'examples');
const TRANSFERS = { allowPrivate: true, connectTimeoutMs: 2_000, idleTimeoutMs: 5_000, attempts: 2, backoffMs: 20 };

function has(cmd: string, args: string[] = ['--version']): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** UUIDs of the real GPUs of this host, or [] without an NVIDIA driver. */
function realGpuUuids(): string[] {
  try {
    return execFileSync('nvidia-smi', ['--query-gpu=uuid', '--format=csv,noheader'], { encoding: 'utf8' })
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l.startsWith('GPU-'));
  } catch {
    return [];
  }
}

describe('CatalogExecutor with the example catalog', () => {
  let s3: S3Server;
  let store: OutputStore;
  let scratch: string;
  let media: string;
  let origin: Server;
  let originUrl: string;
  const executor = () => new CatalogExecutor(loadCatalog(join(EXAMPLES, 'job-types.yaml')), store, TRANSFERS);

  beforeAll(async () => {
    s3 = await S3Server.start();
    const env = s3.env();
    store = new OutputStore({
      S3_ENDPOINT: env['S3_ENDPOINT'],
      S3_REGION: 'us-east-1',
      S3_BUCKET: env['S3_BUCKET']!,
      S3_FORCE_PATH_STYLE: true,
      AWS_ACCESS_KEY_ID: env['AWS_ACCESS_KEY_ID'],
      AWS_SECRET_ACCESS_KEY: env['AWS_SECRET_ACCESS_KEY'],
      S3_PRESIGN_SECONDS: 300,
    });
    media = mkdtempSync(join(tmpdir(), 'gantry-cat-media-'));
    execFileSync('ffmpeg', [
      '-hide_banner',
      '-loglevel',
      'error',
      '-f',
      'lavfi',
      '-i',
      'testsrc=duration=3:size=640x360:rate=10',
      '-pix_fmt',
      'yuv420p',
      join(media, 'v.mp4'),
    ]);
    origin = createServer((req, res) => {
      const path = join(media, (req.url ?? '/').slice(1));
      if (!existsSync(path)) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-length': statSync(path).size });
      res.end(readFileSync(path));
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    store?.destroy();
    await s3?.stop();
    await new Promise<void>((r) => (origin ? origin.close(() => r()) : r()));
    rmSync(media, { recursive: true, force: true });
  });

  beforeEach(() => {
    scratch = mkdtempSync(join(tmpdir(), 'gantry-cat-'));
  });
  afterEach(() => rmSync(scratch, { recursive: true, force: true }));

  function context(type: string, input: Record<string, unknown>, env: Record<string, string> = {}) {
    const record: JobRecord = newJob(
      {
        id: `cat${Math.floor(Math.random() * 1e9)}`,
        tenant: 'default',
        type,
        input,
        priority: 'normal',
        pool: 'default',
        timeoutSeconds: 600,
        maxAttempts: 1,
        retryDelaysMs: [0],
        metadata: {},
      },
      new Date(),
    ).record;
    const progress: [number, string | undefined][] = [];
    const ctx: AttemptContext = {
      record,
      attempt: 1,
      scratchDir: scratch,
      env,
      signal: new AbortController().signal,
      progress: (p, s) => progress.push([p, s]),
      logger: createLogger('test', 'silent'),
    };
    return { ctx, progress, record };
  }

  it('gpu-env reports the GPUs the worker gave the job', async () => {
    const { ctx, progress } = context('gpu-env', {}, { CUDA_VISIBLE_DEVICES: 'GPU-aaaa,GPU-bbbb' });
    const r = await executor().run(ctx);
    expect(r.result).toMatchObject({ cudaVisibleDevices: 'GPU-aaaa,GPU-bbbb' });
    expect(progress).toEqual([[98, 'done']]); // 100 is kept for the recorded completion
  });

  it('thumbnail downloads its input and uploads its declared output to S3', async () => {
    const { ctx, record } = context('thumbnail', { url: `${originUrl}/v.mp4`, at: 1, width: 160 });
    const r = await executor().run(ctx);
    expect(r.outputs).toEqual([
      { name: 'thumb.jpg', url: `s3://${store.bucket}/jobs/${record.id}/thumb.jpg`, sizeBytes: expect.any(Number) },
    ]);
    expect(r.outputs![0]!.sizeBytes).toBeGreaterThan(100);
  });

  const nvcc = has('nvcc');
  const binary = join(EXAMPLES, 'cuda', 'saxpy');
  (nvcc || existsSync(binary) ? it : it.skip)(
    'cuda-saxpy builds with nvcc, and runs on the assigned GPU (or fails cleanly without one)',
    async () => {
      if (nvcc) execFileSync(join(EXAMPLES, 'cuda', 'build.sh'), { stdio: 'ignore' });
      const gpus = realGpuUuids();
      const { ctx, progress } = context(
        'cuda-saxpy',
        { n: 1 << 20, iterations: 100 },
        { CUDA_VISIBLE_DEVICES: gpus[0] ?? '' },
      );
      if (gpus.length > 0) {
        const r = await executor().run(ctx);
        expect(r.result).toMatchObject({
          uuid: gpus[0],
          visibleDevices: gpus[0],
          n: 1 << 20,
          iterations: 100,
          maxError: 0,
        });
        expect(progress.some(([p, s]) => p >= 90 && s === 'computing')).toBe(true);
      } else {
        const err = await executor()
          .run(ctx)
          .catch((e: unknown) => e);
        expect(err).toBeInstanceOf(JobFailure);
        expect(err).toMatchObject({ code: 'EXIT_CODE', retryable: true });
        expect((err as Error).message).toMatch(/exited with code 3: .*(driver|no CUDA device)/);
      }
    },
    120_000,
  );

  it('refuses a result larger than the record can hold, and one that is not JSON', async () => {
    const big = parseCatalog(
      JSON.stringify({
        version: 1,
        types: [
          {
            name: 'big',
            command: ['sh', '-c', `printf 'GANTRY_RESULT "%0${MAX_RESULT_BYTES + 10}d"\\n' 0`],
            inputSchema: {},
          },
          { name: 'notjson', command: ['sh', '-c', 'echo "GANTRY_RESULT {oops"'], inputSchema: {} },
        ],
      }),
      join(scratch, 'c.json'),
    );
    const ex = new CatalogExecutor(big, store, TRANSFERS);
    await expect(ex.run(context('big', {}).ctx)).rejects.toMatchObject({ code: 'JOB_FAILED', retryable: false });
    await expect(ex.run(context('notjson', {}).ctx)).rejects.toThrow(/not valid JSON/);
  });
});
