// `npm run up`: an embedded nats-server (JetStream, data under .data/nats) and S3-compatible store (.data/s3) unless
// NATS_URL / S3_ENDPOINT point elsewhere, then the four services in the foreground with their logs prefixed.
// Ctrl-C, SIGTERM or a hang-up stops the services (gracefully, then hard), then the store and the server: nothing is
// left behind.
// On a terminal the services' JSON lines are shown as readable coloured lines (pino-pretty); piped, they stay JSON.
// Runs under the pinned Node 24 (started by tools/gantry.mjs after the build).
// A second stack beside a developer's (what the test of this script does) needs its own ports and data directory:
// GANTRY_UP_DATA_DIR (default .data), GANTRY_UP_NATS_PORT (4222), GANTRY_UP_NATS_MONITOR_PORT (8222),
// GANTRY_UP_S3_PORT (9000), plus the services' own GATEWAY_PORT, SCHEDULER_HTTP_PORT, WORKER_HTTP_PORT and
// NOTIFIER_HTTP_PORT (docs/operations.md, "npm run up").
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEV_API_KEYS, DEV_WEBHOOK_SECRET } from '@gantry/config';
import { NatsServer, S3Server, S3RVER_CREDENTIALS } from '@gantry/testing';
import { prettyLogLine } from '@gantry/telemetry';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const data = resolve(root, process.env.GANTRY_UP_DATA_DIR || '.data');
const shown = relative(root, data).startsWith('..') ? data : relative(root, data) || '.';
const portOf = (name, fallback) => {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  if (!/^\d{1,5}$/.test(v) || Number(v) < 1 || Number(v) > 65535) {
    process.stderr.write(`${name} must be a TCP port (1-65535), not ${JSON.stringify(v)}\n`);
    process.exit(2);
  }
  return Number(v);
};
const natsPort = portOf('GANTRY_UP_NATS_PORT', 4222);
const natsMonitorPort = portOf('GANTRY_UP_NATS_MONITOR_PORT', 8222);
const s3Port = portOf('GANTRY_UP_S3_PORT', 9000);
const color = { gateway: 36, scheduler: 35, 'gpu-worker': 33, notifier: 32 };
const say = (msg) => process.stdout.write(`\x1b[1m[gantry]\x1b[0m ${msg}\n`);
const format = process.stdout.isTTY ? prettyLogLine({ colorize: true }) : (line) => line;

const env = { ...process.env };
env.ALLOW_PRIVATE_URLS ??= 'true';
env.LOG_LEVEL ??= 'info';
env.GATEWAY_HOST ??= '127.0.0.1';
env.GATEWAY_PORT ??= '8080';

let nats;
let s3;
const children = [];
let stopping = false;

async function start() {
  mkdirSync(data, { recursive: true });
  if (!env.NATS_URL) {
    // The dev server requires credentials too (docs/operations.md, "NATS credentials"): one user for the services,
    // its password generated once and kept in <data>/nats-user.json (mode 0600).
    const userFile = join(data, 'nats-user.json');
    if (!existsSync(userFile)) {
      const user = { user: 'gantry', password: randomBytes(18).toString('base64url') };
      writeFileSync(userFile, JSON.stringify(user, null, 2), { mode: 0o600 });
    }
    const user = JSON.parse(readFileSync(userFile, 'utf8'));
    nats = await NatsServer.start({
      port: natsPort,
      storeDir: join(data, 'nats'),
      keepStore: true,
      monitorPort: natsMonitorPort,
      detached: true,
      auth: user,
    });
    env.NATS_URL = nats.url;
    Object.assign(env, nats.authEnv());
    delete env.NATS_TOKEN;
    delete env.NATS_NKEY_SEED_FILE;
    delete env.NATS_CREDS_FILE;
    say(
      `nats-server (JetStream) on ${nats.url}, monitoring http://127.0.0.1:${natsMonitorPort}, data in ${shown}/nats`,
    );
    say(`NATS requires a user: NATS_USER=${user.user}, NATS_PASSWORD in ${shown}/nats-user.json (for start:<service>)`);
  } else {
    say(`using NATS at ${env.NATS_URL}`);
  }
  if (!env.S3_ENDPOINT) {
    s3 = await S3Server.start({
      port: s3Port,
      directory: join(data, 's3'),
      buckets: [env.S3_BUCKET ?? 'gantry-outputs'],
    });
    Object.assign(env, { ...s3.env(env.S3_BUCKET ?? 'gantry-outputs') });
    say(
      `S3-compatible store on ${s3.endpoint} (bucket ${env.S3_BUCKET}, keys ${S3RVER_CREDENTIALS.accessKeyId}/${S3RVER_CREDENTIALS.secretAccessKey}), data in ${shown}/s3`,
    );
  } else {
    say(`using S3 at ${env.S3_ENDPOINT}`);
  }

  for (const name of ['scheduler', 'gpu-worker', 'notifier', 'gateway']) {
    // Own process group: a terminal's Ctrl-C reaches only this script, which stops the services in order.
    const child = spawn(process.execPath, [join(root, 'apps', name, 'dist', 'main.js')], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    children.push({ name, child });
    const prefix = `\x1b[${color[name]}m${name.padEnd(10)}\x1b[0m | `;
    for (const stream of [child.stdout, child.stderr]) {
      let partial = '';
      stream.on('data', (b) => {
        const lines = (partial + b.toString()).split('\n');
        partial = lines.pop() ?? '';
        for (const l of lines) if (l.trim()) process.stdout.write(prefix + format(l) + '\n');
      });
    }
    child.on('exit', (code, signal) => {
      if (!stopping) {
        say(`${name} exited (${signal ?? code}); stopping everything`);
        void stop(1);
      }
    });
  }

  const url = `http://${env.GATEWAY_HOST}:${env.GATEWAY_PORT}`;
  for (let i = 0; i < 600 && !stopping; i++) {
    const ok = await fetch(`${url}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  if (stopping) return;
  const keys = env.API_KEYS ? '(from API_KEYS)' : DEV_API_KEYS.map((k) => `${k.key} (${k.role})`).join(', ');
  say('');
  say(`Gantry is up: ${url}   (dashboard: ${url}/ui, API docs: ${url}/docs)`);
  say(`CLI: GANTRY_URL=${url} GANTRY_API_KEY=<key> npx gantry queue get`);
  say(`API keys: ${keys}`);
  say(`Webhook secret: ${env.WEBHOOK_SECRET ?? DEV_WEBHOOK_SECRET}`);
  say('Ctrl-C stops everything.');
  say('');
}

async function stop(code = 0) {
  if (stopping) return;
  stopping = true;
  say('stopping…');
  await Promise.all(
    children.map(
      ({ child }) =>
        new Promise((r) => {
          if (child.exitCode !== null || child.signalCode !== null) return r();
          const hard = setTimeout(() => child.kill('SIGKILL'), 45_000);
          child.once('exit', () => {
            clearTimeout(hard);
            r();
          });
          child.kill('SIGTERM');
        }),
    ),
  );
  await s3?.stop().catch(() => undefined);
  await nats?.stop().catch(() => undefined);
  say('stopped');
  process.exit(code);
}

// SIGHUP: the terminal hung up (its window closed, its shell killed). The services run in their own sessions, so
// nothing else stops them: stop them here as for Ctrl-C. What is printed from then on cannot reach the terminal
// (writes fail with EIO), which must not end this script before it has stopped everything.
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => void stop(0));
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined);
start().catch((err) => {
  process.stderr.write(`${err?.stack ?? err}\n`);
  void stop(1);
});
