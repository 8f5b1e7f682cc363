/**
 * The ffmpeg executor with real ffmpeg, a real HTTP origin, a real S3-compatible store (s3rver): inputs from http and
 * s3://, progress from -progress, outputs in S3 with a working presigned URL, or PUT to an upload URL; playlists
 * refused; cancel leaving no ffmpeg behind; failures with ffmpeg's own words in the error.
 */
import { execFile, execFileSync } from 'node:child_process';
import { createReadStream, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { newJob, type JobRecord } from '@gantry/contracts';
import { OutputStore } from '@gantry/storage';
import { createLogger } from '@gantry/telemetry';
import { S3Server, waitFor } from '@gantry/testing';
import { JobFailure, type AttemptContext } from './executor';
import { FfmpegExecutor, FfmpegProgress, ffmpegArgv, parseFfmpegTime, sniffPlaylist } from './ffmpeg.executor';
import type { TransferSettings } from './transfers';

const TRANSFERS: TransferSettings = {
  allowPrivate: true,
  connectTimeoutMs: 2_000,
  idleTimeoutMs: 5_000,
  attempts: 3,
  backoffMs: 50,
};

function ffmpeg(args: string[]): void {
  execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', ...args]);
}

function probeSize(path: string): string {
  return execFileSync(
    'ffprobe',
    ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'stream=width,height', '-of', 'csv=p=0', path],
    { encoding: 'utf8' },
  ).trim();
}

function ffmpegPids(marker: string): number[] {
  try {
    return execFileSync('pgrep', ['-f', `^ffmpeg .*${marker}`], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

describe('FfmpegExecutor (real ffmpeg, HTTP and S3)', () => {
  let media: string;
  let origin: Server;
  let originUrl: string;
  const requests: string[] = [];
  const puts: { url: string; body: Buffer; contentType: string | undefined }[] = [];
  let s3: S3Server;
  let store: OutputStore;
  let executor: FfmpegExecutor;
  let scratch: string;

  beforeAll(async () => {
    media = mkdtempSync(join(tmpdir(), 'gantry-media-'));
    ffmpeg([
      '-f',
      'lavfi',
      '-i',
      'testsrc=duration=4:size=320x240:rate=25',
      '-f',
      'lavfi',
      '-i',
      'sine=duration=4',
      '-shortest',
      '-pix_fmt',
      'yuv420p',
      join(media, 'clip.mp4'),
    ]);
    ffmpeg([
      '-f',
      'lavfi',
      '-i',
      'testsrc=duration=120:size=64x48:rate=5',
      '-pix_fmt',
      'yuv420p',
      join(media, 'long.mp4'),
    ]);
    origin = createServer((req, res) => {
      requests.push(`${req.method} ${req.url}`);
      if (req.method === 'PUT') {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          puts.push({ url: req.url ?? '', body: Buffer.concat(chunks), contentType: req.headers['content-type'] });
          res.writeHead(200).end();
        });
        return;
      }
      const path = join(media, (req.url ?? '/').split('?')[0]!.slice(1));
      try {
        const size = statSync(path).size;
        res.writeHead(200, { 'content-length': size });
        createReadStream(path).pipe(res);
      } catch {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`;
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
    executor = new FfmpegExecutor('ffmpeg', store, TRANSFERS);
  });

  afterAll(async () => {
    store?.destroy();
    await s3?.stop();
    origin?.closeAllConnections();
    await new Promise<void>((r) => (origin ? origin.close(() => r()) : r()));
    rmSync(media, { recursive: true, force: true });
  });

  beforeEach(() => {
    scratch = mkdtempSync(join(tmpdir(), 'gantry-ffx-'));
    requests.length = 0;
    puts.length = 0;
  });
  afterEach(() => rmSync(scratch, { recursive: true, force: true }));

  function record(input: Record<string, unknown>, extra: { upload?: { url: string } } = {}): JobRecord {
    return newJob(
      {
        id: `job${Math.floor(Math.random() * 1e9)}`,
        tenant: 'default',
        type: 'ffmpeg',
        input,
        priority: 'normal',
        pool: 'default',
        timeoutSeconds: 60,
        maxAttempts: 1,
        retryDelaysMs: [0],
        metadata: {},
        ...extra,
      },
      new Date(),
    ).record;
  }

  function context(r: JobRecord, signal = new AbortController().signal) {
    const progress: { percent: number; stage?: string }[] = [];
    const ctx: AttemptContext = {
      record: r,
      attempt: 1,
      scratchDir: scratch,
      env: { CUDA_VISIBLE_DEVICES: '' },
      signal,
      progress: (percent, stage) => progress.push({ percent, ...(stage ? { stage } : {}) }),
      logger: createLogger('test', 'silent'),
    };
    return { ctx, progress };
  }

  it('transcodes inputs from http(s) and s3://, reports progress, and uploads outputs to S3 with a working URL', async () => {
    await store.putObject('inputs/clip.mp4', readFileSync(join(media, 'clip.mp4')));
    const r = record({
      args: [
        '-i',
        'a.mp4',
        '-i',
        'b.mp4',
        '-map',
        '0:v',
        '-map',
        '1:a',
        '-vf',
        'scale=160:-2',
        '-c:v',
        'libx264',
        'out.mp4',
      ],
      inputs: { 'a.mp4': `${originUrl}/clip.mp4?sig=1`, 'b.mp4': `s3://${store.bucket}/inputs/clip.mp4` },
      outputs: ['out.mp4'],
    });
    const { ctx, progress } = context(r);
    const result = await executor.run(ctx);

    expect(requests).toEqual(['GET /clip.mp4?sig=1']);
    expect(result.outputs).toHaveLength(1);
    const out = result.outputs![0]!;
    expect(out.name).toBe('out.mp4');
    expect(out.url).toBe(`s3://${store.bucket}/jobs/${r.id}/out.mp4`);
    expect(out.sizeBytes).toBe(statSync(join(scratch, 'out.mp4')).size);

    const encoding = progress.filter((p) => p.stage === 'encoding').map((p) => p.percent);
    expect(encoding.length).toBeGreaterThan(2);
    expect([...encoding].sort((a, b) => a - b)).toEqual(encoding); // never goes back
    expect(Math.max(...encoding)).toBeGreaterThanOrEqual(90);
    expect(Math.max(...encoding)).toBeLessThanOrEqual(98);
    expect(progress.at(-1)).toEqual({ percent: 99, stage: 'uploading' });
    expect(progress.some((p) => p.stage === 'downloading 2/2')).toBe(true);

    const url = await store.presign(out);
    const res = await fetch(url!);
    expect(res.status).toBe(200);
    const downloaded = Buffer.from(await res.arrayBuffer());
    expect(downloaded.length).toBe(out.sizeBytes);
    const copy = join(scratch, 'downloaded.mp4');
    writeFileSync(copy, downloaded);
    expect(probeSize(copy)).toBe('160,120');
  });

  it('PUTs the output to upload.url instead of S3', async () => {
    const r = record(
      {
        args: ['-i', 'in.mp4', '-t', '1', '-c', 'copy', 'out.mp4'],
        inputs: { 'in.mp4': `${originUrl}/clip.mp4` },
        outputs: ['out.mp4'],
      },
      { upload: { url: `${originUrl}/upload/out.mp4?X-Amz-Signature=secret` } },
    );
    const { ctx } = context(r);
    const result = await executor.run(ctx);
    expect(puts).toHaveLength(1);
    expect(puts[0]!.url).toBe('/upload/out.mp4?X-Amz-Signature=secret');
    expect(puts[0]!.body.length).toBe(result.outputs![0]!.sizeBytes);
    expect(result.outputs![0]!.url).toBe(`${originUrl}/upload/out.mp4`); // the signature is not stored
  });

  it('refuses a playlist input before ffmpeg can follow it', async () => {
    const playlist = ['#EXTM3U', '#EXT-X-TARGETDURATION:4', '#EXTINF:4.0,', `${originUrl}/clip.mp4`, '#EXT-X-ENDLIST'];
    writeFileSync(join(media, 'list.m3u8'), playlist.join('\n'));
    const r = record({
      args: ['-i', 'in.mp4', 'out.mp4'],
      inputs: { 'in.mp4': `${originUrl}/list.m3u8` },
      outputs: ['out.mp4'],
    });
    const err = await executor.run(context(r).ctx).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(JobFailure);
    expect(err).toMatchObject({ code: 'INVALID_INPUT', retryable: false });
    expect((err as Error).message).toContain('an HLS playlist');
    expect(requests).toEqual(['GET /list.m3u8']); // the segment was never fetched
  });

  it.each([
    ['HLS in lower case after blank lines', '\n\n#extm3u\n#EXTINF:4,\nhttp://x/seg.ts\n', 'an HLS playlist'],
    ['HLS tags behind junk', `${'x'.repeat(700)}\n#EXT-X-TARGETDURATION:4\n`, 'an HLS playlist'],
    ['ffconcat after a BOM', '\uFEFFFFCONCAT Version 1.0\nfile a.mp4\n', 'an ffconcat list'],
    ['DASH far into the head', `${'\u0001'.repeat(600_000)}<?xml version="1.0"?><mpd xmlns="x">`, 'a DASH manifest'],
    [
      'IMF CPL',
      '<?xml version="1.0"?>\n<CompositionPlaylist xmlns="http://www.smpte-ra.org/schemas/2067-3/2016">',
      'an IMF composition',
    ],
    ['DASH in UTF-16', Buffer.from('<MPD type="static">', 'utf16le').toString('latin1'), 'a DASH manifest'],
    [
      'SDP',
      'v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nm=video 5004 RTP/AVP 96\n',
      'an SDP session description',
    ],
  ])('recognizes %s as a file that names others', async (_what, content, kind) => {
    const path = join(media, 'sniff.bin');
    writeFileSync(path, Buffer.from(content, 'latin1'));
    await expect(sniffPlaylist(path)).resolves.toBe(kind);
  });

  it('does not take real media for a playlist', async () => {
    await expect(sniffPlaylist(join(media, 'clip.mp4'))).resolves.toBeUndefined();
    await expect(sniffPlaylist(join(media, 'long.mp4'))).resolves.toBeUndefined();
  });

  it('opens outputs with local protocols only: an output URL reaches no server', async () => {
    const run = promisify(execFile);
    writeFileSync(join(scratch, 'in.mp4'), readFileSync(join(media, 'clip.mp4')));
    const target = `${originUrl}/exfil/out.mp4`;
    // Control: without the whitelist ffmpeg does send the output to the URL (so the check below can fail).
    await run(
      'ffmpeg',
      ['-hide_banner', '-nostdin', '-y', '-i', 'in.mp4', '-t', '1', '-f', 'mp4', '-movflags', 'frag_keyframe', target],
      { cwd: scratch },
    ).catch(() => undefined);
    await waitFor(() => requests.some((r) => r.includes('/exfil/')), {
      what: 'the control request',
      timeoutMs: 10_000,
    });
    requests.length = 0;
    const err = await run('ffmpeg', ffmpegArgv(['-i', 'in.mp4', '-t', '1', '-f', 'mp4', target]), {
      cwd: scratch,
    }).catch((e: unknown) => e);
    expect(String((err as { stderr?: string }).stderr)).toMatch(/not on whitelist 'file'/);
    expect(requests.filter((r) => r.includes('/exfil/'))).toEqual([]);
  });

  it('fails with ffmpeg’s own words when the input is not media', async () => {
    writeFileSync(join(media, 'junk.mp4'), 'this is not a video');
    const r = record({
      args: ['-i', 'in.mp4', 'out.mp4'],
      inputs: { 'in.mp4': `${originUrl}/junk.mp4` },
      outputs: ['out.mp4'],
    });
    const err = (await executor.run(context(r).ctx).catch((e: unknown) => e)) as JobFailure;
    expect(err).toBeInstanceOf(JobFailure);
    expect(err.code).toBe('EXIT_CODE');
    expect(err.message).toMatch(/^ffmpeg exited with code 1: .*Invalid data found when processing input/);
    expect(err.detail).toContain('--- stderr');
  });

  it('fails a download that does not exist without running ffmpeg', async () => {
    const r = record({
      args: ['-i', 'in.mp4', 'out.mp4'],
      inputs: { 'in.mp4': `${originUrl}/nope.mp4` },
      outputs: ['out.mp4'],
    });
    await expect(executor.run(context(r).ctx)).rejects.toMatchObject({ code: 'DOWNLOAD_FAILED', retryable: false });
  });

  it('kills ffmpeg on cancel and leaves no ffmpeg process behind', async () => {
    const marker = `slow${Math.floor(Math.random() * 1e9)}.mp4`;
    const r = record({
      // -re reads the 120 s input at its own pace: a long, slow run.
      args: ['-re', '-i', marker, '-c:v', 'libx264', 'out.mp4'],
      inputs: { [marker]: `${originUrl}/long.mp4` },
      outputs: ['out.mp4'],
    });
    const ac = new AbortController();
    const { ctx } = context(r, ac.signal);
    const run = executor.run(ctx).catch((e: unknown) => e);
    await waitFor(() => ffmpegPids(marker).length === 1, { what: 'ffmpeg to run', timeoutMs: 30_000 });
    ac.abort(new Error('cancelled by test'));
    const cancelledAt = Date.now();
    const err = await run;
    expect((err as Error).message).toBe('cancelled by test');
    expect(Date.now() - cancelledAt).toBeLessThan(6_000);
    await waitFor(() => ffmpegPids(marker).length === 0, { what: 'no ffmpeg left', timeoutMs: 10_000 });
  });
});

describe('ffmpeg progress and argv', () => {
  it('reads ffmpeg time syntax', () => {
    expect(parseFfmpegTime('00:01:02.5')).toBe(62_500_000);
    expect(parseFfmpegTime('90')).toBe(90_000_000);
    expect(parseFfmpegTime('1500ms')).toBe(1_500_000);
    expect(parseFfmpegTime('abc')).toBeUndefined();
  });

  it('computes percent against the input duration, less -ss, capped by -t', () => {
    expect(new FfmpegProgress(['-i', 'in.mp4', 'out.mp4']).progress('out_time_us=5000000')).toBeUndefined(); // no duration
    const p = new FfmpegProgress(['-ss', '10', '-i', 'in.mp4', '-t', '20', 'out.mp4']);
    p.stderr('  Duration: 00:01:00.00, start: 0.000000, bitrate: 100 kb/s');
    expect(p.progress('out_time_us=5000000')).toBe(25);
    expect(p.progress('out_time_us=4000000')).toBeUndefined(); // never backwards
    expect(p.progress('out_time_us=30000000')).toBe(98);
    const q = new FfmpegProgress(['-i', 'in.mp4', 'out.mp4']);
    q.stderr('Duration: 00:00:10.00, start');
    expect(q.progress('out_time_ms=2500000')).toBe(25);
    expect(q.progress('progress=end')).toBe(98);
  });

  it('runs every input with local protocols only', () => {
    expect(ffmpegArgv(['-i', 'a.mp4', '-i', 'b.mp4', 'out.mp4'])).toEqual([
      '-hide_banner',
      '-nostdin',
      '-y',
      '-nostats',
      '-progress',
      'pipe:1',
      '-protocol_whitelist',
      'file',
      '-i',
      'a.mp4',
      '-protocol_whitelist',
      'file',
      '-i',
      'b.mp4',
      '-protocol_whitelist',
      'file',
      'out.mp4',
    ]);
    // Values are never mistaken for outputs, and each output gets its own whitelist.
    expect(ffmpegArgv(['-i', 'in.mp4', '-metadata', 'title=x', 'a.mp4', '-an', 'b.mkv']).slice(6)).toEqual([
      '-protocol_whitelist',
      'file',
      '-i',
      'in.mp4',
      '-metadata',
      'title=x',
      '-protocol_whitelist',
      'file',
      'a.mp4',
      '-an',
      '-protocol_whitelist',
      'file',
      'b.mkv',
    ]);
  });
});
