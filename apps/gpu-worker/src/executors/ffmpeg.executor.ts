/**
 * `ffmpeg`: downloads the declared inputs into the attempt's scratch directory, runs ffmpeg there (argv checked
 * again; `-progress pipe:1` parsed into percent), and uploads the declared outputs.
 */
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { tokenizeFfmpegArgs, validateFfmpegInput, type FfmpegInput } from '@gantry/contracts';
import type { OutputStore } from '@gantry/storage';
import { JobFailure, downloadBudget, type AttemptContext, type ExecutionResult, type JobExecutor } from './executor';
import { assertUploadTarget, uploadOutputs } from './outputs';
import { exitFailure, runProcess } from './process-runner';
import { inputUrl } from './parent-input';
import { downloadInput, type TransferSettings } from './transfers';

/**
 * Protocols ffmpeg may open, for inputs and outputs alike: local files only. Placed before every `-i` and before every
 * output file, so neither an input's content (an SDP naming RTP sockets, a mov data reference) nor a muxer's own
 * options can make ffmpeg fetch URLs (SSRF) or open sockets; nested opens inherit it.
 */
export const LOCAL_PROTOCOLS = 'file';

/**
 * Formats whose content names other files or URLs to open (playlists, concat lists, manifests, session
 * descriptions). Inputs are single media files downloaded into the scratch directory; these are refused before
 * ffmpeg runs. Matched case-insensitively **anywhere** in the first `SNIFF_BYTES`: ffmpeg's probe looks that far
 * (its probe buffer grows to 1 MiB) and some probes (DASH `<MPD`, IMF `CompositionPlaylist`) match anywhere in it.
 */
const PLAYLIST_SIGNATURES: [RegExp, string][] = [
  [/#extm3u|#ext-x-/, 'an HLS playlist'],
  [/ffconcat\s+version/, 'an ffconcat list'],
  [/<mpd[\s>]|urn:mpeg:dash:/, 'a DASH manifest'],
  [/compositionplaylist|assetmap/, 'an IMF composition'],
  [/\[playlist\]/, 'a PLS playlist'],
  [/<(asx|smil)[\s>]/, 'an ASX/SMIL playlist'],
  [/(^|[\r\n])c=in ip[46] /, 'an SDP session description'],
];
export const SNIFF_BYTES = (1 << 20) + 64;

/** The kind of playlist or manifest a file's head is, or undefined for anything else. */
export async function sniffPlaylist(path: string): Promise<string | undefined> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(SNIFF_BYTES);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    // latin1 maps each byte to one char, so a UTF-16 manifest's ASCII letters are separated by NULs: drop them too.
    const head = buf
      .subarray(0, bytesRead)
      .toString('latin1')
      .replace(/\u0000/g, '')
      .toLowerCase();
    return PLAYLIST_SIGNATURES.find(([re]) => re.test(head))?.[1];
  } finally {
    await fh.close();
  }
}

/** ffmpeg's time syntax (`[-][HH:]MM:SS[.m…]` or seconds with an optional unit suffix) in microseconds. */
export function parseFfmpegTime(v: string): number | undefined {
  const hms = /^(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)$/.exec(v.trim());
  if (hms) return (Number(hms[1] ?? 0) * 3600 + Number(hms[2]) * 60 + Number(hms[3])) * 1_000_000;
  const secs = /^(\d+(?:\.\d+)?)(s|ms|us)?$/.exec(v.trim());
  if (!secs) return undefined;
  const n = Number(secs[1]);
  return secs[2] === 'ms' ? n * 1000 : secs[2] === 'us' ? n : n * 1_000_000;
}

/** `Duration: 00:01:02.50` from ffmpeg's input dump, in microseconds. */
export function parseDurationLine(line: string): number | undefined {
  const m = /Duration:\s*(\d+:\d+:\d+(?:\.\d+)?)/.exec(line);
  return m ? parseFfmpegTime(m[1]!) : undefined;
}

/**
 * Percent done from ffmpeg's `-progress` output: `out_time_us` against the expected output length — the first
 * input's duration, less an `-ss` seek, capped by `-t` (or `-to`). Capped at 98 until the outputs are uploaded.
 */
export class FfmpegProgress {
  private durationUs: number | undefined;
  private readonly limitUs: number | undefined;
  private readonly seekUs: number;
  private last = -1;

  constructor(args: readonly string[]) {
    let limit: number | undefined;
    let seek = 0;
    for (let i = 0; i < args.length - 1; i++) {
      const opt = args[i]!.split(':')[0];
      const v = parseFfmpegTime(args[i + 1]!);
      if (v === undefined) continue;
      if (opt === '-t' || opt === '-to') limit = limit === undefined ? v : Math.min(limit, v);
      if (opt === '-ss') seek = Math.max(seek, v);
    }
    this.limitUs = limit;
    this.seekUs = seek;
  }

  /** Feeds one stderr line (for the duration). */
  stderr(line: string): void {
    this.durationUs ??= parseDurationLine(line);
  }

  /** Feeds one `-progress` line; returns a new, higher percent when there is one. */
  progress(line: string): number | undefined {
    const t = line.trim();
    if (t === 'progress=end') return this.bump(98);
    const m = /^out_time_(?:us|ms)=(\d+)$/.exec(t);
    if (!m) return undefined;
    const expected = this.expectedUs();
    if (!expected) return undefined;
    return this.bump(Math.min(98, Math.floor((Number(m[1]) / expected) * 100)));
  }

  private expectedUs(): number | undefined {
    const fromInput = this.durationUs !== undefined ? Math.max(0, this.durationUs - this.seekUs) : undefined;
    if (fromInput === undefined) return this.limitUs;
    return this.limitUs === undefined ? fromInput : Math.min(fromInput, this.limitUs);
  }

  private bump(p: number): number | undefined {
    if (p <= this.last) return undefined;
    this.last = p;
    return p;
  }
}

/**
 * The argv ffmpeg runs with: fixed options first, and every input and every output opened with local protocols
 * only (the client's argv is read with the same arities the validator used).
 */
export function ffmpegArgv(clientArgs: readonly string[]): string[] {
  const argv = ['-hide_banner', '-nostdin', '-y', '-nostats', '-progress', 'pipe:1'];
  for (const t of tokenizeFfmpegArgs(clientArgs)) {
    if (t.kind === 'output' || (t.kind === 'option' && t.option === '-i'))
      argv.push('-protocol_whitelist', LOCAL_PROTOCOLS);
    argv.push(clientArgs[t.index]!);
    if (t.kind === 'option' && t.valueIndex !== undefined) argv.push(clientArgs[t.valueIndex]!);
  }
  return argv;
}

export class FfmpegExecutor implements JobExecutor {
  readonly types = ['ffmpeg'] as const;

  constructor(
    private readonly binary: string,
    private readonly store: OutputStore,
    private readonly transfers: TransferSettings,
  ) {}

  async run(ctx: AttemptContext): Promise<ExecutionResult> {
    const errors = validateFfmpegInput(ctx.record.input);
    if (errors.length)
      throw new JobFailure('INVALID_INPUT', errors.map((e) => `${e.field} ${e.message}`).join('; '), false);
    const input = ctx.record.input as unknown as FfmpegInput;
    assertUploadTarget(ctx, input.outputs);

    const names = Object.keys(input.inputs);
    let downloaded = 0;
    for (const [i, name] of names.entries()) {
      ctx.progress(0, `downloading ${i + 1}/${names.length}`);
      const path = join(ctx.scratchDir, name);
      downloaded += await downloadInput(
        await inputUrl(ctx, input.inputs[name]!),
        path,
        this.store,
        this.transfers,
        ctx.signal,
        ctx.s3ReadRefusal?.bind(ctx),
        downloadBudget(ctx, downloaded),
      );
      const playlist = await sniffPlaylist(path);
      if (playlist) {
        throw new JobFailure(
          'INVALID_INPUT',
          `input ${name} is ${playlist}; inputs must be single media files (a playlist names other files to open)`,
          false,
        );
      }
    }

    const progress = new FfmpegProgress(input.args);
    ctx.progress(0, 'encoding');
    const r = await runProcess({
      command: this.binary,
      args: ffmpegArgv(input.args),
      cwd: ctx.scratchDir,
      env: ctx.env,
      signal: ctx.signal,
      ...(ctx.lease ? { lease: ctx.lease } : {}),
      ...(ctx.sandbox ? { sandbox: ctx.sandbox } : {}),
      onStderrLine: (line) => progress.stderr(line),
      onStdoutLine: (line) => {
        const p = progress.progress(line);
        if (p !== undefined) ctx.progress(p, 'encoding');
      },
    });
    if (ctx.signal.aborted) throw ctx.signal.reason;
    if (r.exitCode !== 0) throw exitFailure('ffmpeg', r);
    const outputs = await uploadOutputs(ctx, input.outputs, this.store, this.transfers);
    return { outputs };
  }
}
