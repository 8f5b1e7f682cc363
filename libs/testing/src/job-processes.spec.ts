import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { CopiesMonitor, processesMatching, runningCopies } from './job-processes';
import { waitFor } from './wait';

/**
 * A job-like shell in its own session (as the worker's guard starts every attempt) that keeps a forked copy of itself
 * alive: a subshell has the very same command line as its parent, which is what a per-process count mistook for a
 * second run.
 */
function startCopy(tag: string): ChildProcess {
  const script = '( sleep 30; true ) & while :; do sleep 1; done';
  return spawn('sh', ['-c', script, `copies-${tag}`], { detached: true, stdio: 'ignore' });
}

describe('runningCopies (sessions, not processes)', () => {
  const started: ChildProcess[] = [];
  afterEach(() => {
    for (const c of started.splice(0)) if (c.pid) process.kill(-c.pid, 'SIGKILL');
  });

  it('counts a shell and its own forks as one copy, and two sessions as two', async () => {
    const tag = randomBytes(6).toString('hex');
    const pattern = new RegExp(`copies-${tag}$`);
    started.push(startCopy(tag));
    // The shell and its subshell: two processes with one command line, in one session.
    await waitFor(() => processesMatching(pattern).length === 2, { what: 'the shell and its forked subshell' });
    expect(runningCopies(pattern)).toHaveLength(1);

    const monitor = new CopiesMonitor(pattern, 20);
    try {
      await waitFor(() => monitor.samples >= 10, { what: 'samples of one copy' });
      expect(monitor.max).toBe(1);
      // A real second run, however briefly: the monitor sees it.
      started.push(startCopy(tag));
      await waitFor(() => monitor.max === 2, { what: 'the second copy seen' });
      expect(monitor.overlaps[0]!.sessions).toHaveLength(2);
    } finally {
      monitor.stop();
    }
    expect(runningCopies(pattern)).toHaveLength(2);
    for (const c of started.splice(0)) process.kill(-c.pid!, 'SIGKILL');
    await waitFor(() => runningCopies(pattern).length === 0, { what: 'both copies gone' });
  });
});
