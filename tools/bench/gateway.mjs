#!/usr/bin/env node
// `npm run bench:gateway`: submit latency of POST /v1/jobs (answered after the durable publish) at a fixed rate, with
// the whole system running on this machine: nats-server (JetStream, file storage), the S3-compatible store, the
// scheduler, a worker, the notifier and the gateway as real processes, plus this load generator.
//
// Open loop: request i is due at start + i / rate whatever happened to earlier ones, so a slow answer cannot hide the
// queueing it causes (no coordinated omission). Latency is measured from the due time ("from schedule") and from the
// moment the request was written ("service"). Prints p50/p90/p99/p99.9/max, the achieved rate, every status seen,
// and the CPU each process used during the measurement, to show what bounds the figures.
//
//   npm run bench:gateway -- [--rate 500] [--duration 30] [--warmup 40] [--only-gateway | --paused] [--idempotency]
//                            [--profile-dir /tmp/prof] [--list-rate 20] [--batch 1000]
//                            [--gateway-node-options=--max-semi-space-size=32]
// --batch N posts POST /v1/batches of N jobs instead (the rate stays in jobs/s: a batch is due every N / rate s) and
// prints jobs/s and the gateway's CPU per accepted job besides each batch's latency; with the whole system running
// the jobs it is bound by how fast they run, so profile the gateway's own cost with --paused or --only-gateway.
// --list-rate adds GET /v1/jobs?limit=50 at that rate during the measurement (each one syncs the listing index with
// the leader), to show what listing traffic costs submits; its own latency is printed too.
// The scheduler runs with the heap settings docker-compose.yml ships (tools/bench/service-flags.mjs).
// --warmup S: seconds of the same load before the measurement, unmeasured. 40 s (20,000 submits at 500/s) because every
// process here is a Node process whose cost per job keeps falling for the first ~20,000 jobs (the JIT's later tiers,
// the heap's sizing); with the 5 s used until 3 December 2026 the measurement was mostly cold code (the gateway's CPU
// per submit 654 µs cold, 529–544 µs warm, the same hour). docs/performance.md, "Warm, not cold".
import { Agent, request } from 'node:http';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { NatsServer, S3Server, ServiceProcess, freePort } from '@gantry/testing';
import { brokerReport, natsCounters, natsDelta } from './broker-counters.mjs';
import { CLK_TCK, cpuTicks } from './proc-cpu.mjs';
import { schedulerNodeArgs } from './service-flags.mjs';

const { values: opt } = parseArgs({
  options: {
    rate: { type: 'string', default: '500' },
    duration: { type: 'string', default: '30' },
    warmup: { type: 'string', default: '40' },
    'only-gateway': { type: 'boolean', default: false },
    idempotency: { type: 'boolean', default: false },
    'list-rate': { type: 'string', default: '0' },
    /** Submit POST /v1/batches of this many jobs (the rate stays in jobs/s). */
    batch: { type: 'string', default: '0' },
    /** Pause the queue first: jobs are accepted and queued but not run (isolates the cost of running them). */
    paused: { type: 'boolean', default: false },
    /** NODE_OPTIONS for the gateway (e.g. "--max-semi-space-size=32"), to try V8 settings. */
    'gateway-node-options': { type: 'string' },
    /** Write V8 CPU profiles into this directory (open them in Chrome DevTools). */
    'profile-dir': { type: 'string' },
    /** Which processes to profile with --profile-dir: comma-separated (default gateway). */
    profile: { type: 'string', default: 'gateway' },
  },
});
const RATE = Number(opt.rate);
const DURATION_S = Number(opt.duration);
const WARMUP_S = Number(opt.warmup);
const LIST_RATE = Number(opt['list-rate']);
const BATCH = Number(opt.batch);
/** Jobs per request (1 for POST /v1/jobs). */
const PER_REQUEST = BATCH > 0 ? BATCH : 1;
const KEY = 'bench-client-key-0001';
const say = (m) => process.stderr.write(`[bench] ${m}\n`);

/** A few of the gateway's own process metrics: event-loop lag and time spent in GC. */
async function gatewayProcess(origin) {
  const text = await (await fetch(`${origin}/metrics`)).text();
  const value = (re) => {
    let sum = 0;
    for (const m of text.matchAll(re)) sum += Number(m[1]);
    return sum;
  };
  return {
    lagP99: value(/^gantry_process_nodejs_eventloop_lag_p99_seconds\{[^}]*\} (\S+)$/gm),
    lagMax: value(/^gantry_process_nodejs_eventloop_lag_max_seconds\{[^}]*\} (\S+)$/gm),
    gcSeconds: value(/^gantry_process_nodejs_gc_duration_seconds_sum\{[^}]*\} (\S+)$/gm),
  };
}

function pct(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function main() {
  const monitorPort = await freePort();
  const monitor = `http://127.0.0.1:${monitorPort}`;
  const nats = await NatsServer.start({ monitorPort });
  const s3 = await S3Server.start();
  const env = {
    NATS_URL: nats.url,
    ...s3.env(),
    API_KEYS: `${KEY}:client,bench-admin-key-0001:admin`,
    RATE_LIMIT_SUBMITS_PER_MINUTE: '10000000',
    MAX_QUEUE_SIZE: '10000000',
    GATEWAY_PORT: '0',
    SCHEDULER_HTTP_PORT: '0',
    WORKER_HTTP_PORT: '0',
    NOTIFIER_HTTP_PORT: '0',
    GPU_DISCOVERY: 'false',
    WORKER_SLOTS: '8',
    // The worker's NATS connection is named after its id: this prefix lets the broker's per-component counts name it.
    WORKER_ID_PREFIX: 'gpu-worker',
    MAX_CONCURRENT_JOBS: '8',
    LOG_LEVEL: 'warn',
  };
  const services = [];
  // Node options, not NODE_OPTIONS: Node 20 refuses --cpu-prof there.
  const prof = (name) =>
    opt['profile-dir'] && opt.profile.split(',').includes(name)
      ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${opt['profile-dir']}`, `--cpu-prof-name=${name}.cpuprofile`] }
      : {};
  const schedulerOptions = () => ({ nodeArgs: [...schedulerNodeArgs(), ...(prof('scheduler').nodeArgs ?? [])] });
  const stop = async () => {
    await Promise.all(services.map((s) => s.kill('SIGTERM', 15_000).catch(() => s.kill('SIGKILL').catch(() => {}))));
    await s3.stop().catch(() => {});
    await nats.dispose().catch(() => {});
  };
  process.on('SIGINT', () => void stop().then(() => process.exit(130)));
  try {
    if (!opt['only-gateway']) {
      for (const name of ['scheduler', 'gpu-worker', 'notifier'])
        services.push(new ServiceProcess(name, env, name === 'scheduler' ? schedulerOptions() : prof(name)).start());
    }
    // The gateway logs its URL at info.
    const gw = new ServiceProcess(
      'gateway',
      {
        ...env,
        LOG_LEVEL: 'info',
        ...(opt['gateway-node-options'] ? { NODE_OPTIONS: opt['gateway-node-options'] } : {}),
      },
      prof('gateway'),
    ).start();
    services.push(gw);
    const line = await gw
      .waitForLog((l) => l.msg === 'gateway listening', { timeoutMs: 120_000 })
      .catch((err) => {
        throw new Error(`${err.message}\n${gw.tail(20)}`);
      });
    const base = new URL(String(line.url).replace('[::1]', '127.0.0.1'));
    await gw.waitForHttp(`${base.origin}/readyz`, { timeoutMs: 120_000 });
    if (!opt['only-gateway']) {
      // Wait for the worker to register (the scheduler answers /v1/workers).
      for (let i = 0; i < 200; i++) {
        const r = await fetch(`${base.origin}/v1/workers`, { headers: { authorization: `Bearer ${KEY}` } }).catch(
          () => null,
        );
        if (r?.status === 200 && (await r.json()).length > 0) break;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    if (opt.paused) {
      const r = await fetch(`${base.origin}/v1/queue/pause`, {
        method: 'POST',
        headers: { authorization: 'Bearer bench-admin-key-0001' },
      });
      if (r.status !== 200) throw new Error(`pause answered ${r.status}`);
    }
    say(
      `system up: nats-server ${nats.pid}, ${services.map((s) => `${s.name} ${s.pid}`).join(', ')}; ` +
        `${cpus().length} CPU(s); rate ${RATE}/s, warmup ${WARMUP_S} s, measured ${DURATION_S} s`,
    );

    const agent = new Agent({ keepAlive: true, maxSockets: 256 });
    const job = { type: 'noop', input: { durationMs: 0 } };
    const body = JSON.stringify(BATCH > 0 ? { jobs: Array.from({ length: BATCH }, () => job) } : job);
    const path = BATCH > 0 ? '/v1/batches' : '/v1/jobs';
    let seq = 0;
    const submit = () =>
      new Promise((resolve) => {
        const written = performance.now();
        const headers = {
          authorization: `Bearer ${KEY}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
        };
        if (opt.idempotency) headers['idempotency-key'] = `bench-${process.pid}-${seq++}`;
        const req = request({ host: base.hostname, port: base.port, path, method: 'POST', agent, headers }, (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode, written, done: performance.now() }));
        });
        req.on('error', () => resolve({ status: 0, written, done: performance.now() }));
        req.end(body);
      });

    /** Runs the open loop for `seconds`; returns per-request samples. */
    async function run(seconds) {
      const n = Math.max(1, Math.round((seconds * RATE) / PER_REQUEST));
      const start = performance.now() + 20;
      const pending = [];
      for (let i = 0; i < n; i++) {
        const due = start + (i * 1000 * PER_REQUEST) / RATE;
        // Sleep until due (no spinning: this box is shared with the system under test). Timers have 1 ms
        // granularity: one firing up to 1 ms early sends early (measured from the send); one firing late is measured
        // from the due time, so the generator's own lateness counts against the figures, never for them.
        const wait = due - performance.now();
        if (wait >= 1) await new Promise((r) => setTimeout(r, Math.floor(wait)));
        pending.push(submit().then((r) => ({ ...r, due })));
      }
      const samples = await Promise.all(pending);
      return { samples, elapsed: Math.max(...samples.map((s) => s.done)) - start };
    }

    /** GET /v1/jobs at LIST_RATE until `until` resolves; returns the latencies of 200 answers and every status. */
    async function listLoad(until) {
      const latencies = [];
      const statuses = {};
      let done = false;
      void until.then(() => (done = true));
      const pending = [];
      while (!done && LIST_RATE > 0) {
        const t0 = performance.now();
        pending.push(
          fetch(`${base.origin}/v1/jobs?limit=50`, { headers: { authorization: `Bearer ${KEY}` } })
            .then(async (r) => {
              await r.arrayBuffer();
              statuses[r.status] = (statuses[r.status] ?? 0) + 1;
              if (r.status === 200) latencies.push(performance.now() - t0);
            })
            .catch(() => (statuses[0] = (statuses[0] ?? 0) + 1)),
        );
        await new Promise((r) => setTimeout(r, 1000 / LIST_RATE));
      }
      await Promise.all(pending);
      return { latencies: latencies.sort((a, b) => a - b), statuses };
    }

    say('warming up…');
    await run(WARMUP_S);
    const pids = [['nats-server', nats.pid], ...services.map((s) => [s.name, s.pid]), ['load generator', process.pid]];
    const before = pids.map(([, pid]) => cpuTicks(pid));
    const loadBefore = loadavg()[0];
    const gwBefore = await gatewayProcess(base.origin);
    const brokerBefore = await natsCounters(monitor);
    say('measuring…');
    const measured = run(DURATION_S);
    const listing = listLoad(measured);
    const { samples, elapsed } = await measured;
    const lists = await listing;
    const after = pids.map(([, pid]) => cpuTicks(pid));
    const gwAfter = await gatewayProcess(base.origin);
    const broker = natsDelta(brokerBefore, await natsCounters(monitor));

    const statuses = {};
    for (const s of samples) statuses[s.status] = (statuses[s.status] ?? 0) + 1;
    const ok = samples.filter((s) => s.status === 202);
    const fromDue = ok.map((s) => s.done - Math.min(s.due, s.written)).sort((a, b) => a - b);
    const service = ok.map((s) => s.done - s.written).sort((a, b) => a - b);
    const row = (name, xs) =>
      `${name.padEnd(14)} p50 ${pct(xs, 50).toFixed(2)} ms  p90 ${pct(xs, 90).toFixed(2)} ms  p99 ${pct(xs, 99).toFixed(2)} ms  ` +
      `p99.9 ${pct(xs, 99.9).toFixed(2)} ms  max ${xs[xs.length - 1].toFixed(2)} ms`;
    const cpuOf = (name) => {
      const i = pids.findIndex(([n]) => n === name);
      return i < 0 ? NaN : ((after[i] - before[i]) / CLK_TCK) * 1e6; // µs
    };
    const jobs = ok.length * PER_REQUEST;
    const lines = [
      `${BATCH > 0 ? `POST /v1/batches of ${BATCH} jobs` : 'POST /v1/jobs'} at ${RATE} jobs/s for ${DURATION_S} s (${opt['only-gateway'] ? 'nats-server + gateway only' : opt.paused ? 'whole system, queue paused' : 'whole system, every job run'}${opt.idempotency ? ', with Idempotency-Key' : ''})`,
      `requests ${samples.length}, accepted ${ok.length}, statuses ${JSON.stringify(statuses)}`,
      `achieved ${((jobs / elapsed) * 1000).toFixed(1)} jobs/s` +
        (BATCH > 0 ? ` (${((ok.length / elapsed) * 1000).toFixed(2)} batches/s)` : ''),
      `gateway CPU per accepted job: ${(cpuOf('gateway') / jobs).toFixed(0)} µs; nats-server: ${(cpuOf('nats-server') / jobs).toFixed(0)} µs`,
      row('from schedule', fromDue),
      row('service', service),
      ...(LIST_RATE > 0
        ? [
            `with GET /v1/jobs?limit=50 at ${LIST_RATE}/s alongside: statuses ${JSON.stringify(lists.statuses)}`,
            row('listing', lists.latencies),
          ]
        : []),
      ...brokerReport(broker, jobs),
      `CPU during the measurement (% of one core): ${pids
        .map(([name], i) => `${name} ${(((after[i] - before[i]) / CLK_TCK / (elapsed / 1000)) * 100).toFixed(0)}%`)
        .join(', ')}`,
      `gateway process: event-loop lag p99 ${(gwAfter.lagP99 * 1000).toFixed(1)} ms, max ${(gwAfter.lagMax * 1000).toFixed(1)} ms ` +
        `(since start, sampling interval of 10 ms included); GC ${(((gwAfter.gcSeconds - gwBefore.gcSeconds) / (elapsed / 1000)) * 100).toFixed(1)}% of the time`,
      // Other work on a shared machine shows in the load average (this benchmark alone adds about 2 to it).
      `machine: ${cpus().length} CPUs, 1-minute load average ${loadBefore.toFixed(1)} before and ${loadavg()[0].toFixed(1)} after`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    if (BATCH === 0) {
      const target = pct(fromDue, 99) <= 10 ? 'met' : 'MISSED';
      process.stdout.write(`target p99 ≤ 10 ms: ${target}\n`);
    }
  } finally {
    await stop();
  }
}

main().catch((err) => {
  process.stderr.write(`${err?.stack ?? err}\n`);
  process.exit(1);
});
