/**
 * `npm run up` (= `node tools/gantry.mjs up`) as a newcomer runs it: on a terminal (a pseudo-terminal made by `script`,
 * stopped with a real Ctrl-C typed into it) its services' logs are one readable coloured line each, with none of
 * Nest's start-up chatter at `info`; piped, they are the JSON lines. Either way every service gets ready, and stopping
 * it leaves no process behind. The stack runs beside any other on free ports and a temporary data directory
 * (GANTRY_UP_* knobs, docs/operations.md).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, repoRoot, waitFor } from '@gantry/testing';

const SERVICES = ['gateway', 'scheduler', 'gpu-worker', 'notifier'] as const;
const ANSI = /\x1b\[[0-9;]*m/g;
// What Nest prints at start-up when its logger is left alone: module loading, one line per mapped route, "started".
const NEST_NOISE =
  /InstanceLoader|RoutesResolver|RouterExplorer|Mapped \{|NestFactory|Nest application successfully started|Starting Nest application|dependencies initialized/;

interface Proc {
  pid: number;
  ppid: number;
  state: string;
  cmd: string;
}

/** Every process on the machine, from /proc. */
function processes(): Map<number, Proc> {
  const all = new Map<number, Proc>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const cmd = readFileSync(`/proc/${name}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
      all.set(Number(name), { pid: Number(name), ppid: Number(rest[1]), state: rest[0]!, cmd });
    } catch {
      // gone meanwhile
    }
  }
  return all;
}

/** `root` and every process below it. */
function tree(root: number): Proc[] {
  const all = processes();
  const out: Proc[] = [];
  const todo = [root];
  while (todo.length > 0) {
    const pid = todo.pop()!;
    const p = all.get(pid);
    if (p) out.push(p);
    for (const c of all.values()) if (c.ppid === pid) todo.push(c.pid);
  }
  return out;
}

/** The ones of `procs` still alive (a zombie counts as gone: it runs nothing and holds no port). */
function alive(procs: Proc[]): Proc[] {
  const now = processes();
  return procs.filter((p) => {
    const q = now.get(p.pid);
    return q !== undefined && q.state !== 'Z' && q.cmd === p.cmd;
  });
}

interface Up {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
  ports: Record<(typeof SERVICES)[number], number>;
  dataDir: string;
  /** Set by stackOf. */
  procs?: Proc[];
}

/**
 * How to run it: piped; on a terminal; or on a terminal whose session leader is a `/bin/sh` that stays in front of the
 * command (dash does not exec the last command of `-c`), so that killing that shell hangs the terminal up — what
 * closing a terminal window does.
 */
type How = 'piped' | 'terminal' | 'terminal-under-sh';

async function startUp(how: How): Promise<Up> {
  const dataDir = mkdtempSync(join(tmpdir(), 'gantry-up-'));
  const ports = {
    gateway: await freePort(),
    scheduler: await freePort(),
    'gpu-worker': await freePort(),
    notifier: await freePort(),
  };
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    TERM: 'xterm-256color',
    GANTRY_UP_DATA_DIR: dataDir,
    GANTRY_UP_NATS_PORT: String(await freePort()),
    GANTRY_UP_NATS_MONITOR_PORT: String(await freePort()),
    GANTRY_UP_S3_PORT: String(await freePort()),
    GATEWAY_PORT: String(ports.gateway),
    SCHEDULER_HTTP_PORT: String(ports.scheduler),
    WORKER_HTTP_PORT: String(ports['gpu-worker']),
    NOTIFIER_HTTP_PORT: String(ports.notifier),
  };
  for (const k of ['NATS_URL', 'S3_ENDPOINT', 'LOG_LEVEL', 'API_KEYS', 'NO_COLOR', 'FORCE_COLOR']) delete env[k];
  // `script` gives the command a pseudo-terminal as stdin/stdout and copies what it prints to ours; what we write to
  // its stdin is typed into that terminal (so "\x03" is a real Ctrl-C, delivered by the terminal's line discipline).
  // It runs the command with `$SHELL -c`: `exec` makes the command the terminal's session leader whatever the shell
  // (with SHELL unset that is /bin/sh, and dash would otherwise stay in front and die of the Ctrl-C itself).
  if (how === 'terminal-under-sh') env['SHELL'] = '/bin/sh';
  const child =
    how === 'piped'
      ? spawn('node', ['tools/gantry.mjs', 'up'], { cwd: repoRoot(), env, stdio: 'pipe' })
      : spawn('script', ['-qfec', `${how === 'terminal' ? 'exec ' : ''}node tools/gantry.mjs up`, '/dev/null'], {
          cwd: repoRoot(),
          env,
          stdio: 'pipe',
        });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => out, exited, ports, dataDir };
}

/** Waits until `up` says so and every service's /readyz answers 200. */
async function ready(up: Up): Promise<void> {
  await waitFor(() => /Gantry is up: http:\/\/127\.0\.0\.1:\d+/.test(up.output()) || up.child.exitCode !== null, {
    timeoutMs: 240_000,
    intervalMs: 200,
    what: '"Gantry is up"',
  });
  if (up.child.exitCode !== null) throw new Error(`up exited (${up.child.exitCode}):\n${up.output()}`);
  for (const s of SERVICES) {
    await waitFor(
      async () => (await fetch(`http://127.0.0.1:${up.ports[s]}/readyz`).catch(() => undefined))?.status === 200,
      { timeoutMs: 60_000, intervalMs: 200, what: `${s} /readyz` },
    );
  }
}

/** The processes `up` started, checked to be the real ones (so that "all gone" means something). */
function stackOf(up: Up): Proc[] {
  const procs = tree(up.child.pid!);
  for (const s of SERVICES) expect(procs.filter((p) => p.cmd.includes(`apps/${s}/dist/main.js`))).toHaveLength(1);
  expect(procs.filter((p) => /nats-server/.test(p.cmd))).toHaveLength(1);
  expect(procs.filter((p) => p.cmd.includes('tools/up.mjs'))).toHaveLength(1);
  up.procs = procs;
  return procs;
}

async function stopped(up: Up, procs: Proc[]): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([
    up.exited,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`up did not stop:\n${up.output().slice(-3000)}`)), 120_000);
    }),
  ]).finally(() => clearTimeout(timer));
  await waitFor(() => alive(procs).length === 0, {
    timeoutMs: 30_000,
    intervalMs: 100,
    what: 'every process of the stack gone',
  });
  expect(alive(procs)).toEqual([]);
  rmSync(up.dataDir, { recursive: true, force: true });
  return code;
}

/** The service lines of the output, as [service, the text after the `name | ` prefix], carriage returns dropped. */
function serviceLines(output: string): [string, string][] {
  const out: [string, string][] = [];
  for (const raw of output.split('\n')) {
    const m = /^(?:\x1b\[\d+m)?(gateway|scheduler|gpu-worker|notifier) *(?:\x1b\[0m)? \| (.*)$/.exec(
      raw.replace(/\r$/, ''),
    );
    if (m) out.push([m[1]!, m[2]!]);
  }
  return out;
}

describe('npm run up', () => {
  let up: Up | undefined;
  afterEach(async () => {
    // A failed test must not leave a stack behind.
    if (up) {
      // What runs below `up` now, and what ran below it when the stack was checked (the services run in their own
      // sessions: they outlive their parents when something goes wrong).
      const procs = [...(up.child.exitCode === null ? tree(up.child.pid!) : []), ...alive(up.procs ?? [])];
      for (const p of procs.reverse()) {
        try {
          process.kill(p.pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
    if (up) rmSync(up.dataDir, { recursive: true, force: true });
    up = undefined;
  });

  it('on a terminal: one coloured line per log entry, no framework chatter, and Ctrl-C stops every process', async () => {
    up = await startUp('terminal');
    await ready(up);
    const procs = stackOf(up);
    const output = up.output();
    const lines = serviceLines(output);
    for (const s of SERVICES) expect(lines.filter(([name]) => name === s).length).toBeGreaterThan(0);
    for (const [name, text] of lines) {
      expect({ name, text, coloured: /\x1b\[\d+(;\d+)*m/.test(text) }).toMatchObject({ coloured: true });
      const plain = text.replace(ANSI, '');
      expect(plain.startsWith('{')).toBe(false);
      // pino-pretty's line: `[12:01:06.123] INFO: message {…}`
      expect(plain).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] (TRACE|DEBUG|INFO|WARN|ERROR|FATAL): /);
    }
    expect(lines.map(([, t]) => t.replace(ANSI, ''))).toContainEqual(expect.stringMatching(/INFO: gateway listening/));
    // One line per entry: every line printed is a service's line, a line of `up` itself, or empty.
    const strays = output
      .split('\n')
      .map((l) => l.replace(/\r$/, ''))
      .filter((l) => l.replace(ANSI, '').trim() !== '')
      .filter((l) => serviceLines(l).length === 0 && !l.replace(ANSI, '').startsWith('[gantry]'));
    expect(strays).toEqual([]);
    expect(output).not.toMatch(NEST_NOISE);

    up.child.stdin!.write('\x03');
    const code = await stopped(up, procs);
    expect({ code, output: code === 0 ? '' : up.output().slice(-3000) }).toEqual({ code: 0, output: '' });
    expect(up.output()).toMatch(/\[gantry\]\S* stopped/);
    expect(up.output()).not.toMatch(NEST_NOISE);
  });

  it('piped: the JSON lines, no framework chatter, and SIGINT stops every process', async () => {
    up = await startUp('piped');
    await ready(up);
    const procs = stackOf(up);
    const lines = serviceLines(up.output());
    for (const s of SERVICES) expect(lines.filter(([name]) => name === s).length).toBeGreaterThan(0);
    for (const [name, text] of lines) {
      const entry = JSON.parse(text) as { level: string; service: string; msg: string };
      expect(entry).toMatchObject({ service: name, level: expect.stringMatching(/^(info|warn|error|fatal)$/) });
    }
    expect(up.output()).not.toMatch(NEST_NOISE);

    up.child.kill('SIGINT');
    const code = await stopped(up, procs);
    expect({ code, output: code === 0 ? '' : up.output().slice(-3000) }).toEqual({ code: 0, output: '' });
  });

  it('a terminal that hangs up (its shell killed, as when the window is closed) stops every process', async () => {
    up = await startUp('terminal-under-sh');
    await ready(up);
    const procs = stackOf(up);
    // The session leader: the shell `script` started, with `node tools/gantry.mjs up` below it.
    const shell = procs.find((p) => p.ppid === up!.child.pid && /^(\/bin\/)?sh -c /.test(p.cmd));
    expect(shell).toBeDefined();
    process.kill(shell!.pid, 'SIGKILL');
    // The kernel hangs the terminal up: SIGHUP to its foreground process group (the runner and `up`), nothing else;
    // what they print from then on goes nowhere (`script` is gone with its shell), so only the processes tell.
    await waitFor(() => alive(procs).length === 0, {
      timeoutMs: 120_000,
      intervalMs: 200,
      what: `every process of the stack gone after the hang-up (left: ${alive(procs)
        .map((p) => p.cmd)
        .join('; ')})`,
    });
  });
});
