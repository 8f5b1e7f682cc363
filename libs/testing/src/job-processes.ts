/**
 * Counting the copies of a job process that run on this host, as seen from outside (invariant 3 observed directly).
 *
 * A copy is a *session*, not a process: the worker runs each attempt under its guard as the leader of a new session
 * (setsid), and everything the job starts stays in it. Counting processes instead counts a shell's own fork before
 * it execs (`sleep 1`, a `$( … )` subshell) as a second copy — the same command line, for a few milliseconds, which
 * is what made the worker-failover test see "2 copies at once" of a job that ran once. Grouping by session cannot
 * miss a real second run: two attempts are two guards, two sessions, whatever they fork.
 */
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** One process seen in a `ps` snapshot. */
export interface SeenProcess {
  pid: number;
  sid: number;
  args: string;
}

const PS_ARGS = ['-e', '-o', 'pid=,sid=,stat=,args='];

/** Live (non-zombie) processes whose command line matches `pattern`, from one `ps` pass over the host. */
export function processesMatching(pattern: RegExp): SeenProcess[] {
  return parsePs(execFileSync('ps', PS_ARGS, { encoding: 'utf8', maxBuffer: 64 << 20 }), pattern);
}

/**
 * {@link processesMatching} without blocking the event loop: a test process that also serves HTTP (webhook
 * receivers) must keep answering while it samples, or its own endpoints time out under load.
 */
export async function processesMatchingAsync(pattern: RegExp): Promise<SeenProcess[]> {
  const { stdout } = await execFileAsync('ps', PS_ARGS, { encoding: 'utf8', maxBuffer: 64 << 20 });
  return parsePs(stdout, pattern);
}

function parsePs(out: string, pattern: RegExp): SeenProcess[] {
  const seen: SeenProcess[] = [];
  for (const line of out.split('\n')) {
    const m = /^\s*(\d+)\s+(\d+)\s+(\S+)\s+(.*)$/.exec(line);
    if (!m || m[3]!.startsWith('Z')) continue;
    if (pattern.test(m[4]!)) seen.push({ pid: Number(m[1]), sid: Number(m[2]), args: m[4]! });
  }
  return seen;
}

/** The sessions (one per running attempt) holding a process whose command line matches `pattern`. */
export function runningCopies(pattern: RegExp): number[] {
  return [...new Set(processesMatching(pattern).map((p) => p.sid))];
}

/** Samples the running copies of a job in the background; `max` is the most ever seen at once. */
export class CopiesMonitor {
  max = 0;
  samples = 0;
  /** Each sample where more than one copy ran: when, and the sessions seen. */
  readonly overlaps: { at: number; sessions: number[] }[] = [];
  private readonly timer: NodeJS.Timeout;
  constructor(
    readonly pattern: RegExp,
    intervalMs = 100,
  ) {
    this.timer = setInterval(() => this.sample(), intervalMs);
  }
  sample(): number {
    const sessions = runningCopies(this.pattern);
    this.samples++;
    this.max = Math.max(this.max, sessions.length);
    if (sessions.length > 1) this.overlaps.push({ at: Date.now(), sessions });
    return sessions.length;
  }
  stop(): void {
    clearInterval(this.timer);
  }
}
