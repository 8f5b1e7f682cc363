/**
 * Runs one job process with execa in its own process group, so cancel, timeout and shutdown kill the whole tree
 * (SIGTERM to the group, SIGKILL after a grace period) and nothing is left behind. Keeps the last lines of stdout and
 * stderr for the error message, and streams lines to the caller (progress parsing).
 */
import { execa } from 'execa';
import { JobFailure } from './executor';

export interface ProcessSpec {
  command: string;
  args: readonly string[];
  cwd: string;
  env: Readonly<Record<string, string>>;
  signal: AbortSignal;
  onStdoutLine?: (line: string) => void;
  onStderrLine?: (line: string) => void;
  /** SIGTERM → SIGKILL delay. */
  killGraceMs?: number;
  tailLines?: number;
}

export interface ProcessResult {
  exitCode: number | undefined;
  signal: string | undefined;
  stdoutTail: string[];
  stderrTail: string[];
}

/** Variables passed through from the worker's own environment (everything else comes from the spec). */
const PASSTHROUGH = [
  'PATH',
  'HOME',
  'LANG',
  'LC_ALL',
  'TZ',
  'LD_LIBRARY_PATH',
  'NVIDIA_VISIBLE_DEVICES',
  'NVIDIA_DRIVER_CAPABILITIES',
];

/**
 * The job runs under this guard, the leader of its own process group. The guard's stdin is a pipe from the worker
 * that is never written: when the worker dies (even `kill -9`), the pipe closes, the watcher reads EOF and kills the
 * whole group, so a job never outlives its worker and never runs beside its own redelivery.
 */
const GUARD = [
  // Keep the pipe on fd 3: a background command's stdin would otherwise be /dev/null.
  'exec 3<&0',
  '"$@" </dev/null 3<&- &',
  'child=$!',
  '( while read -r _; do :; done <&3; kill -KILL -$$ 2>/dev/null ) &',
  'watcher=$!',
  'exec 3<&-',
  'wait "$child"',
  'code=$?',
  'kill -KILL "$watcher" 2>/dev/null',
  'exit "$code"',
].join('\n');

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (!pid) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is gone
  }
}

class Tail {
  private readonly lines: string[] = [];
  private partial = '';
  constructor(
    private readonly max: number,
    private readonly onLine?: (line: string) => void,
  ) {}
  push(chunk: Buffer | string): void {
    const text = this.partial + chunk.toString();
    const parts = text.split(/\r?\n|\r/);
    this.partial = parts.pop() ?? '';
    for (const l of parts) this.add(l);
  }
  private add(line: string): void {
    this.onLine?.(line);
    this.lines.push(line.length > 2_000 ? `${line.slice(0, 2_000)}…` : line);
    if (this.lines.length > this.max) this.lines.shift();
  }
  end(): string[] {
    if (this.partial) this.add(this.partial);
    this.partial = '';
    return this.lines;
  }
}

export async function runProcess(spec: ProcessSpec): Promise<ProcessResult> {
  const env: Record<string, string> = {};
  for (const k of PASSTHROUGH) if (process.env[k] !== undefined) env[k] = process.env[k]!;
  Object.assign(env, spec.env);
  const out = new Tail(spec.tailLines ?? 20, spec.onStdoutLine);
  const err = new Tail(spec.tailLines ?? 20, spec.onStderrLine);
  const child = execa('/bin/sh', ['-c', GUARD, 'gantry-guard', spec.command, ...spec.args], {
    cwd: spec.cwd,
    env,
    extendEnv: false,
    detached: true,
    stdin: 'pipe',
    buffer: false,
    reject: false,
    stripFinalNewline: false,
  });
  child.stdout?.on('data', (c: Buffer) => out.push(c));
  child.stderr?.on('data', (c: Buffer) => err.push(c));
  const grace = spec.killGraceMs ?? 5_000;
  let killTimer: NodeJS.Timeout | undefined;
  const onAbort = () => {
    killGroup(child.pid, 'SIGTERM');
    killTimer = setTimeout(() => killGroup(child.pid, 'SIGKILL'), grace);
  };
  if (spec.signal.aborted) onAbort();
  else spec.signal.addEventListener('abort', onAbort, { once: true });
  try {
    const r = await child;
    if (r.failed && r.exitCode === undefined && !r.signal && !spec.signal.aborted) {
      const cause = (r as { cause?: unknown }).cause;
      throw new JobFailure(
        'SPAWN_FAILED',
        `cannot start ${spec.command}: ${cause instanceof Error ? cause.message : r.shortMessage}`,
        false,
        undefined,
        { cause },
      );
    }
    const stderrTail = err.end();
    // sh reports 127 when the command does not exist (the guard cannot know earlier).
    if (r.exitCode === 127 && stderrTail.some((l) => /not found|No such file/i.test(l))) {
      throw new JobFailure(
        'SPAWN_FAILED',
        `cannot start ${spec.command}: not found`,
        false,
        stderrTail.slice(-3).join('\n'),
      );
    }
    return { exitCode: r.exitCode, signal: r.signal, stdoutTail: out.end(), stderrTail };
  } finally {
    spec.signal.removeEventListener('abort', onAbort);
    if (killTimer) clearTimeout(killTimer);
    // Anything the job left running in its group goes with it.
    killGroup(child.pid, 'SIGKILL');
  }
}

/** Maps an unsuccessful exit to a JobFailure (exit codes are retryable: the attempt budget bounds them). */
export function exitFailure(name: string, r: ProcessResult): JobFailure {
  const detail = r.stderrTail.slice(-10).join('\n') || r.stdoutTail.slice(-10).join('\n');
  if (r.signal) return new JobFailure('SIGNAL', `${name} was killed by ${r.signal}`, true, detail);
  if (r.exitCode !== undefined && r.exitCode > 128 && r.exitCode <= 192) {
    return new JobFailure('SIGNAL', `${name} was killed by signal ${r.exitCode - 128}`, true, detail);
  }
  return new JobFailure('EXIT_CODE', `${name} exited with code ${r.exitCode}`, true, detail);
}
