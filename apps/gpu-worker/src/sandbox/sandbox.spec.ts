import { spawn } from 'node:child_process';
import {
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
  mkdirSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { waitFor } from '@gantry/testing';
import { join } from 'node:path';
import { JobFailure } from '../executors/executor';
import { runProcess } from '../executors/process-runner';
import {
  AttemptSandbox,
  Sandbox,
  SandboxUnavailableError,
  directoryBytes,
  runQuick,
  sandboxFailureLine,
  type SandboxSettings,
} from './sandbox';

const SETTINGS: SandboxSettings = {
  mode: 'bwrap',
  bwrap: 'bwrap',
  uidBase: 50_000,
  slots: 2,
  maxOpenFiles: 256,
  maxProcesses: 32,
  maxFileBytes: 1024 * 1024,
  shmBytes: 1024 * 1024,
};

describe('Sandbox', () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'gantry-sandbox-spec-'));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('refuses to exist where bubblewrap is missing, saying how to fix it', async () => {
    const err = await Sandbox.create({ ...SETTINGS, bwrap: '/nonexistent/bwrap' }, root).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SandboxUnavailableError);
    expect((err as Error).message).toMatch(/not installed.*JOB_SANDBOX=off/s);
  });

  it('with mode off checks nothing and runs the command as it is', async () => {
    const sb = await Sandbox.create({ ...SETTINGS, mode: 'off', bwrap: '/nonexistent/bwrap' }, root);
    expect(sb.enabled).toBe(false);
    const slot = sb.acquire();
    expect(slot.uid).toBeUndefined();
    const w = await sb.wrap(
      {
        command: 'echo',
        args: ['hi'],
        scratchDir: root,
        env: { A: '1' },
        gpuIndices: [],
        network: false,
        readOnly: [],
      },
      slot,
    );
    expect(w.command).toBe('echo');
    expect(w.args).toEqual(['hi']);
  });

  it('builds a closed sandbox: every namespace, empty spawn environment, read-only root, rlimits inside', async () => {
    const sb = await Sandbox.create(SETTINGS, root);
    const slot = sb.acquire();
    const scratch = join(root, 'a');
    await sb.prepareScratch(scratch, slot);
    expect(statSync(scratch).mode & 0o777).toBe(0o700);
    const w = await sb.wrap(
      {
        command: 'ffmpeg',
        args: ['-i', 'in.mp4'],
        scratchDir: scratch,
        env: { CUDA_VISIBLE_DEVICES: 'GPU-1' },
        gpuIndices: [1],
        network: false,
        readOnly: ['/opt/catalog'],
      },
      slot,
    );
    expect(w.env).toEqual({ PATH: expect.any(String) });
    const a = w.args.join(' ');
    if (sb.privileged) {
      expect(w.command).toBe('/usr/bin/setpriv');
      expect(a).toMatch(/--reuid (5000[01]) --regid \1 --clear-groups/);
    }
    for (const flag of ['--unshare-all', '--disable-userns', '--die-with-parent', '--new-session', '--clearenv']) {
      expect(w.args).toContain(flag);
    }
    expect(w.args).not.toContain('--share-net');
    expect(a).toContain('--setenv CUDA_VISIBLE_DEVICES GPU-1');
    expect(a).toContain('--ro-bind /opt/catalog /opt/catalog');
    expect(a).toContain(`--bind ${scratch} ${scratch}`);
    expect(a).toContain('--dev-bind-try /dev/nvidia1 /dev/nvidia1');
    expect(a).not.toContain('/dev/nvidia0');
    expect(a).toContain('--ro-bind /sys /sys');
    expect(a).toMatch(
      /--remount-ro \/ -- \/usr\/bin\/choom -n 1000 -- \/usr\/bin\/prlimit --nofile=256 --nproc=32 --fsize=1048576/,
    );
    expect(w.args.slice(-3)).toEqual(['ffmpeg', '-i', 'in.mp4']);
    // No GPU, no /sys; network only when asked.
    const cpu = await sb.wrap(
      { command: 'true', args: [], scratchDir: scratch, env: {}, gpuIndices: [], network: true, readOnly: [] },
      slot,
    );
    expect(cpu.args.join(' ')).not.toContain('/dev/nvidia');
    expect(cpu.args.join(' ')).not.toContain('/sys');
    expect(cpu.args).toContain('--share-net');
    expect(cpu.args.join(' ')).toContain('--ro-bind-try /etc/resolv.conf /etc/resolv.conf');
  });

  it('runs a job process that sees only its own environment and scratch directory', async () => {
    const sb = await Sandbox.create(SETTINGS, root);
    const slot = sb.acquire();
    const scratch = join(root, 'b');
    await sb.prepareScratch(scratch, slot);
    process.env['GANTRY_SPEC_SECRET'] = 'spec-secret-value';
    try {
      const w = await sb.wrap(
        {
          command: 'sh',
          args: ['-c', 'cat /proc/1/environ; env; id -u; echo x > own.txt && echo wrote; echo y > /etc/x || echo ro'],
          scratchDir: scratch,
          env: { JOB_VAR: 'job-value' },
          gpuIndices: [],
          network: false,
          readOnly: [],
        },
        slot,
      );
      const r = await runQuick(w);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('JOB_VAR=job-value');
      expect(r.stdout).not.toContain('spec-secret-value');
      expect(r.stdout).toContain('wrote');
      expect(r.stdout).toContain('ro');
      if (sb.privileged) expect(r.stdout).toMatch(/^5000[01]$/m);
    } finally {
      delete process.env['GANTRY_SPEC_SECRET'];
    }
  });

  it('hands each concurrent attempt its own uid and takes it back', async () => {
    const sb = await Sandbox.create(SETTINGS, root);
    if (!sb.privileged) return; // one uid for all: only a root worker can hand out uids
    const a = sb.acquire();
    const b = sb.acquire();
    expect(new Set([a.uid, b.uid]).size).toBe(2);
    a.release();
    a.release();
    const c = sb.acquire();
    expect(c.uid).toBe(a.uid);
  });
});

/**
 * What a sandbox that lost its parent looks like from the host: a process of the attempt's uid, pid 1 of a pid
 * namespace of its own, in a session of its own, with the attempt's scratch directory on its command line, and a child.
 */
function orphanedSandbox(uid: number, scratchDir: string) {
  const p = spawn(
    'unshare',
    [
      '--pid',
      '--fork',
      'setpriv',
      `--reuid=${uid}`,
      `--regid=${uid}`,
      '--clear-groups',
      'sh',
      '-c',
      'sleep 300 & wait',
      'gantry-orphan',
      '--bind',
      scratchDir,
    ],
    { detached: true, stdio: 'ignore' },
  );
  p.unref();
  return p;
}

/** Host pids of the live processes of `uid` whose command line names `word`. */
function pidsOf(uid: number, word: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const st = readFileSync(`/proc/${e}/status`, 'utf8');
      if (/^State:\s+Z/m.test(st)) continue;
      if (!new RegExp(`^Uid:\\s+${uid}\\s`, 'm').test(st)) continue;
      if (readFileSync(`/proc/${e}/cmdline`, 'utf8').includes(word)) out.push(Number(e));
    } catch {
      // gone
    }
  }
  return out;
}

/** Live processes in the pid namespace `ns` (as `readlink /proc/<pid>/ns/pid` names it). */
function inNamespace(ns: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (/^State:\s+Z/m.test(readFileSync(`/proc/${e}/status`, 'utf8'))) continue;
      if (readlinkSync(`/proc/${e}/ns/pid`) === ns) out.push(Number(e));
    } catch {
      // gone
    }
  }
  return out;
}

// bubblewrap sets the inner process's parent-death signal after its clone: an attempt aborted while its sandbox starts
// could leave the job running in its own session and pid namespace, out of reach of the guard's process group and
// holding the attempt's output pipe, and the attempt never ended (seen under load).
describe('a sandbox that lost its parent', () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'gantry-sandbox-orphan-'));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('is killed when the attempt’s job ends — the whole namespace — and another attempt of the same uid is not', async () => {
    const sb = await Sandbox.create(SETTINGS, root);
    if (!sb.privileged) return; // per-slot uids (and so this sweep) need a root worker; see docs/gpu.md
    const slot = sb.acquire();
    const uid = slot.uid!;
    const scratch = join(root, 'attempt');
    await sb.prepareScratch(scratch, slot);
    const attempt = new AttemptSandbox(sb, slot, scratch, [], {
      maxInputBytes: 1024,
      maxScratchBytes: 1024 * 1024,
      maxScratchEntries: 100,
    });
    // Another worker on the same host hands out the same uids: its attempt must survive this one's sweep.
    const elsewhere = join(root, 'another-workers-attempt');
    const orphan = orphanedSandbox(uid, scratch);
    const bystander = orphanedSandbox(uid, elsewhere);
    try {
      await waitFor(() => pidsOf(uid, 'gantry-orphan').length === 2, { what: 'both sandboxes running' });
      const ns = readlinkSync(`/proc/${pidsOf(uid, scratch)[0]!}/ns/pid`);
      await waitFor(() => inNamespace(ns).length === 2, { what: 'the orphan’s child running' });
      const r = await runProcess({
        command: 'sh',
        args: ['-c', 'echo up'],
        cwd: root,
        env: {},
        signal: new AbortController().signal,
        sandbox: attempt,
      });
      expect(r.exitCode).toBe(0);
      expect(r.stdoutTail).toContain('up');
      // Swept when the job ended: the orphan's init and, with it, its child; the other attempt still runs.
      await waitFor(() => orphan.exitCode !== null || orphan.signalCode !== null, { what: 'the orphan gone' });
      expect(pidsOf(uid, scratch)).toEqual([]);
      await waitFor(() => inNamespace(ns).length === 0, { what: 'the orphan’s whole namespace gone' });
      expect(pidsOf(uid, elsewhere)).toHaveLength(1);
      expect(bystander.exitCode).toBeNull();
    } finally {
      for (const p of [...pidsOf(uid, scratch), ...pidsOf(uid, elsewhere)]) process.kill(p, 'SIGKILL');
      slot.release();
    }
  }, 90_000);
});

describe('a sandbox failure at run time', () => {
  it('fails the attempt SANDBOX_FAILED (retryable), never a silent success', async () => {
    const root = mkdtempSync(join(tmpdir(), 'gantry-sandbox-fail-'));
    try {
      const sb = await Sandbox.create(SETTINGS, root);
      const slot = sb.acquire();
      const scratch = join(root, 'attempt');
      await sb.prepareScratch(scratch, slot);
      const attempt = new AttemptSandbox(sb, slot, scratch, [], {
        maxInputBytes: 1024,
        maxScratchBytes: 1024 * 1024,
        maxScratchEntries: 100,
      });
      const err = await runProcess({
        command: 'true',
        args: [],
        cwd: root,
        env: {},
        signal: new AbortController().signal,
        sandbox: attempt,
        // A catalog directory that is gone by the time the job starts: bwrap cannot bind it.
        readOnly: ['/nonexistent/gantry-catalog'],
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(JobFailure);
      expect(err).toMatchObject({ code: 'SANDBOX_FAILED', retryable: true });
      expect((err as Error).message).toMatch(/bwrap: /);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('directoryBytes', () => {
  it('counts apparent sizes (sparse files included) without following links', async () => {
    const d = mkdtempSync(join(tmpdir(), 'gantry-du-'));
    try {
      writeFileSync(join(d, 'a'), Buffer.alloc(3000));
      mkdirSync(join(d, 'sub'));
      writeFileSync(join(d, 'sub', 'b'), Buffer.alloc(5000));
      symlinkSync('/usr', join(d, 'link'));
      const { bytes, entries } = await directoryBytes(d);
      expect(bytes).toBeGreaterThanOrEqual(8000);
      expect(bytes).toBeLessThan(8000 + 16 * 4096);
      expect(entries).toBe(4);
      expect((await directoryBytes(d, 2)).entries).toBe(3); // stops counting past the cap
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});

describe('sandboxFailureLine', () => {
  it('tells the sandbox failing from the job failing', () => {
    expect(sandboxFailureLine(["bwrap: Can't mount proc on /newroot/proc: Operation not permitted"])).toBeDefined();
    expect(sandboxFailureLine(['setpriv: failed to execute bwrap: No such file or directory'])).toBeDefined();
    expect(sandboxFailureLine(['prlimit: failed to execute nope: No such file or directory'])).toBeUndefined();
    expect(sandboxFailureLine(['error: disk full'])).toBeUndefined();
  });
});
