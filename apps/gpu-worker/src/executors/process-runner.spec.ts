import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '@gantry/testing';
import { JobFailure } from './executor';
import { exitFailure, guardArgv, guardLeaseArgs, runProcess, type ProcessResult } from './process-runner';

/** Pids of `sleep <marker>` processes (pgrep exits 1 when there are none). */
function pids(marker: string): number[] {
  try {
    return execFileSync('pgrep', ['-f', `^sleep ${marker}`], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/** A `sleep` whose argument is unique to this test, so `pgrep -f` finds only its processes. */
function marker(): string {
  return `7${Math.floor(Math.random() * 1e6)}.${Math.floor(Math.random() * 1e6)}`;
}

class Renewals {
  private readonly fns = new Set<() => void>();
  constructor(readonly deadlineMs: number) {}
  onRenew(fn: () => void): () => void {
    this.fns.add(fn);
    return () => this.fns.delete(fn);
  }
  renew(): void {
    for (const f of this.fns) f();
  }
}

describe('runProcess', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'gantry-pr-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const base = () => ({ cwd: dir, env: {}, signal: new AbortController().signal });

  it('keeps the head of an overlong line written in many small pieces', async () => {
    const lines: string[] = [];
    // 200 writes of 1000 bytes: the pipe hands them over in small chunks, the line ends only at the last one.
    const script =
      'printf "GANTRY_RESULT "; i=0; while [ $i -lt 200 ]; do printf "%01000d" 0; i=$((i+1)); done; echo; echo after';
    const r = await runProcess({ ...base(), command: 'sh', args: ['-c', script], onStdoutLine: (l) => lines.push(l) });
    expect(r.exitCode).toBe(0);
    expect(lines).toHaveLength(2);
    expect(lines[0]!.startsWith('GANTRY_RESULT 000')).toBe(true);
    expect(lines[0]!.length).toBe(64 * 1024 + 1);
    expect(lines[1]).toBe('after');
  });

  it('runs in its directory with only the passed-through environment, streaming lines', async () => {
    process.env['GANTRY_TEST_WORKER_SECRET'] = 'must-not-leak';
    const lines: string[] = [];
    try {
      const r = await runProcess({
        ...base(),
        command: 'sh',
        args: ['-c', 'pwd; echo "secret=${GANTRY_TEST_WORKER_SECRET:-none}"; echo "job=$JOB_VAR"; echo oops >&2'],
        env: { JOB_VAR: 'given' },
        onStdoutLine: (l) => lines.push(l),
      });
      expect(r.exitCode).toBe(0);
      expect(lines).toEqual([dir, 'secret=none', 'job=given']);
      expect(r.stderrTail).toEqual(['oops']);
    } finally {
      delete process.env['GANTRY_TEST_WORKER_SECRET'];
    }
  });

  it('keeps only the last lines of each stream', async () => {
    const r = await runProcess({
      ...base(),
      command: 'sh',
      args: ['-c', 'i=0; while [ $i -lt 50 ]; do echo "line $i"; echo "err $i" >&2; i=$((i+1)); done'],
      tailLines: 5,
    });
    expect(r.stdoutTail).toEqual(['line 45', 'line 46', 'line 47', 'line 48', 'line 49']);
    expect(r.stderrTail).toHaveLength(5);
    expect(r.stderrTail[4]).toBe('err 49');
  });

  it('maps exit codes to error codes with the output tails in the error', async () => {
    const failed = await runProcess({
      ...base(),
      command: 'sh',
      args: ['-c', 'echo "processed 3 frames"; echo "fatal: bad header" >&2; exit 3'],
    });
    const f = exitFailure('transcode', failed);
    expect(f).toMatchObject({ code: 'EXIT_CODE', retryable: true });
    expect(f.message).toBe('transcode exited with code 3: fatal: bad header');
    expect(f.detail).toContain('--- stderr (last 1 lines) ---\nfatal: bad header');
    expect(f.detail).toContain('--- stdout (last 1 lines) ---\nprocessed 3 frames');
    expect(exitFailure('transcode', failed, [3])).toMatchObject({ code: 'EXIT_CODE', retryable: false });

    const missing = await runProcess({ ...base(), command: 'gantry-no-such-binary', args: [] });
    expect(missing.exitCode).toBe(127);
    expect(exitFailure('x', missing)).toMatchObject({ code: 'SPAWN_FAILED', retryable: false });

    const script = join(dir, 'not-executable.sh');
    writeFileSync(script, 'echo hi\n');
    chmodSync(script, 0o644);
    const notExec = await runProcess({ ...base(), command: script, args: [] });
    expect(notExec.exitCode).toBe(126);
    expect(exitFailure('x', notExec).code).toBe('SPAWN_FAILED');

    const killed = await runProcess({ ...base(), command: 'sh', args: ['-c', 'kill -KILL $$'] });
    const k = exitFailure('x', killed);
    expect(k).toMatchObject({ code: 'SIGNAL', retryable: true });
    expect(k.message).toContain('SIGKILL (out of memory?)');
  });

  it('ends when the job ends, killing what it left running in the background', async () => {
    const m = marker();
    const started = Date.now();
    const r = await runProcess({ ...base(), command: 'sh', args: ['-c', `sleep ${m} & echo done`] });
    expect(r.exitCode).toBe(0);
    expect(r.stdoutTail).toEqual(['done']);
    expect(Date.now() - started).toBeLessThan(5_000);
    await waitFor(() => pids(m).length === 0, { what: `the background sleep ${m} killed`, timeoutMs: 5_000 });
  });

  it('kills the whole process group on abort, including children that ignore SIGTERM', async () => {
    const m = marker();
    const ac = new AbortController();
    const started = Date.now();
    const run = runProcess({
      ...base(),
      signal: ac.signal,
      killGraceMs: 500,
      command: 'sh',
      // A child in the background, a grandchild that ignores SIGTERM, and the job itself.
      args: ['-c', `sleep ${m} & sh -c 'trap "" TERM; sleep ${m}' & sleep ${m}`],
    });
    // All three sleeps running means the grandchild's trap is in place: cancel now.
    await waitFor(() => pids(m).length >= 3, { what: 'the job tree to start', timeoutMs: 10_000 });
    ac.abort(new Error('cancel'));
    const r = await run;
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(r.exitCode === 0).toBe(false);
    await waitFor(() => pids(m).length === 0, { what: `no process left with ${m}`, timeoutMs: 5_000 });
  });

  it('kills the job when its worker dies (kill -9): the guard sees its stdin close', async () => {
    const m = marker();
    const guardDir = mkdtempSync(join(tmpdir(), 'gantry-guard-test-'));
    // A stand-in worker: a separate Node process that starts the guard exactly as runProcess does.
    const argv = JSON.stringify(['/bin/sh', ...guardArgv(guardDir, 0, 'sh', ['-c', `sleep ${m} & sleep ${m}`])]);
    const worker = spawn(
      process.execPath,
      [
        '-e',
        `const a=${argv};require('child_process').spawn(a[0],a.slice(1),{detached:true,stdio:['pipe','ignore','ignore']});setInterval(()=>{},1000)`,
      ],
      { stdio: 'ignore' },
    );
    try {
      await waitFor(() => pids(m).length === 2, { what: 'the job to start', timeoutMs: 10_000 });
      worker.kill('SIGKILL');
      await waitFor(() => pids(m).length === 0, { what: 'the job to die with its worker', timeoutMs: 5_000 });
    } finally {
      worker.kill('SIGKILL');
      rmSync(guardDir, { recursive: true, force: true });
    }
  });

  it('kills the job when lease renewals stop, and reports it as WORKER_LOST', async () => {
    const m = marker();
    const lease = new Renewals(800);
    const renewing = setInterval(() => lease.renew(), 100);
    const run = runProcess({ ...base(), command: 'sh', args: ['-c', `sleep ${m}`], lease });
    try {
      await waitFor(() => pids(m).length >= 1, { what: 'the job to start', timeoutMs: 10_000 });
      // Renewed well past several deadlines: still running.
      const alive = Date.now() + 2_500;
      await waitFor(() => Date.now() > alive || pids(m).length === 0, { timeoutMs: 5_000, intervalMs: 100 });
      expect(pids(m).length).toBeGreaterThan(0);
    } finally {
      clearInterval(renewing);
    }
    const stoppedAt = Date.now();
    const err = await run.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(JobFailure);
    expect(err).toMatchObject({ code: 'WORKER_LOST', retryable: true });
    expect(Date.now() - stoppedAt).toBeLessThan(5_000);
    expect(pids(m)).toEqual([]);
  });

  it('spreads lease checks over the deadline', () => {
    expect(guardLeaseArgs(0)).toEqual({ missesAllowed: 0, periodSeconds: '1' });
    expect(guardLeaseArgs(6_000)).toEqual({ missesAllowed: 8, periodSeconds: '0.750' });
    expect(guardLeaseArgs(60_000)).toEqual({ missesAllowed: 60, periodSeconds: '1.000' });
    expect(guardLeaseArgs(400)).toEqual({ missesAllowed: 4, periodSeconds: '0.100' });
  });

  it('labels and bounds the failure detail', () => {
    const r: ProcessResult = {
      exitCode: 1,
      signal: undefined,
      stdoutTail: [],
      stderrTail: Array.from({ length: 30 }, (_, i) => `e${i}`.padEnd(1_000, 'x')),
    };
    const f = exitFailure('x', r);
    expect(f.detail!.length).toBeLessThanOrEqual(8 * 1024 + 1);
    expect(f.detail!.endsWith('e29'.padEnd(1_000, 'x'))).toBe(true);
  });
});
