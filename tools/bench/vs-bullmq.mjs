#!/usr/bin/env node
// `npm run bench:vs-bullmq`: Gantry and BullMQ side by side, in one run, on this machine.
//
// Both systems are up for the whole run and measured in alternating rounds (G B B G …), so that other work on a
// shared machine hits both alike:
//   - Gantry with durability on: a real nats-server 2.9 (JetStream, file store, the project's defaults), the
//     S3-compatible store and the four built services as real processes; no-op jobs submitted as HTTP batches
//     (`POST /v1/batches`, 1,000 jobs each) and run to `completed` by the workers (64 tokens in all).
//   - BullMQ 6 on a real redis-server (a free loopback port, AOF `everysec`, a temp dir); the same no-op jobs added
//     with `addBulk` in chunks of the same size, run by one Worker process with concurrency 64.
// Jobs are spread over 4 priorities on both sides. A round ends when the system reports every job done.
//
// Printed per system: jobs/s (submit of the first job → last job done), the ratio, the dispatch gap with one token
// (a job's `finishedAt` → the next one's `startedAt`, 20 ms jobs; beside it, how late a bystander process on a 5 ms
// timer woke meanwhile: what the machine does to any process), broker operations per job (nats-server /varz,
// /jsz and /connz counters through its monitoring port: messages in and out, JetStream API calls, durable writes per
// stream, consumer deliveries per stream, messages per component; Redis INFO commandstats for BullMQ) and the CPU
// each process used per job (from /proc/<pid>/stat). The load average is printed at start and end: this box is
// shared, and figures taken under load are labelled so.
//
//   npm run bench:vs-bullmq -- [--jobs 5000] [--rounds 4] [--warmup-jobs 20000] [--batch 1000] [--tokens 64]
//                              [--workers 1] [--in-flight 4] [--gap-jobs 200] [--gap-ms 20] [--only gantry|bullmq]
//                              [--cpu-prof DIR] [--cpu-prof-top 15]
// --warmup-jobs: unmeasured jobs each system runs first, in rounds of --jobs, alternating like the measured ones. Every
// process here is a Node process (BullMQ's worker and producer too) whose cost per job keeps falling for the first
// ~20,000 jobs (the JIT's later tiers, the heap's sizing): measured on 3 December 2026, Gantry's services went from
// ≈ 600 to ≈ 300 µs of CPU per job over 8 rounds of 5,000 and BullMQ's worker from ≈ 70 to ≈ 35. A queue serves for
// days, so the measured rounds are the warm ones; each warm-up round's rate is printed as well ("cold"), and the
// summary gives the ratio of the first warm-up rounds next to the measured one. `--warmup-jobs 2000` is the short
// warm-up this bench used before (docs/performance.md, "Warm, not cold").
// --cpu-prof DIR: V8 CPU profiles of every Gantry service into DIR (written when they stop), DIR/windows.json with the
// measured rounds on the monotonic clock of the profiles' timestamps, and a printed top-N self-time and inclusive
// summary per service counted inside those rounds only, per job (tools/bench/cpu-profile.mjs; rerun it on DIR for
// more rows). The profiler costs CPU itself: take the µs-per-job figures from a run without it.
// WORKER_STARTED_REVISION_DELAY_MS in the environment is passed to the workers (0: the "before" of issue 16 lever 2);
// DISPATCH_BATCH_MAX to the scheduler (1: one dispatch message per attempt, the "before" of issue 16 lever 3);
// SERVICE_NODE_OPTIONS to every service's Node as NODE_OPTIONS (the flags Node allows there); SCHEDULER_NODE_ARGS
// replaces the scheduler's Node flags (default: the heap settings docker-compose.yml ships; '' for Node's defaults).
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { connect } from '@nats-io/transport-node';
import { NatsServer, S3Server, ServiceProcess, freePort } from '@gantry/testing';
import { brokerReport, natsCounters, natsDelta } from './broker-counters.mjs';
import { profileReport } from './cpu-profile.mjs';
import { CLK_TCK, cpuTicks } from './proc-cpu.mjs';
import { schedulerNodeArgs } from './service-flags.mjs';

const { values: opt } = parseArgs({
  options: {
    jobs: { type: 'string', default: '5000' },
    rounds: { type: 'string', default: '4' },
    'warmup-jobs': { type: 'string', default: '20000' },
    batch: { type: 'string', default: '1000' },
    tokens: { type: 'string', default: '64' },
    workers: { type: 'string', default: '1' },
    'in-flight': { type: 'string', default: '4' },
    'gap-jobs': { type: 'string', default: '200' },
    'gap-ms': { type: 'string', default: '20' },
    only: { type: 'string' },
    'cpu-prof': { type: 'string' },
    'cpu-prof-top': { type: 'string', default: '15' },
    // Internal: this script run as the BullMQ worker process.
    role: { type: 'string' },
    'redis-port': { type: 'string' },
    queue: { type: 'string' },
    concurrency: { type: 'string' },
    'sleep-ms': { type: 'string' },
  },
});

const JOBS = Number(opt.jobs);
const ROUNDS = Number(opt.rounds);
const WARMUP_JOBS = Number(opt['warmup-jobs']);
const BATCH = Number(opt.batch);
const TOKENS = Number(opt.tokens);
const WORKERS = Number(opt.workers);
const IN_FLIGHT = Number(opt['in-flight']);
const GAP_JOBS = Number(opt['gap-jobs']);
const GAP_MS = Number(opt['gap-ms']);
const PRIORITIES = ['urgent', 'high', 'normal', 'low'];
const PROF_DIR = opt['cpu-prof'] ? resolve(opt['cpu-prof']) : undefined;
/** Measured rounds per Gantry process, in µs of the monotonic clock (CLOCK_MONOTONIC, as V8's profile timestamps). */
const profWindows = [];
const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);
if (PROF_DIR) mkdirSync(PROF_DIR, { recursive: true });
const KEY = 'bench-admin-key-0001';
const say = (m) => process.stderr.write(`[bench] ${m}\n`);
const out = (s = '') => process.stdout.write(`${s}\n`);

// ---------------------------------------------------------------------------------------------------------------
// The BullMQ worker process (this script, --role bullmq-worker): a Worker with no-op (or sleeping) jobs.
if (opt.role === 'bullmq-worker') {
  const { Worker } = await import('bullmq');
  const sleepMs = Number(opt['sleep-ms'] ?? 0);
  const worker = new Worker(
    opt.queue,
    async () => {
      if (sleepMs > 0) await new Promise((r) => setTimeout(r, sleepMs));
      return undefined;
    },
    {
      connection: { host: '127.0.0.1', port: Number(opt['redis-port']), maxRetriesPerRequest: null },
      concurrency: Number(opt.concurrency ?? 1),
    },
  );
  await worker.waitUntilReady();
  process.send?.('ready');
  process.on('SIGTERM', () => void worker.close().finally(() => process.exit(0)));
  await new Promise(() => undefined);
}

// ---------------------------------------------------------------------------------------------------------------
// Measurement helpers

function pct(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/**
 * Polls `probe` until it returns a value other than undefined/false. Unlike the test kit's waitFor, an error thrown
 * by the probe ends the wait at once: a process that exited is final, not something to poll past.
 */
async function waitFor(probe, { what, timeoutMs, intervalMs }) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const perJob = (n, jobs) => (n / jobs).toFixed(2);

/**
 * A bystander: a separate Node process that does nothing but wake on a 5 ms timer and note how late each wake-up
 * was, from `start()` until `stop()`. It runs no part of either system, so its late wake-ups are what the machine
 * itself (the other processes, the kernel, the VM) does to any process at that moment — the measure against which a
 * dispatch gap's tail is read.
 */
function startBystander() {
  const code = `
    const late = [];
    let due = performance.now() + 5;
    const tick = () => {
      const now = performance.now();
      late.push(now - due);
      due = now + 5;
      setTimeout(tick, 5);
    };
    setTimeout(tick, 5);
    process.stdin.on('data', () => {});
    process.stdin.on('end', () => {
      process.stdout.write(JSON.stringify(late), () => process.exit(0));
    });`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['pipe', 'pipe', 'inherit'] });
  let text = '';
  child.stdout.on('data', (b) => (text += b));
  const exited = new Promise((r) => child.on('exit', r));
  return {
    async stop() {
      child.stdin.end();
      await exited;
      const late = JSON.parse(text || '[]').sort((a, b) => a - b);
      return {
        n: late.length,
        p50: pct(late, 50),
        p99: pct(late, 99),
        max: late.at(-1) ?? NaN,
        over5: late.filter((x) => x > 5).length,
        over10: late.filter((x) => x > 10).length,
      };
    },
  };
}

/**
 * GC pauses of a service so far, from its /metrics (prom-client's `nodejs_gc_duration_seconds` histogram, by kind of
 * collection): how many in all, how many longer than 1 ms and than 10 ms, and the kinds of those over 10 ms.
 */
async function gcPausesOf(url) {
  const text = await (await fetch(`${url}/metrics`)).text();
  const byKind = {};
  for (const m of text.matchAll(/^gantry_process_nodejs_gc_duration_seconds_bucket\{([^}]*)\} (\S+)$/gm)) {
    const kind = /kind="([^"]*)"/.exec(m[1])?.[1] ?? '?';
    const le = /le="([^"]*)"/.exec(m[1])?.[1];
    if (le) (byKind[kind] ??= {})[le] = (byKind[kind]?.[le] ?? 0) + Number(m[2]);
  }
  const total = (le) => Object.values(byKind).reduce((a, k) => a + (k[le] ?? 0), 0);
  const all = total('+Inf');
  const over10ByKind = Object.fromEntries(
    Object.entries(byKind).map(([kind, k]) => [kind, (k['+Inf'] ?? 0) - (k['0.01'] ?? 0)]),
  );
  return { all, over1: all - total('0.001'), over10: all - total('0.01'), over10ByKind };
}

/** Redis INFO commandstats: calls per command. */
async function redisCommands(redis) {
  const text = await redis.info('commandstats');
  const calls = {};
  for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls[m[1]] = Number(m[2]);
  return calls;
}

// ---------------------------------------------------------------------------------------------------------------
// The systems

async function startRedis() {
  const dir = mkdtempSync(join(tmpdir(), 'gantry-bench-redis-'));
  const port = await freePort();
  const bin = process.env.REDIS_SERVER_BIN ?? 'redis-server';
  const proc = spawn(
    bin,
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--appendonly',
      'yes',
      '--appendfsync',
      'everysec',
      '--save',
      '',
      '--maxmemory-policy',
      'noeviction',
      '--protected-mode',
      'no',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  await new Promise((resolve, reject) => {
    const onData = (b) => {
      log += b.toString();
      if (log.includes('Ready to accept connections')) resolve();
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.once('exit', (code) => reject(new Error(`redis-server exited (${code}):\n${log}`)));
  });
  return {
    port,
    pid: proc.pid,
    stop: async () => {
      if (proc.exitCode === null) {
        proc.kill('SIGTERM');
        await new Promise((r) => proc.once('exit', r));
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function startBullWorker(redisPort, queue, concurrency, sleepMs) {
  const child = spawn(
    process.execPath,
    [
      fileURLToPath(import.meta.url),
      '--role',
      'bullmq-worker',
      '--redis-port',
      String(redisPort),
      '--queue',
      queue,
      '--concurrency',
      String(concurrency),
      '--sleep-ms',
      String(sleepMs),
    ],
    { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
  );
  const ready = new Promise((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`BullMQ worker exited (${code})`)));
  });
  return {
    pid: child.pid,
    ready,
    stop: async () => {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    },
  };
}

async function startBullmq() {
  const { Queue } = await import('bullmq');
  const { default: IORedis } = await import('ioredis');
  const redis = await startRedis();
  const connection = { host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: null };
  const admin = new IORedis(connection);
  const queue = new Queue('bench', { connection });
  const worker = startBullWorker(redis.port, 'bench', TOKENS, 0);
  await worker.ready;
  const priorityOf = { urgent: 1, high: 2, normal: 3, low: 4 };
  let total = 0;
  return {
    name: 'BullMQ',
    redis,
    admin,
    queue,
    connection,
    pids: () => [
      ['redis-server', redis.pid],
      ['bullmq worker', worker.pid],
      ['bench (producer)', process.pid],
    ],
    counters: () => redisCommands(admin),
    async round(n) {
      const base = await queue.getJobCountByTypes('completed');
      const t0 = performance.now();
      let next = 0;
      await Promise.all(
        Array.from({ length: IN_FLIGHT }, async () => {
          while (next < n) {
            const from = next;
            next = Math.min(n, next + BATCH);
            await queue.addBulk(
              Array.from({ length: next - from }, (_, k) => {
                const p = PRIORITIES[(from + k) % 4];
                return { name: 'noop', data: { type: 'noop', input: {} }, opts: { priority: priorityOf[p] } };
              }),
            );
          }
        }),
      );
      const submitted = performance.now();
      await waitFor(async () => (await queue.getJobCountByTypes('completed')) >= base + n, {
        what: `BullMQ to complete ${n} jobs`,
        timeoutMs: 30 * 60_000,
        intervalMs: 50,
      });
      total += n;
      return { submitMs: submitted - t0, ms: performance.now() - t0 };
    },
    async gaps(n, sleepMs) {
      const q = new Queue('bench-gap', { connection });
      const w = startBullWorker(redis.port, 'bench-gap', 1, sleepMs);
      await w.ready;
      await q.addBulk(Array.from({ length: n }, () => ({ name: 'noop', data: { type: 'noop', input: {} } })));
      await waitFor(async () => (await q.getJobCountByTypes('completed')) >= n, {
        what: 'BullMQ gap jobs',
        timeoutMs: 10 * 60_000,
        intervalMs: 50,
      });
      const jobs = await q.getJobs(['completed'], 0, -1);
      await w.stop();
      await q.close();
      return jobs.map((j) => ({ startedAt: j.processedOn, finishedAt: j.finishedOn }));
    },
    async stop() {
      await worker.stop();
      await queue.close().catch(() => undefined);
      admin.disconnect();
      await redis.stop();
    },
  };
}

async function startGantry() {
  const monitorPort = await freePort();
  const nats = await NatsServer.start({ monitorPort });
  const s3 = await S3Server.start();
  const gatewayPort = await freePort();
  const schedulerOpsPort = await freePort();
  const workerOpsPorts = await Promise.all(Array.from({ length: WORKERS }, () => freePort()));
  const env = {
    NATS_URL: nats.url,
    ...s3.env(),
    API_KEYS: `${KEY}:admin`,
    RATE_LIMIT_SUBMITS_PER_MINUTE: '10000000',
    MAX_QUEUE_SIZE: '100000000',
    GATEWAY_PORT: String(gatewayPort),
    SCHEDULER_HTTP_PORT: String(schedulerOpsPort),
    WORKER_HTTP_PORT: '0',
    NOTIFIER_HTTP_PORT: '0',
    GPU_DISCOVERY: 'false',
    WORKER_SLOTS: String(Math.ceil(TOKENS / WORKERS)),
    WORKER_ID_PREFIX: 'gpu-worker',
    MAX_CONCURRENT_JOBS: String(TOKENS),
    LOG_LEVEL: 'warn',
    // The "before" of issue 16's lever 2: WORKER_STARTED_REVISION_DELAY_MS=0 writes every attempt's running revision.
    ...(process.env.WORKER_STARTED_REVISION_DELAY_MS !== undefined
      ? { WORKER_STARTED_REVISION_DELAY_MS: process.env.WORKER_STARTED_REVISION_DELAY_MS }
      : {}),
    // The "before" of issue 16's lever 3: DISPATCH_BATCH_MAX=1 sends one dispatch message per attempt.
    ...(process.env.DISPATCH_BATCH_MAX !== undefined ? { DISPATCH_BATCH_MAX: process.env.DISPATCH_BATCH_MAX } : {}),
    // SERVICE_NODE_OPTIONS in the environment is passed to the services' Node (e.g. --trace-gc with GANTRY_TEST_ECHO=1);
    // the services do not inherit this process's environment, so NODE_OPTIONS itself would not reach them.
    ...(PROF_DIR || process.env.SERVICE_NODE_OPTIONS
      ? {
          NODE_OPTIONS: [
            process.env.SERVICE_NODE_OPTIONS ?? '',
            PROF_DIR ? `--cpu-prof --cpu-prof-dir=${PROF_DIR}` : '',
          ]
            .join(' ')
            .trim(),
        }
      : {}),
  };
  // The scheduler as deployed (its heap settings: service-flags.mjs).
  const services = [new ServiceProcess('scheduler', env, { nodeArgs: schedulerNodeArgs() }).start()];
  for (let i = 0; i < WORKERS; i++) {
    services.push(new ServiceProcess('gpu-worker', { ...env, WORKER_HTTP_PORT: String(workerOpsPorts[i]) }).start());
  }
  services.push(new ServiceProcess('notifier', env).start());
  const gw = new ServiceProcess('gateway', env).start();
  services.push(gw);
  const origin = `http://127.0.0.1:${gatewayPort}`;
  const monitor = `http://127.0.0.1:${monitorPort}`;
  const stop = async () => {
    await Promise.all(services.map((s) => s.kill('SIGTERM', 15_000).catch(() => s.kill('SIGKILL').catch(() => {}))));
    await s3.stop().catch(() => {});
    await nats.dispose().catch(() => {});
  };
  const api = async (method, path, body) => {
    const r = await fetch(`${origin}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${KEY}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : undefined };
  };
  try {
    await waitFor(
      async () => {
        for (const s of services) if (!s.running) throw new Error(`${s.name} exited:\n${s.tail(10)}`);
        const r = await api('GET', '/v1/workers').catch(() => undefined);
        return r?.status === 200 && r.body.length === WORKERS;
      },
      { what: 'Gantry up with its workers', timeoutMs: 60_000, intervalMs: 100 },
    );
  } catch (err) {
    await stop();
    throw err;
  }
  const processed = async () => {
    const r = await api('GET', '/v1/queue/metrics');
    if (r.status !== 200) throw new Error(`queue metrics answered ${r.status}`);
    return r.body.performance.totalJobsProcessed;
  };
  const submitBatches = async (n, job) => {
    const ids = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (next < n) {
          const from = next;
          next = Math.min(n, next + BATCH);
          const r = await api('POST', '/v1/batches', {
            jobs: Array.from({ length: next - from }, (_, k) => job(from + k)),
          });
          if (r.status !== 202) throw new Error(`batch answered ${r.status}: ${JSON.stringify(r.body).slice(0, 500)}`);
          for (const j of r.body.jobs) ids.push(j.id);
        }
      }),
    );
    return ids;
  };
  const assertRunning = () => {
    for (const s of services) if (!s.running) throw new Error(`${s.name} exited:\n${s.tail(10)}`);
  };
  return {
    name: 'Gantry',
    monitor,
    services,
    pids: () => [['nats-server', nats.pid], ...services.map((s) => [s.name, s.pid]), ['bench (producer)', process.pid]],
    /** Each service's GC pauses so far, from its own metrics (the prom-client histogram's buckets). */
    gcPauses: async () => {
      const from = [
        ['scheduler', `http://127.0.0.1:${schedulerOpsPort}`],
        ...workerOpsPorts.map((p, i) => [WORKERS > 1 ? `gpu-worker ${i + 1}` : 'gpu-worker', `http://127.0.0.1:${p}`]),
        ['gateway', origin],
      ];
      return Object.fromEntries(await Promise.all(from.map(async ([name, url]) => [name, await gcPausesOf(url)])));
    },
    counters: () => natsCounters(monitor),
    async round(n) {
      const base = await processed();
      const t0 = performance.now();
      await submitBatches(n, (i) => ({ type: 'noop', input: {}, priority: PRIORITIES[i % 4] }));
      const submitted = performance.now();
      await waitFor(
        async () => {
          assertRunning();
          return (await processed()) >= base + n;
        },
        { what: `Gantry to complete ${n} jobs`, timeoutMs: 30 * 60_000, intervalMs: 50 },
      );
      return { submitMs: submitted - t0, ms: performance.now() - t0 };
    },
    async gaps(n, sleepMs) {
      const set = async (maxConcurrentJobs) => {
        const r = await api('PUT', '/v1/queue/config', { maxConcurrentJobs });
        if (r.status !== 200) throw new Error(`queue config answered ${r.status}: ${JSON.stringify(r.body)}`);
      };
      await set(1);
      // Where each gap goes: a plain subscription sees every job revision and every dispatch as it is published, so
      // a gap splits into the worker's outcome write (finishedAt → its revision published), the scheduler's part
      // (→ the next job's dispatch published) and the worker's part (→ the next startedAt: delivery, the record's
      // read, the start). Times are this process's receipt times, on the same clock as the records' timestamps.
      const seen = { outcome: new Map(), dispatch: new Map() };
      const tap = await connect({ servers: nats.url, name: 'bench-gap-tap' });
      tap.subscribe('gantry.v1.job_nocb.*', {
        callback: (_err, m) => {
          const at = Date.now();
          const e = JSON.parse(new TextDecoder().decode(m.data));
          if (e.job?.status === 'completed') seen.outcome.set(e.job.id, at);
        },
      });
      tap.subscribe('gantry.v1.dispatch.*', {
        callback: (_err, m) => {
          const at = Date.now();
          const d = JSON.parse(new TextDecoder().decode(m.data));
          for (const a of d.attempts ?? [d]) if (a.jobId) seen.dispatch.set(a.jobId, at);
        },
      });
      await tap.flush();
      try {
        const base = await processed();
        const ids = await submitBatches(n, () => ({ type: 'noop', input: { durationMs: sleepMs } }));
        await waitFor(async () => (await processed()) >= base + n, {
          what: 'Gantry gap jobs',
          timeoutMs: 10 * 60_000,
          intervalMs: 50,
        });
        const views = [];
        for (let i = 0; i < ids.length; i += 16) {
          views.push(
            ...(await Promise.all(ids.slice(i, i + 16).map(async (id) => (await api('GET', `/v1/jobs/${id}`)).body))),
          );
        }
        return views.map((v) => ({
          startedAt: Date.parse(v.startedAt),
          finishedAt: Date.parse(v.finishedAt),
          outcomeSeen: seen.outcome.get(v.id),
          dispatchSeen: seen.dispatch.get(v.id),
        }));
      } finally {
        await tap.close().catch(() => {});
        await set(TOKENS);
      }
    },
    stop,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The run

function cpuReport(pids, before, after, seconds, jobs) {
  return pids
    .map(([name], i) => {
      const s = (after[i] - before[i]) / CLK_TCK;
      return `${name} ${((s / seconds) * 100).toFixed(0)}% (${((s / jobs) * 1e6).toFixed(0)} µs/job)`;
    })
    .join(', ');
}

function gapStats(jobs) {
  const sorted = jobs.filter((j) => j.startedAt && j.finishedAt).sort((a, b) => a.startedAt - b.startedAt);
  const gaps = [];
  // Gantry only: each gap split at the previous job's outcome revision and the next job's dispatch (see gaps()).
  const parts = { outcome: [], scheduler: [], worker: [] };
  const worst = [];
  for (let i = 1; i < sorted.length; i++) {
    const a = sorted[i - 1];
    const b = sorted[i];
    const gap = b.startedAt - a.finishedAt;
    gaps.push(gap);
    if (a.outcomeSeen !== undefined && b.dispatchSeen !== undefined) {
      const split = [a.outcomeSeen - a.finishedAt, b.dispatchSeen - a.outcomeSeen, b.startedAt - b.dispatchSeen];
      parts.outcome.push(split[0]);
      parts.scheduler.push(split[1]);
      parts.worker.push(split[2]);
      worst.push({ gap, split });
    }
  }
  gaps.sort((a, b) => a - b);
  for (const xs of Object.values(parts)) xs.sort((a, b) => a - b);
  worst.sort((a, b) => b.gap - a.gap);
  return {
    n: gaps.length,
    p50: pct(gaps, 50),
    p99: pct(gaps, 99),
    max: gaps.at(-1),
    overlaps: gaps.filter((g) => g < 0).length,
    parts: parts.outcome.length > 0 ? parts : undefined,
    worst: worst.slice(0, 5),
  };
}

async function main() {
  const load0 = loadavg();
  out(
    `Gantry vs BullMQ — ${JOBS.toLocaleString()} no-op jobs per round, ${ROUNDS} round(s) each, alternating; ` +
      `batches of ${BATCH} (${IN_FLIGHT} in flight), 4 priorities, ${TOKENS} tokens (Gantry: ${WORKERS} worker(s); ` +
      `BullMQ: one Worker, concurrency ${TOKENS}); node ${process.version}`,
  );
  out(`machine: ${cpus().length} CPUs, load average at start ${load0.map((x) => x.toFixed(2)).join(' ')}`);
  const systems = [];
  const stops = [];
  const cleanup = async () => {
    for (const s of stops.reverse()) await s().catch(() => undefined);
  };
  process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));
  try {
    if (opt.only !== 'bullmq') {
      say('starting Gantry…');
      const g = await startGantry();
      stops.push(g.stop);
      systems.push(g);
    }
    if (opt.only !== 'gantry') {
      say('starting BullMQ…');
      const b = await startBullmq();
      stops.push(b.stop);
      systems.push(b);
    }
    // Unmeasured warm-up rounds (JIT, heap sizing, connections, first stream writes), alternating; each one's rate
    // is printed as the cold figure.
    const cold = new Map(systems.map((s) => [s.name, []]));
    const warmRounds = [];
    for (let left = WARMUP_JOBS; left > 0; left -= JOBS) warmRounds.push(Math.min(JOBS, left));
    out(
      `\nwarm-up: ${WARMUP_JOBS.toLocaleString()} jobs per system in ${warmRounds.length} round(s), not measured ` +
        `(jobs/s of each, cold first):`,
    );
    for (const [i, n] of warmRounds.entries()) {
      for (const s of i % 2 === 0 ? systems : [...systems].reverse()) {
        const pids = s.pids();
        const cpu0 = pids.map(([, pid]) => cpuTicks(pid));
        const { ms } = await s.round(n);
        const cpu1 = pids.map(([, pid]) => cpuTicks(pid));
        const ticks = cpu1.reduce((a, v, k) => a + v - cpu0[k], 0);
        const rate = n / (ms / 1000);
        cold.get(s.name).push(rate);
        out(
          `  warm-up ${i + 1} ${s.name}: ${Math.round(rate).toLocaleString()} jobs/s, ` +
            `${Math.round(((ticks / CLK_TCK) * 1e6) / n)} µs of CPU per job in all its processes`,
        );
      }
    }
    const results = new Map(systems.map((s) => [s.name, { rates: [], broker: [], cpu: [] }]));
    for (let r = 0; r < ROUNDS; r++) {
      for (const s of r % 2 === 0 ? systems : [...systems].reverse()) {
        const pids = s.pids();
        const c0 = await s.counters();
        const cpu0 = pids.map(([, pid]) => cpuTicks(pid));
        const la = loadavg()[0];
        const m0 = monotonicUs();
        const { ms, submitMs } = await s.round(JOBS);
        if (PROF_DIR && s.services) {
          const to = monotonicUs();
          for (const svc of s.services) {
            profWindows.push({ label: svc.name, pid: svc.pid, from: m0, to, units: JOBS, unit: 'job' });
          }
        }
        const cpu1 = pids.map(([, pid]) => cpuTicks(pid));
        const c1 = await s.counters();
        const rate = JOBS / (ms / 1000);
        const res = results.get(s.name);
        res.rates.push(rate);
        out(
          `\nround ${r + 1} ${s.name}: ${Math.round(rate).toLocaleString()} jobs/s end to end ` +
            `(${(ms / 1000).toFixed(2)} s; all submitted after ${(submitMs / 1000).toFixed(2)} s; load average ${la.toFixed(2)})`,
        );
        out(`  CPU: ${cpuReport(pids, cpu0, cpu1, ms / 1000, JOBS)}`);
        if (s.name === 'Gantry') {
          const d = natsDelta(c0, c1);
          res.broker.push(d);
          for (const line of brokerReport(d, JOBS)) out(`  ${line}`);
        } else {
          const calls = {};
          let total = 0;
          for (const [k, v] of Object.entries(c1)) {
            calls[k] = v - (c0[k] ?? 0);
            total += calls[k];
          }
          res.broker.push({ total, calls });
          out(
            `  Redis commands per job: ${perJob(total, JOBS)} — ${Object.entries(calls)
              .filter(([, v]) => v > 0)
              .sort((a, b) => b[1] - a[1])
              .slice(0, 8)
              .map(([k, v]) => `${k} ${perJob(v, JOBS)}`)
              .join(', ')}`,
          );
        }
      }
    }
    out('\n== dispatch gap with one token (finishedAt → next startedAt) ==');
    const gaps = new Map();
    for (const s of systems) {
      const bystander = startBystander();
      const gc0 = await s.gcPauses?.();
      const g = gapStats(await s.gaps(GAP_JOBS, GAP_MS));
      const gc1 = await s.gcPauses?.();
      const by = await bystander.stop();
      gaps.set(s.name, g);
      out(
        `  ${s.name}: ${GAP_JOBS} jobs of ${GAP_MS} ms: p50 ${g.p50} ms, p99 ${g.p99} ms, max ${g.max} ms` +
          (g.overlaps ? ` (${g.overlaps} overlaps: more than one running!)` : ''),
      );
      const ms = (x) => x.toFixed(1);
      out(
        `    meanwhile a bystander process on a 5 ms timer woke late by p50 ${ms(by.p50)} / p99 ${ms(by.p99)} / max ` +
          `${ms(by.max)} ms (${by.n} wake-ups; ${by.over5} over 5 ms late, ${by.over10} over 10 ms)`,
      );
      if (gc0 && gc1) {
        out(
          `    GC pauses meanwhile: ${Object.keys(gc1)
            .map((k) => {
              const d = (f) => gc1[k][f] - gc0[k][f];
              const kinds = Object.entries(gc1[k].over10ByKind)
                .map(([kind, n]) => [kind, n - (gc0[k].over10ByKind[kind] ?? 0)])
                .filter(([, n]) => n > 0)
                .map(([kind, n]) => `${n} ${kind}`);
              return (
                `${k} ${d('all')} (${d('over1')} over 1 ms, ${d('over10')} over 10 ms` +
                (kinds.length ? `: ${kinds.join(', ')}` : '') +
                ')'
              );
            })
            .join(', ')}`,
        );
      }
      if (g.parts) {
        const row = (what, xs) => `${what} p50 ${pct(xs, 50)} / p99 ${pct(xs, 99)} / max ${xs.at(-1)} ms`;
        out(
          `    split (${g.parts.outcome.length} gaps): ${row('outcome write', g.parts.outcome)}; ` +
            `${row('scheduler', g.parts.scheduler)}; ${row('worker start', g.parts.worker)}`,
        );
        out(
          `    the ${g.worst.length} longest gaps as [outcome write, scheduler, worker start] ms: ` +
            g.worst.map((w) => `${w.gap} = [${w.split.join(', ')}]`).join('; '),
        );
      }
    }
    const load1 = loadavg();
    out('\n== summary ==');
    const underLoad = load0[0] > cpus().length * 0.5;
    for (const s of systems) {
      const res = results.get(s.name);
      out(
        `  ${s.name.padEnd(7)} ${Math.round(median(res.rates)).toLocaleString().padStart(7)} jobs/s (median of ` +
          `${res.rates.length}: ${res.rates.map((x) => Math.round(x)).join(', ')}); dispatch gap p50 ${gaps.get(s.name).p50} ms, ` +
          `p99 ${gaps.get(s.name).p99} ms`,
      );
    }
    if (systems.length === 2) {
      const ratio = median(results.get('Gantry').rates) / median(results.get('BullMQ').rates);
      out(`  Gantry / BullMQ = ${ratio.toFixed(2)}× (measured rounds, warm)`);
      const g = cold.get('Gantry')[0];
      const b = cold.get('BullMQ')[0];
      if (g && b)
        out(`  cold, the first warm-up round of each: ${(g / b).toFixed(2)}× (${Math.round(g)} vs ${Math.round(b)})`);
    }
    out(
      `  load average at start ${load0[0].toFixed(2)}, at end ${load1[0].toFixed(2)} on ${cpus().length} CPUs` +
        (underLoad || load1[0] > cpus().length ? ' — figures taken UNDER LOAD (other work on the machine)' : ''),
    );
  } finally {
    await cleanup();
  }
  if (PROF_DIR && profWindows.length > 0) {
    // The services have stopped: their profiles are written.
    mkdirSync(PROF_DIR, { recursive: true });
    writeFileSync(join(PROF_DIR, 'windows.json'), JSON.stringify(profWindows, null, 2));
    out(`\n== CPU profiles of the measured rounds (${PROF_DIR}; node tools/bench/cpu-profile.mjs ${PROF_DIR}) ==`);
    out(profileReport(PROF_DIR, { top: Number(opt['cpu-prof-top']) }));
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`${err?.stack ?? err}\n`);
    process.exit(1);
  },
);
