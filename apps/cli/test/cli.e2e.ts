/**
 * The `gantry` CLI as a real child process (the repo's bin, as `npx gantry` runs it) against the whole system as real
 * processes: exit codes scripts rely on, `--json` output, one-line errors, and the progress bar drawn on a real
 * terminal (a pseudo-terminal from `script`).
 */
import { execFile, spawn, type ExecFileException } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ADMIN_KEY,
  CLIENT_KEY,
  GantryCluster,
  OTHER_TENANT_KEY,
  freePort,
  repoRoot,
  waitFor,
  within,
} from '@gantry/testing';

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

const BIN = join(repoRoot(), 'apps', 'cli', 'bin', 'gantry.cjs');

function run(args: string[], env: Record<string, string>): Promise<Result> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { env: { PATH: process.env['PATH'] ?? '', ...env }, timeout: 90_000 },
      (err: ExecFileException | null, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
      },
    );
  });
}

describe('gantry CLI (child process) against a real stack', () => {
  let cluster: GantryCluster;
  let dir: string;
  let admin: Record<string, string>;
  let client: Record<string, string>;

  beforeAll(async () => {
    cluster = await GantryCluster.start();
    dir = mkdtempSync(join(tmpdir(), 'gantry-cli-'));
    admin = { GANTRY_URL: cluster.gatewayUrl, GANTRY_API_KEY: ADMIN_KEY };
    client = { GANTRY_URL: cluster.gatewayUrl, GANTRY_API_KEY: CLIENT_KEY };
  });
  afterAll(async () => cluster?.stop());

  it('submit --wait --json: exit 0 for a completed job, stdout holds only the final view', async () => {
    const r = await run(
      [
        'submit',
        '--type',
        'noop',
        '--input',
        '{"durationMs":300,"progressSteps":3,"result":{"n":7}}',
        '--wait',
        '--json',
      ],
      client,
    );
    expect(r.code).toBe(0);
    const view = JSON.parse(r.stdout) as { id: string; status: string; result: unknown };
    expect(view).toMatchObject({ status: 'completed', result: { n: 7 } });
    await expect(cluster.job(view.id)).resolves.toMatchObject({ status: 'completed', tenant: 'default' });
  });

  it('submit --wait: exit 1 when the job fails, with its error', async () => {
    const r = await run(
      ['submit', '--type', 'noop', '--input', '{"failTimes":5,"retryable":false}', '--wait', '--json'],
      client,
    );
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ status: 'failed', error: { code: expect.any(String) } });
  });

  it('submit --wait draws a progress bar with stage, percent and ETA on a terminal', async () => {
    // The CLI submits, then follows: the bar is up before the job starts, however slowly the process starts.
    const cmd =
      `'${process.execPath}' '${BIN}' submit --type noop --wait ` + `--input '{"durationMs":4000,"progressSteps":8}'`;
    const r = await new Promise<Result>((resolve) =>
      execFile(
        'script',
        ['-qec', cmd, '/dev/null'],
        { env: { PATH: process.env['PATH'] ?? '', TERM: 'xterm', ...client }, timeout: 90_000 },
        (err, stdout, stderr) =>
          resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }),
      ),
    );
    expect(r.code).toBe(0);
    const id = /submitted ([0-9A-Za-z]{26})/.exec(r.stdout)?.[1];
    expect(id).toBeDefined();
    await expect(cluster.job(id!)).resolves.toMatchObject({ status: 'completed' });
    expect(r.stdout).toMatch(/100% \| completed/);
    expect(r.stdout).toMatch(/ETA \d+s/);
    expect(r.stdout).toMatch(/ \d{1,2}% \| running step \d\/8 \| ETA \d+s/);
  });

  it('submit reads --file, lists, gets, cancels and retries jobs', async () => {
    const file = join(dir, 'job.json');
    writeFileSync(file, JSON.stringify({ type: 'noop', input: { durationMs: 60_000 }, metadata: { from: 'file' } }));
    const s = await run(['submit', '--file', file, '--priority', 'low'], client);
    expect(s.code).toBe(0);
    const id = s.stdout.trim();
    expect(id).toMatch(/^[0-9A-Za-z]{26}$/);

    const got = await run(['jobs', 'get', id, '--json'], client);
    expect(JSON.parse(got.stdout)).toMatchObject({ id, priority: 'low', metadata: { from: 'file' } });
    const ls = await run(['jobs', 'ls', '--limit', '20'], client);
    expect(ls.code).toBe(0);
    expect(ls.stdout).toMatch(/^ID\s+TYPE\s+STATUS/);
    expect(ls.stdout).toContain(id);

    const c = await run(['jobs', 'cancel', id], client);
    expect(c).toMatchObject({ code: 0 });
    expect(c.stdout).toContain('cancelled');
    const again = await run(['jobs', 'cancel', id], client);
    expect(again.code).toBe(3);
    expect(again.stderr.trim().split('\n')).toHaveLength(1);
    expect(again.stderr).toMatch(/^gantry: 409 /);
    const watch = await run(['jobs', 'watch', id, '--json'], client);
    expect(watch.code).toBe(1);
    const retry = await run(['jobs', 'retry', id, '--json'], client);
    expect(retry.code).toBe(0);
    expect(JSON.parse(retry.stdout)).toMatchObject({ generation: 2 });
    await run(['jobs', 'cancel', id], client);
  });

  it('another tenant cannot see the job; a client key cannot pause the queue', async () => {
    const id = await cluster.submit({ type: 'noop' }, CLIENT_KEY);
    const r = await run(['jobs', 'get', id], { ...client, GANTRY_API_KEY: OTHER_TENANT_KEY });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/^gantry: 404 /);
    const p = await run(['queue', 'pause'], client);
    expect(p.code).toBe(3);
    expect(p.stderr).toMatch(/^gantry: 403 /);
    expect(p.stderr).not.toMatch(/\n\s+at /);
  });

  it('queue admin: pause, get, resume, config', async () => {
    const p = await run(['queue', 'pause', '--json'], admin);
    expect(JSON.parse(p.stdout)).toMatchObject({ paused: true });
    const g = await run(['queue', 'get'], admin);
    expect(g.stdout).toMatch(/state\s+paused/);
    expect((await cluster.api<{ paused: boolean }>('GET', '/v1/queue')).body.paused).toBe(true);
    const r = await run(['queue', 'resume'], admin);
    expect(r.stdout).toMatch(/state\s+running/);
    const c = await run(['queue', 'config', '--max-concurrent-jobs', '6', '--json'], admin);
    expect(JSON.parse(c.stdout)).toMatchObject({ maxConcurrentJobs: 6 });
    const w = await run(['workers', '--json'], admin);
    expect(JSON.parse(w.stdout)).toHaveLength(1);
    const who = await run(['whoami'], client);
    expect(who.stdout).toBe('client (tenant default)\n');
  });

  it('queue watch --json: one JSON line per state, a pause as it happens, exit 0 on SIGINT', async () => {
    const child = spawn(process.execPath, [BIN, 'queue', 'watch', '--json'], {
      env: { PATH: process.env['PATH'] ?? '', ...client },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines: { paused: boolean }[] = [];
    let buf = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        lines.push(JSON.parse(buf.slice(0, nl)) as { paused: boolean });
        buf = buf.slice(nl + 1);
      }
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await waitFor(() => lines.length >= 1, { what: 'the first state', timeoutMs: 60_000 });
      expect(lines[0]).toMatchObject({ paused: false });
      expect((await cluster.api('POST', '/v1/queue/pause', undefined, ADMIN_KEY)).status).toBe(200);
      await waitFor(() => lines.some((l) => l.paused), { what: 'the pause on the stream', timeoutMs: 30_000 });
    } finally {
      if ((await cluster.api<{ paused: boolean }>('GET', '/v1/queue')).body.paused)
        await cluster.api('POST', '/v1/queue/resume', undefined, ADMIN_KEY);
    }
    child.kill('SIGINT');
    expect(await within(exited, 30_000, 'the CLI to exit')).toBe(0);
    expect(stderr).toBe('');
  });

  it('batches submit --file and batches get', async () => {
    const file = join(dir, 'batch.json');
    writeFileSync(file, JSON.stringify({ jobs: [{ type: 'noop' }, { type: 'noop' }] }));
    const s = await run(['batches', 'submit', '--file', file, '--json'], client);
    expect(s.code).toBe(0);
    const b = JSON.parse(s.stdout) as { id: string; jobs: { id: string }[] };
    expect(b.jobs).toHaveLength(2);
    for (const j of b.jobs) await cluster.waitForStatus(j.id, 'completed');
    const g = await run(['batches', 'get', b.id, '--json'], client);
    expect(JSON.parse(g.stdout)).toMatchObject({ total: 2, counts: { completed: 2 } });
  });

  it('tenants ls (admin) and tenants me show the fair share; a client key gets exit 3 for ls', async () => {
    const ls = await run(['tenants', 'ls', '--json'], admin);
    expect(ls.code).toBe(0);
    const all = JSON.parse(ls.stdout) as { tenant: string; sharePercent: number; entitledPercent: number }[];
    expect(all.map((t) => t.tenant)).toContain('default');
    const human = await run(['tenants'], admin);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^TENANT\s+WEIGHT\s+QUEUED\s+RUNNING\s+USED SLOT-S\s+SHARE\s+ENTITLED\n/);
    expect(human.stdout).toMatch(/\ndefault\s+\d+/);
    const me = await run(['tenants', 'me', '--json'], { ...client, GANTRY_API_KEY: OTHER_TENANT_KEY });
    expect(me.code).toBe(0);
    expect(JSON.parse(me.stdout)).toMatchObject({ tenant: 'other' });
    const refused = await run(['tenants', 'ls'], client);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/^gantry: 403 /);
  });

  it('schedules add, ls, pause, resume and rm; a bad cron exits 3 with one line', async () => {
    const add = await run(
      [
        'schedules',
        'add',
        '--name',
        'cli-e2e',
        '--cron',
        '*/5 * * * *',
        '--timezone',
        'Europe/Paris',
        '--type',
        'noop',
        '--json',
      ],
      client,
    );
    expect(add.code).toBe(0);
    const s = JSON.parse(add.stdout) as { id: string; cron: string; timezone: string; paused: boolean };
    expect(s).toMatchObject({ cron: '*/5 * * * *', timezone: 'Europe/Paris', paused: false });
    const ls = await run(['schedules', 'ls'], client);
    expect(ls.code).toBe(0);
    expect(ls.stdout).toMatch(new RegExp(`\\n${s.id}\\s+cli-e2e\\s+\\*/5 \\* \\* \\* \\*\\s+Europe/Paris\\s+active`));
    expect(
      (await run(['schedules', 'ls', '--json'], { ...client, GANTRY_API_KEY: OTHER_TENANT_KEY })).stdout,
    ).not.toContain(s.id);
    const paused = await run(['schedules', 'pause', s.id, '--json'], client);
    expect(JSON.parse(paused.stdout)).toMatchObject({ id: s.id, paused: true });
    const resumed = await run(['schedules', 'resume', s.id, '--json'], client);
    expect(JSON.parse(resumed.stdout)).toMatchObject({ id: s.id, paused: false });
    const bad = await run(['schedules', 'add', '--name', 'x', '--cron', 'often', '--type', 'noop'], client);
    expect(bad.code).toBe(3);
    expect(bad.stderr).toMatch(/^gantry: 400 .*\n$/);
    expect(bad.stderr.split('\n')).toHaveLength(2);
    const noJob = await run(['schedules', 'add', '--name', 'x', '--cron', '* * * * *'], client);
    expect(noJob.code).toBe(2);
    const rm = await run(['schedules', 'rm', s.id], client);
    expect(rm).toMatchObject({ code: 0, stdout: `deleted ${s.id}\n` });
    const gone = await run(['schedules', 'get', s.id], client);
    expect(gone.code).toBe(3);
    expect(gone.stderr).toMatch(/^gantry: 404 /);
  });

  it('queue get shows queued depth per pool and the scheduled jobs', async () => {
    await cluster.submit({ type: 'noop', pool: 'cli-pool', priority: 'high' });
    await cluster.submit({ type: 'noop', delaySeconds: 3600 });
    const r = await run(['queue', 'get'], admin);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/\nscheduled\s+1\n/);
    expect(r.stdout).toMatch(/\nPOOL\s+URGENT\s+HIGH\s+NORMAL\s+LOW\s+QUEUED\s+SCHEDULED\s+WAITING\n/);
    expect(r.stdout).toMatch(/\ncli-pool\s+0\s+1\s+0\s+0\s+1\s+0\s+0\n/);
    const json = JSON.parse((await run(['queue', 'get', '--json'], admin)).stdout) as { pools: { pool: string }[] };
    expect(json.pools.map((p) => p.pool)).toEqual(expect.arrayContaining(['cli-pool', 'default']));
  });

  it('usage errors exit 2 with one line; network errors exit 3 with one line', async () => {
    const bad = await run(['submit', '--type', 'noop', '--input', '{nope'], client);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^gantry: --input is not valid JSON/);
    expect((await run(['frobnicate'], client)).code).toBe(2);
    expect((await run(['submit', '--type', 'noop', '--priority', 'asap'], client)).code).toBe(2);
    const noKey = await run(['queue', 'get'], { GANTRY_URL: cluster.gatewayUrl });
    expect(noKey.code).toBe(2);
    expect(noKey.stderr).toMatch(/GANTRY_API_KEY/);
    const invalid = await run(['submit', '--type', 'noop', '--input', '{"durationMs":-5}'], client);
    expect(invalid.code).toBe(3);
    expect(invalid.stderr).toMatch(/^gantry: 400 .*durationMs/);
    const down = await run(['queue', 'get'], { ...admin, GANTRY_URL: `http://127.0.0.1:${await freePort()}` });
    expect(down.code).toBe(3);
    expect(down.stderr).toMatch(/^gantry: cannot reach http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED\n$/);
  });
});
