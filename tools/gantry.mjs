#!/usr/bin/env node
// Gantry's command runner. Every `npm run …` script enters here so that a fresh clone needs nothing but npm:
// it installs what is missing (node_modules via `npm ci`, nats-server and ffmpeg via apt-get when run as root),
// then runs the real command under the pinned Node 24 that ships as an npm package (node-linux-<arch>).
// This file must run on the system Node (20 here), so it uses nothing outside Node's standard library.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  readFileSync,
  writeFileSync,
  accessSync,
  constants,
  statSync,
  chmodSync,
  renameSync,
} from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const log = (msg) => process.stderr.write(`[gantry] ${msg}\n`);

function sha256(file) {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

/**
 * Installs dependencies when node_modules is missing or was installed from another package-lock.json.
 * `npm install` (which follows the lockfile) rather than `npm ci`: some registry mirrors do not carry every platform
 * package of @swc/core and friends, and `npm ci` refuses a lockfile that lacks the optional ones it cannot fetch,
 * while `npm install` skips them as optional. Install scripts stay off (.npmrc): nothing here needs one.
 */
function ensureInstalled() {
  const lock = join(root, 'package-lock.json');
  const stamp = join(root, 'node_modules', '.gantry-install-stamp');
  const want = sha256(lock);
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === want) return;
  log('installing dependencies (npm install, following package-lock.json)…');
  const r = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], {
    cwd: root,
    stdio: 'inherit',
  });
  if (r.status !== 0) {
    log('npm install failed; see the output above.');
    process.exit(r.status ?? 1);
  }
  // A new file, renamed into place: a node_modules copied with hard links (`cp -al`, one per git worktree) must not
  // share its stamp with the copies of other checkouts, whose lockfiles may differ.
  writeFileSync(`${stamp}.tmp`, want);
  renameSync(`${stamp}.tmp`, stamp);
}

function isExecutable(p) {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function which(bin, extraDirs = []) {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), ...extraDirs];
  for (const d of dirs) {
    const p = join(d, bin);
    if (d && existsSync(p) && isExecutable(p)) return p;
  }
  return undefined;
}

/** The Node 24 binary: the pinned one from node_modules, or the system one when it is already 24. */
function node24() {
  const pinned = join(root, 'node_modules', `node-${process.platform}-${process.arch}`, 'bin', 'node');
  if (existsSync(pinned)) return pinned;
  if (process.versions.node.split('.')[0] === '24') return process.execPath;
  log(
    `no Node 24 found: the pinned package node-${process.platform}-${process.arch} is not published for this platform ` +
      `and the system Node is ${process.version}. Install Node 24 LTS (https://nodejs.org) and run again.`,
  );
  process.exit(1);
}

const SBIN = ['/usr/sbin', '/usr/local/sbin', '/sbin'];
const SYSTEM_TOOLS = {
  'nats-server': {
    apt: 'nats-server',
    hint: 'https://docs.nats.io/running-a-nats-service/introduction/installation (any version ≥ 2.9.10)',
  },
  ffmpeg: { apt: 'ffmpeg', hint: 'https://ffmpeg.org/download.html (or `brew install ffmpeg`)' },
  // The worker runs every job process inside a bubblewrap sandbox (docs/gpu.md).
  bwrap: { apt: 'bubblewrap', hint: 'https://github.com/containers/bubblewrap (Debian/Ubuntu: bubblewrap)' },
  // The dashboard's browser tests drive the system Chromium through playwright-core (no browser download).
  chromium: {
    apt: 'chromium',
    hint: 'Debian/Ubuntu package chromium, or point CHROMIUM_BIN at a Chromium/Chrome binary',
  },
  // Only the BullMQ side of `npm run bench:vs-bullmq`.
  'redis-server': { apt: 'redis-server', hint: 'https://redis.io/docs/latest/operate/oss_and_stack/install/' },
};

/**
 * The job sandbox runs each attempt as its own unprivileged uid (when the worker is root), and bubblewrap binds the
 * catalog directory (in the tests: apps/gpu-worker/test/fixtures) into it as that uid — so every directory above the
 * checkout must be searchable by others. A checkout under a `mktemp -d` directory (mode 0700) is not: the sandboxed
 * tests would fail with SANDBOX_FAILED "Permission denied". As root, add the search bit (o+x, never read) where missing.
 */
function ensureCheckoutSearchable() {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return;
  for (let dir = root; ; dir = dirname(dir)) {
    const mode = statSync(dir).mode;
    if ((mode & 0o001) === 0) {
      chmodSync(dir, (mode & 0o7777) | 0o001);
      log(`made ${dir} searchable by other users (o+x) for the job sandbox's per-slot uids`);
    }
    if (dirname(dir) === dir) break;
  }
}

/** Makes sure nats-server and ffmpeg are on the PATH, installing them with apt-get when we are root on Debian/Ubuntu. */
function ensureSystemTools(names) {
  const missing = names.filter((n) => !(process.env[`${n.toUpperCase().replaceAll('-', '_')}_BIN`] || which(n, SBIN)));
  if (missing.length === 0) return;
  const canApt = process.getuid?.() === 0 && which('apt-get');
  if (canApt) {
    const pkgs = missing.map((n) => SYSTEM_TOOLS[n].apt);
    log(`installing ${pkgs.join(', ')} with apt-get…`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    let r = spawnSync('apt-get', ['install', '-y', '-qq', ...pkgs], { stdio: 'inherit', env });
    if (r.status !== 0) {
      spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
      r = spawnSync('apt-get', ['install', '-y', '-qq', ...pkgs], { stdio: 'inherit', env });
    }
    if (r.status === 0) return;
  }
  for (const n of missing)
    log(
      `missing ${n}: install it (${SYSTEM_TOOLS[n].hint}) or point ${n.toUpperCase().replaceAll('-', '_')}_BIN at it.`,
    );
  process.exit(1);
}

function toolEnv() {
  const node = node24();
  const path = [
    dirname(node),
    join(root, 'node_modules', '.bin'),
    ...(process.env.PATH ?? '').split(delimiter),
    ...SBIN,
  ];
  return {
    ...process.env,
    PATH: path.join(delimiter),
    GANTRY_NODE: node,
    NX_DAEMON: 'false',
    NX_NO_CLOUD: 'true',
    NX_TUI: 'false',
    NX_SKIP_NX_CACHE: process.env.NX_SKIP_NX_CACHE ?? 'false',
  };
}

/**
 * Runs a command in the foreground; resolves with its exit code and forwards SIGINT, SIGTERM and SIGHUP to it (so this
 * runner outlives it: a terminal's hang-up must not end the runner while the command is still stopping).
 */
function run(cmd, args, env = toolEnv(), quiet = false) {
  return new Promise((resolveRun) => {
    const child = spawn(cmd, args, { cwd: root, stdio: quiet ? ['ignore', 'ignore', 'inherit'] : 'inherit', env });
    const forward = (sig) => child.kill(sig);
    const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'];
    for (const sig of signals) process.on(sig, forward);
    child.on('exit', (code, signal) => {
      for (const sig of signals) process.off(sig, forward);
      resolveRun(code ?? (signal ? 128 + 15 : 1));
    });
  });
}

async function step(label, cmd, args, quiet = false) {
  const started = Date.now();
  const code = await run(cmd, args, toolEnv(), quiet);
  log(`${label}: ${code === 0 ? 'ok' : `failed (exit ${code})`} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  if (code !== 0) process.exit(code);
}

async function build() {
  await step('build', 'tsc', ['-b', 'tsconfig.build.json']);
  // @gantry/client's declarations get the contract types inlined, so its dist packs as a self-contained package.
  await step('client types', 'node', ['libs/client/scripts/bundle-types.mjs']);
}

async function checks() {
  await step('typecheck (specs and tools)', 'tsc', ['-p', 'tsconfig.spec.json', '--noEmit']);
  // The dashboard is plain JS served as written; `// @ts-check` + JSDoc types from @gantry/client (docs/dashboard.md).
  await step('typecheck (dashboard)', 'tsc', ['-p', 'apps/gateway/ui/tsconfig.json']);
  // The module-boundary lint reads Nx's project graph; computing it here keeps the rule from being skipped.
  await step('project graph', 'nx', ['show', 'projects', '--json'], true);
  await step('lint', 'eslint', ['--max-warnings=0', '.']);
  await step('format', 'prettier', ['--check', '--log-level=warn', '.']);
  await step('import cycles', 'node', ['tools/check-cycles.mjs']);
}

const SERVICES = ['gateway', 'scheduler', 'gpu-worker', 'notifier'];

async function main() {
  const [command = 'help', ...rest] = process.argv.slice(2);
  ensureInstalled();
  switch (command) {
    case 'build':
      await build();
      break;
    case 'lint':
      await checks();
      break;
    case 'test': {
      ensureSystemTools(['nats-server', 'ffmpeg', 'bwrap', 'chromium']);
      ensureCheckoutSearchable();
      await build();
      if (!rest.includes('--no-lint')) await checks();
      await step(
        'jest',
        'jest',
        rest.filter((a) => a !== '--no-lint'),
      );
      break;
    }
    case 'up':
      ensureSystemTools(process.env.NATS_URL ? ['ffmpeg', 'bwrap'] : ['nats-server', 'ffmpeg', 'bwrap']);
      await build();
      process.exitCode = await run('node', ['tools/up.mjs', ...rest]);
      break;
    case 'start': {
      const svc = rest[0];
      if (!SERVICES.includes(svc)) {
        log(`unknown service ${svc}; one of ${SERVICES.join(', ')}`);
        process.exit(2);
      }
      if (svc === 'gpu-worker') ensureSystemTools(['ffmpeg', 'bwrap']);
      await build();
      process.exitCode = await run('node', [`apps/${svc}/dist/main.js`, ...rest.slice(1)]);
      break;
    }
    case 'bench': {
      // Every bench that starts a worker runs its jobs in the sandbox, as a deployment does: bubblewrap too.
      const tools = ['nats-server', 'ffmpeg', 'bwrap'];
      ensureSystemTools(rest[0] === 'vs-bullmq' ? [...tools, 'redis-server'] : tools);
      await build();
      process.exitCode = await run('node', [`tools/bench/${rest[0]}.mjs`, ...rest.slice(1)]);
      break;
    }
    case 'exec':
      process.exitCode = await run(rest[0], rest.slice(1));
      break;
    default:
      log('usage: node tools/gantry.mjs build|lint|test|up|start <service>|bench <name>|exec <cmd…>');
      process.exit(command === 'help' ? 0 : 2);
  }
}

main().catch((err) => {
  log(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exit(1);
});
