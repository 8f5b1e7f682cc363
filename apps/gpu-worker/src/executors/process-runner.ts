/**
 * Runs one job process with execa in its own process group (session), under a small `sh` guard, so that cancel,
 * timeout and shutdown kill the whole tree (SIGTERM to the group, SIGKILL after a grace period) and nothing is left
 * behind — and so that the job dies with its worker even when the worker cannot act (kill -9, SIGSTOP, a frozen
 * event loop). Keeps the last lines of stdout and stderr for the error message and streams lines to the caller
 * (progress parsing).
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { constants as osConstants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { execa } from 'execa';
import { inSpan } from '@gantry/telemetry';
import { directoryBytes, sandboxFailureLine, type AttemptSandbox } from '../sandbox/sandbox';
import { JobFailure, type Lease } from './executor';

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
  /** When set, the guard kills the job once renewals stop for `lease.deadlineMs`. */
  lease?: Lease;
  /**
   * The attempt's sandbox: the job then runs inside it (cwd its scratch directory, environment `env` only) and its
   * scratch directory is held to the sandbox's disk cap.
   */
  sandbox?: AttemptSandbox;
  /** Keep the host network inside the sandbox (a catalog type's `network: true`). */
  network?: boolean;
  /** Host paths the job may read (bound read-only in the sandbox). */
  readOnly?: readonly string[];
  /** How often the scratch directory's size is checked against the cap (ms). */
  diskCheckMs?: number;
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
  'CUDA_HOME',
];

/**
 * The job runs under this guard, the leader of its own process group. Arguments: how many lease checks may pass
 * without a renewal (0 = no lease), the check period in seconds, a private directory, then the job's argv.
 *
 * - The guard's stdin is a pipe from the worker. A reader turns every line into a renewal; at EOF — the worker died,
 *   even by `kill -9` — it kills the whole group, so a job never outlives its worker and never runs beside its own
 *   redelivery.
 * - A timer kills the group when renewals stop for the lease deadline (writing `expired` first, so the worker can
 *   tell): a worker that is stopped, frozen or cut off from NATS (it renews only after a successful heartbeat) loses
 *   its job before the scheduler hands the attempt to another worker.
 * - The guard survives SIGTERM sent to the group (it waits for the job), and the reader and timer ignore it, so the
 *   job's own SIGTERM grace period stays guarded too.
 * Written for POSIX sh (dash, busybox, bash) with coreutils `sleep` (fractional seconds).
 */
export const GUARD = `misses_allowed=$1; period=$2; dir=$3; shift 3
trap 'term=1' TERM INT HUP
exec 3<&0
"$@" </dev/null 3<&- &
child=$!
( trap '' TERM INT HUP
  while read -r _; do : > "$dir/tick"; done <&3
  kill -KILL -$$ ) </dev/null >/dev/null 2>&1 &
reader=$!
timer=
if [ "$misses_allowed" -gt 0 ]; then
  ( trap '' TERM INT HUP
    missed=0
    while sleep "$period"; do
      if [ -e "$dir/tick" ]; then rm -f "$dir/tick"; missed=0
      else
        missed=$((missed + 1))
        if [ "$missed" -ge "$misses_allowed" ]; then : > "$dir/expired"; kill -KILL -$$; fi
      fi
    done ) 3<&- </dev/null >/dev/null 2>&1 &
  timer=$!
fi
exec 3<&- 0</dev/null
while :; do
  wait "$child"
  code=$?
  kill -0 "$child" 2>/dev/null || break
done
kill -KILL "$reader" $timer 2>/dev/null
wait 2>/dev/null
exit "$code"`;

/** The guard's lease parameters: a check period of deadline/8 (0.1–1 s) and the checks that may be missed. */
export function guardLeaseArgs(deadlineMs: number): { missesAllowed: number; periodSeconds: string } {
  if (deadlineMs <= 0) return { missesAllowed: 0, periodSeconds: '1' };
  const periodMs = Math.min(1_000, Math.max(100, Math.floor(deadlineMs / 8)));
  return { missesAllowed: Math.max(1, Math.ceil(deadlineMs / periodMs)), periodSeconds: (periodMs / 1000).toFixed(3) };
}

/** `/bin/sh` argv that runs `command args…` under the guard. */
export function guardArgv(guardDir: string, leaseDeadlineMs: number, command: string, args: readonly string[]) {
  const { missesAllowed, periodSeconds } = guardLeaseArgs(leaseDeadlineMs);
  return ['-c', GUARD, 'gantry-guard', String(missesAllowed), periodSeconds, guardDir, command, ...args];
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (!pid) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is gone
  }
}

/** Longest line kept whole (a line longer than this is passed on cut to this length plus one character). */
const LINE_LIMIT = 64 * 1024;

class Tail {
  private readonly lines: string[] = [];
  private partial = '';
  private readonly decoder = new StringDecoder('utf8');
  constructor(
    private readonly max: number,
    private readonly onLine?: (line: string) => void,
  ) {}
  push(chunk: Buffer): void {
    const text = this.partial + this.decoder.write(chunk);
    const parts = text.split(/\r?\n|\r/);
    this.partial = parts.pop() ?? '';
    // A line without an end yet is kept bounded: its head, which is what identifies it (`GANTRY_RESULT …`) and is
    // enough to tell that it is too long; the rest is dropped until the line ends. (Keeping the tail instead lost the
    // prefix of long lines whenever the pipe delivered them in small chunks.)
    if (this.partial.length > LINE_LIMIT) this.partial = this.partial.slice(0, LINE_LIMIT + 1);
    for (const l of parts) this.add(l.length > LINE_LIMIT ? l.slice(0, LINE_LIMIT + 1) : l);
  }
  private add(line: string): void {
    try {
      this.onLine?.(line);
    } catch {
      // a parser's bug must not break the run
    }
    this.lines.push(line.length > 2_000 ? `${line.slice(0, 2_000)}…` : line);
    if (this.lines.length > this.max) this.lines.shift();
  }
  end(): string[] {
    const rest = this.partial + this.decoder.end();
    if (rest) this.add(rest);
    this.partial = '';
    return this.lines;
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** The scratch directory grew past the attempt's cap (MAX_SCRATCH_BYTES): the job was killed. */
function diskLimitFailure(maxBytes: number, r?: ProcessResult): JobFailure {
  return new JobFailure(
    'DISK_LIMIT',
    `the job wrote more than MAX_SCRATCH_BYTES (${maxBytes} bytes) into its scratch directory and was stopped`,
    false,
    r ? failureDetail(r) : undefined,
  );
}

/** SIGXFSZ as the job's death: a file reached RLIMIT_FSIZE (the scratch cap). */
function fileSizeExceeded(r: ProcessResult): boolean {
  const xfsz = osConstants.signals.SIGXFSZ;
  return r.signal === 'SIGXFSZ' || r.exitCode === 128 + xfsz;
}

async function runProcessUntraced(spec: ProcessSpec): Promise<ProcessResult> {
  let env: Record<string, string> = {};
  let command = spec.command;
  let args: readonly string[] = spec.args;
  let cwd = spec.cwd;
  const sandbox = spec.sandbox;
  if (sandbox?.enabled) {
    // Nothing of the worker's environment: the job's own variables go in through the sandbox's command line.
    const wrapped = await sandbox.wrap(spec.command, spec.args, spec.env, {
      network: spec.network ?? false,
      readOnly: spec.readOnly ?? [],
    });
    ({ command, args, env } = wrapped);
    cwd = sandbox.scratchDir;
  } else {
    for (const k of PASSTHROUGH) if (process.env[k] !== undefined) env[k] = process.env[k]!;
    env = { ...env, ...spec.env };
  }
  const maxScratch = sandbox?.maxScratchBytes;
  let overDisk = false;
  const out = new Tail(spec.tailLines ?? 20, spec.onStdoutLine);
  const err = new Tail(spec.tailLines ?? 20, spec.onStderrLine);
  const guardDir = await mkdtemp(join(tmpdir(), 'gantry-guard-'));
  const deadlineMs = spec.lease?.deadlineMs ?? 0;
  let unsubscribe: (() => void) | undefined;
  let child: ReturnType<typeof execa> | undefined;
  let killTimer: NodeJS.Timeout | undefined;
  let diskTimer: NodeJS.Timeout | undefined;
  // A sandbox that lost its parent runs in its own session and pid namespace, out of reach of the guard's group, but
  // as the attempt's own uid: every kill of the group also sweeps that uid (a no-op without per-slot uids).
  const killAll = (pid: number | undefined) => {
    killGroup(pid, 'SIGKILL');
    sandbox?.killStragglers();
  };
  const onAbort = () => {
    killGroup(child?.pid, 'SIGTERM');
    killTimer ??= setTimeout(() => killAll(child?.pid), spec.killGraceMs ?? 5_000);
  };
  try {
    child = execa('/bin/sh', guardArgv(guardDir, deadlineMs, command, args), {
      cwd,
      env,
      extendEnv: false,
      // setsid(): the guard leads a new session and process group, apart from the worker's.
      detached: true,
      stdin: 'pipe',
      buffer: false,
      reject: false,
      stripFinalNewline: false,
    });
    const running = child;
    running.stdin?.on('error', () => undefined); // EPIPE once the guard is gone
    // When the guard exits (the job's main process is done), whatever the job left in its group is killed at once:
    // a leftover background child would otherwise hold stdout open and keep the attempt from ending.
    running.nodeChildProcess.once('exit', () => killAll(running.pid));
    running.stdout?.on('data', (c: Buffer) => out.push(c));
    running.stderr?.on('data', (c: Buffer) => err.push(c));
    const renew = () => {
      if (running.stdin?.writable) running.stdin.write('\n');
    };
    renew();
    if (spec.lease && deadlineMs > 0) unsubscribe = spec.lease.onRenew(renew);
    if (spec.signal.aborted) onAbort();
    else spec.signal.addEventListener('abort', onAbort, { once: true });
    if (sandbox && maxScratch !== undefined) {
      // The disk cap: the scratch directory (inputs and everything the job writes) is measured while the job runs,
      // and the job is killed as soon as it holds more than the cap. RLIMIT_FSIZE bounds each single write between
      // two checks; see docs/gpu.md.
      let checking = false;
      diskTimer = setInterval(() => {
        if (checking || overDisk) return;
        checking = true;
        void directoryBytes(sandbox.scratchDir)
          .then(({ bytes, entries }) => {
            if (bytes > maxScratch || entries > sandbox.maxScratchEntries) {
              overDisk = true;
              killAll(running.pid);
            }
          })
          .finally(() => (checking = false));
      }, spec.diskCheckMs ?? 250);
    }

    const r = await running;
    if (diskTimer) clearInterval(diskTimer);
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
    const result: ProcessResult = {
      exitCode: r.exitCode,
      signal: r.signal,
      stdoutTail: out.end(),
      stderrTail: err.end(),
    };
    if (sandbox && maxScratch !== undefined && !spec.signal.aborted) {
      if (overDisk || fileSizeExceeded(result)) throw diskLimitFailure(maxScratch, result);
      const used = await directoryBytes(sandbox.scratchDir);
      if (used.bytes > maxScratch || used.entries > sandbox.maxScratchEntries)
        throw diskLimitFailure(maxScratch, result);
    }
    if (sandbox?.enabled && result.exitCode !== 0 && !spec.signal.aborted) {
      const line = sandboxFailureLine(result.stderrTail);
      if (line) {
        throw new JobFailure(
          'SANDBOX_FAILED',
          `the job sandbox could not start ${spec.command}: ${line.trim()}`,
          true,
          failureDetail(result),
        );
      }
    }
    if (!spec.signal.aborted && (await exists(join(guardDir, 'expired')))) {
      throw new JobFailure(
        'WORKER_LOST',
        `the worker could not renew its lease for ${deadlineMs} ms, so the job was killed before another worker ` +
          'could be given the attempt',
        true,
        failureDetail(result),
      );
    }
    return result;
  } finally {
    spec.signal.removeEventListener('abort', onAbort);
    unsubscribe?.();
    if (killTimer) clearTimeout(killTimer);
    if (diskTimer) clearInterval(diskTimer);
    // Anything the job left running in its group (or as its uid) goes with it.
    killAll(child?.pid);
    // Best-effort: a leftover guard directory is a few bytes in the temp directory, which the host cleans.
    await rm(guardDir, { recursive: true, force: true }).catch(() => undefined);
  }
}

const DETAIL_LIMIT = 8 * 1024;

/** The last lines of stderr and stdout, labelled, bounded (for `error.detail`). */
export function failureDetail(r: ProcessResult, lines = 20): string | undefined {
  const parts: string[] = [];
  const err = r.stderrTail.slice(-lines);
  const out = r.stdoutTail.slice(-lines);
  if (err.some((l) => l.trim())) parts.push(`--- stderr (last ${err.length} lines) ---\n${err.join('\n')}`);
  if (out.some((l) => l.trim())) parts.push(`--- stdout (last ${out.length} lines) ---\n${out.join('\n')}`);
  if (parts.length === 0) return undefined;
  const text = parts.join('\n');
  return text.length > DETAIL_LIMIT ? `…${text.slice(-DETAIL_LIMIT)}` : text;
}

function signalName(n: number): string {
  const hit = Object.entries(osConstants.signals).find(([, v]) => v === n);
  return hit ? hit[0] : `signal ${n}`;
}

function lastLine(lines: readonly string[]): string | undefined {
  for (let i = lines.length - 1; i >= 0; i--) {
    const l = lines[i]!.trim();
    if (l) return l.length > 300 ? `${l.slice(0, 300)}…` : l;
  }
  return undefined;
}

/**
 * Maps an unsuccessful exit to a JobFailure:
 * - 126 (not executable) and 127 (not found) → `SPAWN_FAILED`, not retryable (another attempt would fail alike);
 * - death by a signal (or the shell's 128+n) → `SIGNAL`, retryable (often the OOM killer or a node problem);
 * - any other non-zero code → `EXIT_CODE`, retryable (the attempt budget bounds it), unless the code is listed in
 *   `permanentExitCodes` (an operator's catalog says which codes mean "bad input").
 * The message carries the last stderr line; `detail` the last lines of stderr and stdout.
 */
export function exitFailure(name: string, r: ProcessResult, permanentExitCodes: readonly number[] = []): JobFailure {
  const detail = failureDetail(r);
  const hint = lastLine(r.stderrTail) ?? lastLine(r.stdoutTail);
  const suffix = hint ? `: ${hint}` : '';
  if (r.signal) return new JobFailure('SIGNAL', `${name} was killed by ${r.signal}${suffix}`, true, detail);
  const code = r.exitCode;
  if (code === 126 || code === 127) {
    const why = code === 127 ? 'command not found' : 'command not executable';
    return new JobFailure(
      'SPAWN_FAILED',
      `${name} could not start (${why}, exit code ${code})${suffix}`,
      false,
      detail,
    );
  }
  if (code !== undefined && code > 128 && code < 160) {
    const sig = signalName(code - 128);
    const oom = sig === 'SIGKILL' ? ' (out of memory?)' : '';
    return new JobFailure('SIGNAL', `${name} was killed by ${sig}${oom}${suffix}`, true, detail);
  }
  const permanent = code !== undefined && permanentExitCodes.includes(code);
  return new JobFailure('EXIT_CODE', `${name} exited with code ${code}${suffix}`, !permanent, detail);
}

/** Runs the job process inside a `job process` span (child of `job run`), with its exit code as an attribute. */
export async function runProcess(spec: ProcessSpec): Promise<ProcessResult> {
  return inSpan(
    'job process',
    { attributes: { 'process.executable.name': spec.command.split('/').pop() ?? spec.command } },
    async (span) => {
      const r = await runProcessUntraced(spec);
      if (r.exitCode !== undefined) span.setAttribute('process.exit.code', r.exitCode);
      if (r.signal) span.setAttribute('process.signal', r.signal);
      return r;
    },
  );
}
