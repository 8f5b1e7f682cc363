/**
 * The job sandbox attacked for real (docs/gpu.md, "Job sandbox"). Real processes: scheduler, gateway, one worker
 * running as root with the sandbox on, nats-server, the S3 store, ffmpeg, local HTTP receivers. A hostile catalog
 * (written by this test: the catalog is the operator's, its programs are the attackers) tries each escape as an
 * actual job through the real worker, and the test checks the outcome on the host:
 * - secrets: /proc/1/environ, every /proc/<pid>/environ, the worker's env (S3 secret, a canary), its files → absent
 *   from every output; symlinked outputs/results pointing at them are refused, not followed;
 * - writes outside the scratch directory (a world-writable host dir, /etc, /usr, the scratch root) → not there after;
 * - the network: a local HTTP receiver, nats-server and the worker's ops port → no request arrives (and the same
 *   program in a `network: true` type does reach the receiver, so the check can fail);
 * - another attempt's scratch (through /proc/<pid>/cwd and /root, and by host path) → unreadable;
 * - disk: a download past MAX_INPUT_BYTES (announced or chunked), one big output and many small ones past
 *   MAX_SCRATCH_BYTES → DISK_LIMIT, not retried; a fork bomb → held to JOB_MAX_PROCESSES.
 * And an ordinary ffmpeg transcode still works inside the sandbox.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { OutputStore } from '@gantry/storage';
import { GantryCluster, repoRoot, within, type ServiceProcess } from '@gantry/testing';

interface View {
  id: string;
  status: string;
  attempts: number;
  result?: Record<string, unknown>;
  outputs?: { name: string; url: string; sizeBytes: number }[];
  error?: { code: string; message: string; retryable: boolean; detail?: string };
}

const UID_BASE = 50_000;
const SLOTS = 4;
const MAX_INPUT_BYTES = 2 * 1024 * 1024;
const MAX_SCRATCH_BYTES = 6 * 1024 * 1024;
const MAX_PROCESSES = 64;
const CANARY = `canary-${Math.random().toString(36).slice(2)}-${Date.now()}`;

/** A non-loopback IPv4 address of this host (the job must not reach it either). */
function hostAddress(): string | undefined {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return undefined;
}

const SCRIPTS: Record<string, string> = {
  // Everything a job could learn about the worker: environments, files, its view of /proc.
  'loot.sh': `#!/bin/sh
{
  echo "uid=$(id -u) gid=$(id -g) groups=$(id -G)"
  echo "--- /proc/1/environ"; tr '\\0' '\\n' < /proc/1/environ
  echo "--- every /proc/*/environ"
  for p in /proc/[0-9]*; do echo "[$p $(tr '\\0' ' ' < $p/cmdline 2>/dev/null)]"; tr '\\0' '\\n' < $p/environ 2>&1; done
  echo "--- own env"; env
  echo "--- worker files"; cat "$1/package.json" 2>&1 | head -3; ls -la /root 2>&1; head -1 /etc/shadow 2>&1
  echo "--- mounts"; cat /proc/self/mountinfo
} > loot.txt 2>&1
echo "GANTRY_RESULT {\\"ok\\":true}"
`,
  // Outputs and results are read by the worker: a symlink would make it read its own files.
  'symlink-out.sh': `#!/bin/sh
ln -s /proc/self/environ out.txt
`,
  'symlink-result.sh': `#!/bin/sh
ln -s /proc/self/environ result.json
`,
  // Writes everywhere but the scratch directory.
  'write.sh': `#!/bin/sh
for t in "$@" /etc/pwned /usr/pwned /pwned /dev/pwned /proc/pwned; do
  if echo pwned > "$t" 2>/dev/null; then echo "wrote $t"; else echo "refused $t"; fi
done > writes.txt
echo inside > inside.txt
`,
  // Reaches for the network: an HTTP receiver (loopback and the host's address), nats-server, the worker's ops port.
  'net.sh': `#!/bin/sh
for u in "$@"; do
  out=$(curl -sS -m 3 "$u" </dev/null 2>&1 | head -c 300)
  echo "$u rc=$? $out"
done > net.txt 2>&1
`,
  // The victim: a secret in its own scratch directory, then a long sleep.
  'victim.sh': `#!/bin/sh
echo "$1" > secret.txt
echo "GANTRY_PROGRESS 10 secret-written"
sleep "$2"
`,
  // The attacker: every way to another attempt's files.
  'peek.sh': `#!/bin/sh
{
  for p in /proc/[0-9]*; do cat "$p/cwd/secret.txt" "$p/root/work/secret.txt" 2>&1; done
  cat "$1"/*/*/secret.txt 2>&1
  ls -la "$1" "$1"/* 2>&1
  find / -name secret.txt 2>/dev/null
} > peek.txt 2>&1
exit 0
`,
  // Disk: one big file (stopped by RLIMIT_FSIZE), many files each under it (stopped by the scratch watcher).
  'fill-one.sh': `#!/bin/sh
head -c 20000000 /dev/zero > big.bin
`,
  'fill-many.sh': `#!/bin/sh
i=0
while [ $i -lt 60 ]; do head -c 1048576 /dev/zero > part$i.bin; i=$((i + 1)); sleep 0.05; done
sleep 30
`,
  // A fork bomb, counted.
  // (Counted with shell builtins only: at the limit, the counter could not fork either.)
  'procs.sh': `#!/bin/sh
( i=0; while [ $i -lt 300 ]; do sleep 30 & i=$((i + 1)); done ) 2>/dev/null
n=0
for p in /proc/[0-9]*; do n=$((n + 1)); done
echo "GANTRY_RESULT {\\"processes\\":$n}"
`,
};

function catalogJson(): string {
  const sh = (script: string, ...inputs: string[]) => [
    'sh',
    `{{catalogDir}}/${script}`,
    ...inputs.map((a) => `{{input.${a}}}`),
  ];
  const strings = (...names: string[]) => ({
    type: 'object',
    additionalProperties: false,
    required: names,
    properties: Object.fromEntries(names.map((n) => [n, { type: 'string', maxLength: 400 }])),
  });
  const none = { type: 'object', additionalProperties: false, properties: {} };
  const base = { gpu: { count: 0 }, timeoutSeconds: 60 };
  const net = {
    ...base,
    name: 'net',
    command: sh('net.sh', 'a', 'b', 'c', 'd'),
    inputSchema: strings('a', 'b', 'c', 'd'),
    outputs: ['net.txt'],
  };
  const types = [
    { ...base, name: 'loot', command: sh('loot.sh', 'repo'), inputSchema: strings('repo'), outputs: ['loot.txt'] },
    { ...base, name: 'symlink-out', command: sh('symlink-out.sh'), inputSchema: none, outputs: ['out.txt'] },
    { ...base, name: 'symlink-result', command: sh('symlink-result.sh'), inputSchema: none },
    {
      ...base,
      name: 'write',
      command: sh('write.sh', 'a', 'b'),
      inputSchema: strings('a', 'b'),
      outputs: ['writes.txt', 'inside.txt'],
    },
    net,
    // The same probe with the network allowed by the operator: proves the probe can see a request.
    { ...net, name: 'net-allowed', network: true },
    {
      ...base,
      name: 'victim',
      command: sh('victim.sh', 'secret', 'seconds'),
      inputSchema: {
        type: 'object',
        additionalProperties: false,
        required: ['secret', 'seconds'],
        properties: { secret: { type: 'string' }, seconds: { type: 'integer' } },
      },
    },
    { ...base, name: 'peek', command: sh('peek.sh', 'root'), inputSchema: strings('root'), outputs: ['peek.txt'] },
    { ...base, name: 'fill-one', command: sh('fill-one.sh'), inputSchema: none, outputs: ['big.bin'] },
    { ...base, name: 'fill-many', command: sh('fill-many.sh'), inputSchema: none },
    { ...base, name: 'procs', command: sh('procs.sh'), inputSchema: none },
    {
      ...base,
      name: 'fetch',
      downloads: { 'source.bin': '{{input.url}}' },
      command: ['true'],
      inputSchema: strings('url'),
    },
  ];
  return JSON.stringify({ version: 1, types }, null, 2);
}

describe('job sandbox: escapes attempted for real through the worker', () => {
  let cluster: GantryCluster;
  let worker: ServiceProcess;
  let opsUrl: string;
  let catalogDir: string;
  let scratch: string;
  let hostDir: string;
  let origin: Server;
  let originUrl: string;
  const received: { url: string; from: string }[] = [];
  let store: OutputStore;

  beforeAll(async () => {
    catalogDir = mkdtempSync(join(tmpdir(), 'gantry-escape-catalog-'));
    chmodSync(catalogDir, 0o755);
    for (const [name, body] of Object.entries(SCRIPTS)) writeFileSync(join(catalogDir, name), body, { mode: 0o755 });
    writeFileSync(join(catalogDir, 'catalog.json'), catalogJson());
    scratch = mkdtempSync(join(tmpdir(), 'gantry-escape-scratch-'));
    // World-writable: if a write lands outside the scratch dir, it is not file permissions that stop it.
    hostDir = mkdtempSync(join(tmpdir(), 'gantry-escape-host-'));
    chmodSync(hostDir, 0o1777);

    const media = mkdtempSync(join(tmpdir(), 'gantry-escape-media-'));
    execFileSync('ffmpeg', [
      '-hide_banner',
      '-loglevel',
      'error',
      '-y',
      '-f',
      'lavfi',
      '-i',
      'testsrc=duration=2:size=160x120:rate=10',
      '-pix_fmt',
      'yuv420p',
      join(media, 'clip.mp4'),
    ]);
    const clip = readFileSync(join(media, 'clip.mp4'));
    const big = Buffer.alloc(MAX_INPUT_BYTES + 512 * 1024, 7);
    origin = createServer((req: IncomingMessage, res) => {
      received.push({ url: req.url ?? '', from: req.socket.remoteAddress ?? '' });
      const path = (req.url ?? '/').split('?')[0]!;
      if (path === '/big.bin') return void res.writeHead(200, { 'content-length': big.length }).end(big);
      if (path === '/chunked.bin') {
        // No content-length: only counting the bytes received can stop it.
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        let sent = 0;
        const push = () => {
          while (sent < big.length) {
            sent += 64 * 1024;
            if (!res.write(big.subarray(0, 64 * 1024))) return void res.once('drain', push);
          }
          res.end();
        };
        push();
        return;
      }
      if (path === '/clip.mp4') {
        return void res.writeHead(200, { 'content-length': clip.length }).end(clip);
      }
      res.writeHead(200).end('reached');
    });
    await new Promise<void>((r) => origin.listen(0, '0.0.0.0', r));
    originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`;

    cluster = await GantryCluster.start({
      manual: true,
      // nats-server requires a user: the services authenticate, and the job must not reach it at all.
      natsAuth: true,
      env: {
        JOB_TYPES_FILE: join(catalogDir, 'catalog.json'),
        WORKER_SCRATCH_DIR: scratch,
        WORKER_LOST_AFTER_MS: '6000',
      },
    });
    cluster.spawn('scheduler');
    worker = cluster.spawn('gpu-worker', {
      WORKER_SLOTS: String(SLOTS),
      JOB_SANDBOX_UID_BASE: String(UID_BASE),
      JOB_MAX_PROCESSES: String(MAX_PROCESSES),
      MAX_INPUT_BYTES: String(MAX_INPUT_BYTES),
      MAX_SCRATCH_BYTES: String(MAX_SCRATCH_BYTES),
      GANTRY_E2E_CANARY: CANARY,
    });
    await cluster.startGateway();
    await cluster.waitForWorkers(1);
    opsUrl = String((await worker.waitForLog((l) => l.msg === 'worker ops endpoint listening'))['url']);
    const s3 = cluster.s3.env();
    store = new OutputStore({
      S3_ENDPOINT: s3['S3_ENDPOINT'],
      S3_REGION: s3['S3_REGION'] ?? 'us-east-1',
      S3_BUCKET: s3['S3_BUCKET']!,
      S3_FORCE_PATH_STYLE: true,
      AWS_ACCESS_KEY_ID: s3['AWS_ACCESS_KEY_ID'],
      AWS_SECRET_ACCESS_KEY: s3['AWS_SECRET_ACCESS_KEY'],
      S3_PRESIGN_SECONDS: 60,
    });
    rmSync(media, { recursive: true, force: true });
  });

  afterAll(async () => {
    store?.destroy();
    await cluster?.stop();
    origin?.closeAllConnections();
    await new Promise<void>((r) => (origin ? origin.close(() => r()) : r()));
    for (const d of [catalogDir, scratch, hostDir]) if (d) rmSync(d, { recursive: true, force: true });
  });

  const run = async (type: string, input: Record<string, unknown>, status = 'completed'): Promise<View> => {
    const id = await cluster.submit({ type, input, maxAttempts: 1 });
    const done = await cluster.waitForJob<View>(id, (j) => ['completed', 'failed', 'cancelled'].includes(j.status), {
      timeoutMs: 90_000,
      what: `${type} job ${id} done`,
    });
    if (done.status !== status) throw new Error(`${type} ended ${done.status}: ${JSON.stringify(done.error)}`);
    return done;
  };

  const output = async (view: View, name: string): Promise<string> => {
    const o = view.outputs?.find((x) => x.name === name);
    if (!o) throw new Error(`no output ${name}`);
    const dest = join(hostDir, `${view.id}-${name}`);
    await store.download(o.url, dest);
    const text = readFileSync(dest, 'utf8');
    rmSync(dest, { force: true });
    return text;
  };

  it('runs each job as its own unprivileged uid and cannot read the worker’s environment, secrets or files', async () => {
    const view = await run('loot', { repo: repoRoot() });
    const loot = await output(view, 'loot.txt');
    // The attack ran, and saw only its own world.
    expect(loot).toContain('--- /proc/1/environ');
    const uid = Number(/uid=(\d+)/.exec(loot)?.[1]);
    expect(uid).toBeGreaterThanOrEqual(UID_BASE);
    expect(uid).toBeLessThan(UID_BASE + SLOTS);
    expect(loot).toContain(`GANTRY_JOB_ID=${view.id}`);
    // Nothing of the worker's.
    expect(loot).not.toContain(CANARY);
    expect(loot).not.toContain('AWS_SECRET_ACCESS_KEY');
    expect(loot).not.toContain('NATS_URL');
    expect(loot).not.toContain('"name": "gantry"'); // the repo's package.json
    expect(loot).not.toMatch(/^root:/m); // /etc/shadow
    // Its own pid namespace: the host's processes (the worker, nats-server) are not listed.
    expect(loot).not.toMatch(/\[\/proc\/\d+ node /);
    expect(loot).not.toContain('nats-server');
  }, 120_000);

  it('refuses outputs and results that are symlinks (to the worker’s own /proc/self/environ)', async () => {
    const out = await run('symlink-out', {}, 'failed');
    expect(out.error?.code).toBe('JOB_FAILED');
    expect(out.error?.message).toMatch(/not a regular file/);
    expect(out.outputs ?? []).toEqual([]);
    const res = await run('symlink-result', {}, 'failed');
    expect(res.error?.code).toBe('JOB_FAILED');
    expect(JSON.stringify(res)).not.toContain(CANARY);
  }, 120_000);

  it('cannot write outside its scratch directory', async () => {
    const targets = { a: join(hostDir, 'pwned.txt'), b: join(scratch, 'pwned.txt') };
    const view = await run('write', targets);
    const writes = await output(view, 'writes.txt');
    expect(await output(view, 'inside.txt')).toBe('inside\n'); // its own directory is writable
    expect(writes).toContain(`refused ${targets.a}`);
    for (const t of [targets.a, targets.b, '/etc/pwned', '/usr/pwned', '/pwned']) expect(existsSync(t)).toBe(false);
    expect(readdirSync(hostDir)).toEqual([]);
  }, 120_000);

  it('reaches no network: no request arrives at an HTTP receiver, nats-server or the worker’s ops port', async () => {
    const port = (origin.address() as AddressInfo).port;
    const external = hostAddress();
    const targets = {
      a: `${originUrl}/from-sandbox`,
      b: `http://${external ?? '127.0.0.1'}:${port}/from-sandbox-external`,
      c: cluster.nats.url.replace(/^nats:/, 'telnet:'),
      d: `${opsUrl}/metrics`,
    };
    const before = received.length;
    const view = await run('net', targets);
    const net = await output(view, 'net.txt');
    expect(received.slice(before).filter((r) => r.url.startsWith('/from-sandbox'))).toEqual([]);
    expect(net).not.toContain('INFO {'); // nats-server's greeting
    expect(net).not.toContain('gantry_'); // the worker's metrics
    expect(net).not.toContain('reached');

    // The same probe with the operator's `network: true` does get through: the checks above can fail.
    const allowed = await run('net-allowed', targets);
    const reached = await output(allowed, 'net.txt');
    expect(received.slice(before).some((r) => r.url === '/from-sandbox')).toBe(true);
    expect(reached).toContain('reached');
  }, 120_000);

  it('cannot read another running attempt’s scratch files (by /proc/<pid>/cwd, /proc/<pid>/root or host path)', async () => {
    const secret = `victim-secret-${Date.now()}`;
    const victim = await cluster.submit({ type: 'victim', input: { secret, seconds: 40 }, maxAttempts: 1 });
    await cluster.waitForJob<View & { progress?: { percent: number } }>(
      victim,
      (j) => j.status === 'running' && (j.progress?.percent ?? 0) >= 10,
      { timeoutMs: 60_000, what: 'victim wrote its secret' },
    );
    // The secret is really there on the host (so the attack had something to find).
    const onHost = execFileSync('sh', ['-c', `cat ${scratch}/*/${victim}-1-*/secret.txt`], { encoding: 'utf8' });
    expect(onHost.trim()).toBe(secret);
    const view = await run('peek', { root: scratch });
    const peek = await output(view, 'peek.txt');
    expect(peek).not.toContain(secret);
    await cluster.api('POST', `/v1/jobs/${victim}/cancel`);
  }, 150_000);

  it('fails DISK_LIMIT (not retried) on a download past MAX_INPUT_BYTES, announced or not', async () => {
    for (const path of ['/big.bin', '/chunked.bin']) {
      const view = await run('fetch', { url: `${originUrl}${path}` }, 'failed');
      expect(view.error?.code).toBe('DISK_LIMIT');
      expect(view.error?.retryable).toBe(false);
      expect(view.attempts).toBe(1);
    }
  }, 120_000);

  it('fails DISK_LIMIT when outputs grow past MAX_SCRATCH_BYTES, in one file or in many', async () => {
    const one = await run('fill-one', {}, 'failed');
    expect(one.error?.code).toBe('DISK_LIMIT');
    const many = await run('fill-many', {}, 'failed');
    expect(many.error?.code).toBe('DISK_LIMIT');
    expect(many.error?.retryable).toBe(false);
  }, 150_000);

  it('holds a fork bomb to JOB_MAX_PROCESSES', async () => {
    const view = await run('procs', {});
    const n = Number(view.result?.['processes']);
    expect(n).toBeGreaterThan(1);
    expect(n).toBeLessThanOrEqual(MAX_PROCESSES);
  }, 120_000);

  it('refuses to start a worker where the sandbox cannot run, and warns at every start with JOB_SANDBOX=off', async () => {
    const refused = cluster.spawn('gpu-worker', { BWRAP: '/nonexistent/bwrap', WORKER_SCRATCH_DIR: scratch });
    expect(await within(refused.exited(), 60_000, 'the refused worker exits')).toBe(69);
    expect(refused.tail(20)).toMatch(/refusing to start: bubblewrap .* is not installed.*JOB_SANDBOX=off/s);

    const unconfined = cluster.spawn('gpu-worker', { JOB_SANDBOX: 'off', WORKER_POOL: 'unconfined' });
    const warning = await unconfined.waitForLog((l) => String(l.msg).startsWith('JOB_SANDBOX=off'), {
      timeoutMs: 60_000,
    });
    expect(warning['level']).toBe('warn');
    expect(String(warning.msg)).toMatch(/UNCONFINED/);
    await unconfined.kill('SIGTERM');
  }, 150_000);

  it('still runs an ordinary ffmpeg transcode inside the sandbox', async () => {
    const id = await cluster.submit({
      type: 'ffmpeg',
      input: {
        args: ['-i', 'in.mp4', '-vf', 'scale=80:-2', '-c:v', 'libx264', '-preset', 'ultrafast', 'out.mp4'],
        inputs: { 'in.mp4': `${originUrl}/clip.mp4` },
        outputs: ['out.mp4'],
      },
      maxAttempts: 1,
    });
    const done = await cluster.waitForJob<View>(id, (j) => ['completed', 'failed'].includes(j.status), {
      timeoutMs: 90_000,
    });
    expect(done.error).toBeUndefined();
    expect(done.status).toBe('completed');
    expect(done.outputs?.[0]?.sizeBytes).toBeGreaterThan(1000);
    // Nothing of the attempts is left in the scratch root.
    const leftovers = readdirSync(scratch).flatMap((d) =>
      existsSync(join(scratch, d)) ? readdirSync(join(scratch, d)).filter((f) => !f.startsWith('.')) : [],
    );
    expect(leftovers).toEqual([]);
  }, 120_000);
});
