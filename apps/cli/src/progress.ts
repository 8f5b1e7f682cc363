/**
 * The progress bar of `submit --wait` and `jobs watch` (cli-progress, on stderr): percent, stage, status and an ETA
 * from the job's own progress rate. Drawn only when stderr is a terminal; otherwise one line per status change.
 */
import cliProgress from 'cli-progress';
import type { JobEventMessage, JobView } from '@gantry/client';

export interface ProgressSink {
  update(view: JobView): void;
  stop(): void;
}

export function progressSink(stream: NodeJS.WriteStream = process.stderr): ProgressSink {
  if (!stream.isTTY) {
    let last = '';
    return {
      update(v) {
        if (v.status === last) return;
        last = v.status;
        stream.write(`${v.id} ${v.status}${v.error ? `: ${v.error.code} ${v.error.message}` : ''}\n`);
      },
      stop() {},
    };
  }
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: '{id} [{bar}] {percentage}% | {status} {stage} | ETA {left}',
      hideCursor: true,
      clearOnComplete: false,
      etaBuffer: 20,
      fps: 10,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update(v) {
      const percent = Math.round(v.progress?.percent ?? (v.status === 'completed' ? 100 : 0));
      const payload = { id: v.id, status: v.status, stage: v.progress?.stage ?? '', left: eta(v, percent) };
      if (!started) {
        bar.start(100, percent, payload);
        started = true;
      } else bar.update(percent, payload);
    },
    stop() {
      if (started) bar.stop();
    },
  };
}

/** Time left at the job's own pace so far: elapsed × (100 − p) / p; `?` before any progress. */
export function eta(v: JobView, percent: number, now = Date.now()): string {
  if (v.status === 'completed') return '0s';
  if (v.status !== 'running' || !v.startedAt || percent <= 0) return '?';
  const elapsed = (now - Date.parse(v.startedAt)) / 1000;
  const left = Math.max(0, Math.round((elapsed * (100 - percent)) / percent));
  return left >= 60 ? `${Math.floor(left / 60)}m${String(left % 60).padStart(2, '0')}s` : `${left}s`;
}

export const onEventTo =
  (sink: ProgressSink) =>
  (e: JobEventMessage): void =>
    sink.update(e.data);
