/**
 * `ffmpeg`: downloads the declared inputs into the attempt's scratch directory, runs ffmpeg there (argv checked
 * again; `-progress pipe:1` parsed into percent), and uploads the declared outputs.
 */
import { join } from 'node:path';
import { validateFfmpegInput, type FfmpegInput } from '@gantry/contracts';
import type { OutputStore } from '@gantry/storage';
import { JobFailure, type AttemptContext, type ExecutionResult, type JobExecutor } from './executor';
import { uploadOutputs } from './outputs';
import { exitFailure, runProcess } from './process-runner';
import { downloadInput, type TransferSettings } from './transfers';

function parseDuration(line: string): number | undefined {
  const m = /Duration:\s*(\d+):(\d+):(\d+(?:\.\d+)?)/.exec(line);
  if (!m) return undefined;
  return (Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3])) * 1_000_000;
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

    const names = Object.keys(input.inputs);
    for (const [i, name] of names.entries()) {
      ctx.progress(0, `downloading ${i + 1}/${names.length}`);
      await downloadInput(input.inputs[name]!, join(ctx.scratchDir, name), this.store, this.transfers, ctx.signal);
    }

    let durationUs: number | undefined;
    let lastPercent = -1;
    ctx.progress(0, 'encoding');
    const r = await runProcess({
      command: this.binary,
      args: ['-hide_banner', '-nostdin', '-y', '-nostats', '-progress', 'pipe:1', ...input.args],
      cwd: ctx.scratchDir,
      env: ctx.env,
      signal: ctx.signal,
      onStderrLine: (line) => {
        durationUs ??= parseDuration(line);
      },
      onStdoutLine: (line) => {
        const m = /^out_time_(?:us|ms)=(\d+)$/.exec(line.trim());
        if (!m || !durationUs) return;
        const percent = Math.min(98, Math.floor((Number(m[1]) / durationUs) * 100));
        if (percent > lastPercent) {
          lastPercent = percent;
          ctx.progress(percent, 'encoding');
        }
      },
    });
    if (ctx.signal.aborted) throw ctx.signal.reason;
    if (r.exitCode !== 0) throw exitFailure('ffmpeg', r);
    const outputs = await uploadOutputs(ctx, input.outputs, this.store, this.transfers);
    return { outputs };
  }
}
