#!/usr/bin/env node
// Scheduler scale benchmark (issue 4, invariant 5): memory with 1,000,000 queued jobs, dispatch rate at 1M vs 1k
// queued, and how soon an urgent job submitted behind 1M normal ones is dispatched.
//
//   npm run bench:scheduler                      # 1k and 1M phases (a few minutes on a 2-core box)
//   npm run bench:scheduler -- --jobs=200000     # a smaller "big" phase
//   npm run bench:scheduler -- --tenants=1000    # jobs spread over 1,000 tenants (default 4)
//   npm run bench:scheduler -- --job-bytes=65536 # every job padded to that JSON size (MAX_JOB_BYTES' default)
//   npm run bench:scheduler -- --urgent=20       # urgent jobs written behind the queue, one at a time (default 5)
//   npm run bench:scheduler -- --cpu-prof=DIR    # CPU profiles of both schedulers into DIR, with the measured windows
//                                                # (DIR/windows.json); `node tools/bench/cpu-profile.mjs DIR`
//                                                # prints the top self-time functions inside the windows only
//
// Setup (see docs/performance.md): a real nats-server (fresh store per phase); the queued job records are written
// straight to the jobs stream with @gantry/job-store (pipelined creates: the gateway's write path without HTTP); then
// the real scheduler process (apps/scheduler/dist/main.js) starts and rebuilds its state from the stream. Workers are
// minimal in-process consumers speaking the real protocol: they register heartbeats, own a durable dispatch
// consumer, take each dispatch with the compare-and-set `queued → running`, complete it at once with
// `running → completed`, then ack. Every completion submits a fresh normal job, so the queue depth stays where the
// phase put it and both phases put the same write load on the broker.
import { spawn } from 'node:child_process';
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  BUCKETS,
  CONFIG_KEYS,
  DEFAULT_TOPOLOGY,
  STREAMS,
  SUBJECTS,
  bucketDeclarations,
  completeAttempt,
  newId,
  newJob,
  startAttempt,
  streamDeclarations,
  systemClock,
  workerConsumer,
} from '@gantry/contracts';
import { NatsHandle, decodeJson, encodeJson, ensureConsumer, provision, rpcRequest } from '@gantry/jetstream';
import { JobStore } from '@gantry/job-store';
import { NatsServer, waitFor } from '@gantry/testing';
import { createLogger } from '@gantry/telemetry';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const args = Object.fromEntries(
  process.argv
    .slice(2)
    .map((a) => /^--([^=]+)=(.*)$/.exec(a))
    .filter(Boolean)
    .map((m) => [m[1], m[2]]),
);
const BIG = Number(args.jobs ?? 1_000_000);
const SMALL = Number(args.small ?? 1_000);
const WORKERS = Number(args.workers ?? 8);
const SLOTS = Number(args.slots ?? 8);
const WARMUP_MS = Number(args.warmup ?? 3_000);
const WINDOW_MS = Number(args.window ?? 10_000);
const ROUNDS = Number(args.rounds ?? 4);
const URGENT_SAMPLES = Number(args.urgent ?? 5);
// The scheduler runs with the Node options it ships with (see docs/performance.md); --node-options= overrides them.
// --cpu-prof=DIR adds V8's CPU profiler (written when the scheduler exits) and records the measured windows on the
// monotonic clock the profiles' timestamps use, so that the rebuild and the idle pauses can be left out.
const PROF_DIR = args['cpu-prof'] ? resolve(args['cpu-prof']) : undefined;
const NODE_OPTIONS =
  (args['node-options'] ?? '--max-semi-space-size=2 --max-old-space-size=128') +
  (PROF_DIR ? ` --cpu-prof --cpu-prof-dir=${PROF_DIR}` : '');
/** Measured windows per scheduler pid, in µs of the monotonic clock (CLOCK_MONOTONIC, as V8's profile timestamps). */
const windows = [];
const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);
const load = () =>
  loadavg()
    .map((l) => l.toFixed(1))
    .join(' ');
// --tenants=N spreads the jobs round-robin over N tenants (fair share ranks every tenant queued at a level).
const TENANTS = Array.from({ length: Number(args.tenants ?? 4) }, (_, i) => `t${i}`);
// --job-bytes=N pads every job's input so that its JSON (what the gateway checks against MAX_JOB_BYTES) is N bytes.
const JOB_BYTES = Number(args['job-bytes'] ?? 0);
let padding;
const logger = createLogger('bench', 'silent');
const out = (s = '') => process.stdout.write(`${s}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** What to stop when the run fails half-way (a nats-server with a 1 GB store, a scheduler), newest first. */
const cleanups = [];
/** The scheduler processes started, with their log lines: what they said last is printed when the run fails. */
const schedulers = [];
const mb = (bytes) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

function spec(priority = 'normal', i = 0) {
  const s = bareSpec(priority, i);
  if (JOB_BYTES > 0) {
    padding ??= 'x'.repeat(Math.max(0, JOB_BYTES - JSON.stringify({ ...s, input: { pad: '' } }).length));
    s.input = { pad: padding };
  }
  return s;
}

function bareSpec(priority, i) {
  return {
    id: newId(),
    tenant: TENANTS[i % TENANTS.length],
    type: 'noop',
    input: {},
    priority,
    pool: 'default',
    timeoutSeconds: 3_600,
    maxAttempts: 4,
    retryDelaysMs: [30_000, 120_000, 300_000],
    metadata: {},
  };
}

/** The `positions` RPC's request for one job record. */
function positionsAsk(r) {
  return {
    ids: [
      {
        id: r.id,
        pool: r.pool,
        priority: r.priority,
        tenant: r.tenant,
        queueSeq: r.queueSeq,
        enqueuedAt: r.enqueuedAt,
      },
    ],
  };
}

/** Writes `n` queued jobs with pipelined creates (a window of concurrent publishes). */
async function writeJobs(store, n, label) {
  const started = Date.now();
  let next = 0;
  let lastReport = started;
  const lane = async () => {
    while (next < n) {
      const i = next++;
      await store.create(newJob(spec('normal', i), new Date()));
      if (Date.now() - lastReport > 10_000) {
        lastReport = Date.now();
        out(`    ${label}: ${next.toLocaleString()} of ${n.toLocaleString()} written`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, 512) }, lane));
  return (Date.now() - started) / 1000;
}

function rssOf(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/** The real scheduler process; resolves once it leads. */
async function startScheduler(natsUrl) {
  const lines = [];
  const proc = spawn(process.execPath, [join(root, 'apps/scheduler/dist/main.js')], {
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME ?? '/tmp',
      NATS_URL: natsUrl,
      SCHEDULER_HTTP_PORT: '0',
      MAX_CONCURRENT_JOBS: String(WORKERS * SLOTS),
      MAX_QUEUE_SIZE: '100000000',
      STATS_INTERVAL_MS: '500',
      LOG_LEVEL: 'info',
      NODE_OPTIONS,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  cleanups.push(() => proc.kill('SIGKILL'));
  schedulers.push({ proc, lines });
  const onData = (b) => {
    // --log=<file>: the schedulers' log lines are appended there as well (to look into a run that stalls).
    if (args.log) appendFileSync(args.log, b);
    for (const l of b.toString().split('\n')) {
      if (!l.trim()) continue;
      try {
        lines.push(JSON.parse(l));
      } catch {
        lines.push({ msg: l });
      }
    }
  };
  proc.stdout.on('data', onData);
  proc.stderr.on('data', onData);
  const started = Date.now();
  let peak = 0;
  // What the process's memory is made of when its RSS is highest (heap vs buffers outside it), from its own metrics.
  let opsUrl;
  let atPeak;
  let sampling = false;
  const sampler = setInterval(() => {
    try {
      const rss = rssOf(proc.pid).rss;
      if (rss > peak && opsUrl && !sampling) {
        sampling = true;
        void memoryOf(opsUrl)
          .then((m) => (atPeak = { rss, ...m }))
          .catch(() => undefined)
          .finally(() => (sampling = false));
      }
      peak = Math.max(peak, rss);
    } catch {
      /* exited */
    }
  }, 200);
  const find = (msg) => lines.find((l) => l.msg === msg);
  // Every wait on the scheduler ends as soon as it exits: a scheduler that died during its rebuild is a failed run,
  // not something to poll past for half an hour (the test kit's waitFor retries a probe that throws).
  const exited = new Promise((_, reject) =>
    proc.once('exit', (code, signal) =>
      reject(
        new Error(
          `scheduler exited (${signal ?? `code ${code}`}): ${lines
            .slice(-8)
            .map((l) => (l.err ? `${l.msg} — ${l.err.message ?? JSON.stringify(l.err)}` : l.msg))
            .join(' | ')}`,
        ),
      ),
    ),
  );
  exited.catch(() => undefined);
  const alive = (p) => Promise.race([p, exited]);
  await alive(
    waitFor(() => find('leading'), { what: 'the scheduler to lead', timeoutMs: 30 * 60_000, intervalMs: 100 }),
  );
  const rebuilt = find('scheduler state rebuilt');
  opsUrl = String(find('scheduler ops endpoint listening').url);
  return {
    proc,
    lines,
    readyMs: Date.now() - started,
    rebuildMs: rebuilt?.ms ?? 0,
    // The rebuild consumer's creation (slow at 1M subjects): how long the attempt that succeeded took, if it was
    // slow enough to be logged, and how many attempts timed out before it.
    createMs: lines.find((l) => l.msg === 'slow consumer created')?.ms,
    createTimeouts: lines.filter((l) => String(l.msg).startsWith('creating the consumer timed out')).length,
    opsUrl: String(find('scheduler ops endpoint listening').url),
    peak: () => peak,
    atPeak: () => atPeak,
    alive,
    stop: async () => {
      clearInterval(sampler);
      proc.kill('SIGTERM');
      await new Promise((r) => (proc.exitCode !== null ? r() : proc.once('exit', r)));
    },
  };
}

/** The scheduler's heap and off-heap memory, from its process metrics. */
async function memoryOf(opsUrl) {
  const text = await (await fetch(`${opsUrl}/metrics`)).text();
  const v = (name) => Number(new RegExp(`^gantry_process_${name}(?:\\{[^}]*\\})? (\\S+)`, 'm').exec(text)?.[1] ?? NaN);
  return {
    heapUsed: v('nodejs_heap_size_used_bytes'),
    heapTotal: v('nodejs_heap_size_total_bytes'),
    external: v('nodejs_external_memory_bytes'),
  };
}

async function dispatchesTotal(opsUrl) {
  const text = await (await fetch(`${opsUrl}/metrics`)).text();
  let total = 0;
  for (const line of text.split('\n')) {
    const m = /^gantry_dispatches_total\{[^}]*\} (\d+(?:\.\d+)?)/.exec(line);
    if (m) total += Number(m[1]);
  }
  return total;
}

/** Minimal workers: real heartbeats, real dispatch consumers, real compare-and-set start and complete. */
async function startWorkers(nats, store, { refill }) {
  const kv = await nats.kvm.open(BUCKETS.workers);
  // `byJob`: the same dispatches by job id, so the urgent-job probes below look one up in O(1) every 2 ms instead of
  // scanning every dispatch of the run (hundreds of thousands) in the process that also plays the workers.
  const stats = { completed: 0, dispatches: [], byJob: new Map() };
  let stopped = false;
  const loops = [];
  const beats = [];
  for (let w = 0; w < WORKERS; w++) {
    const id = `bench-${w}-${newId().toLowerCase()}`;
    const decl = workerConsumer(id, SLOTS);
    await ensureConsumer(nats.jsm, decl);
    const heartbeat = () => {
      const now = new Date().toISOString();
      return kv.put(
        id,
        encodeJson({
          v: 1,
          id,
          pool: 'default',
          slots: SLOTS,
          slotsPerGpu: SLOTS,
          gpus: [],
          runningJobs: [],
          inflight: [],
          jobTypes: ['noop'],
          draining: false,
          startedAt: now,
          heartbeatAt: now,
          version: 'bench',
        }),
      );
    };
    await heartbeat();
    beats.push(setInterval(() => void heartbeat().catch(() => undefined), 1_000));
    const consumer = await nats.js.consumers.get(STREAMS.dispatch, decl.durable_name);
    const messages = await consumer.consume({ max_messages: SLOTS });
    loops.push(messages);
    void (async () => {
      for await (const m of messages) {
        const d = decodeJson(m.data);
        const seen = {
          jobId: d.jobId,
          seq: m.seq,
          dispatchedAt: Date.parse(d.dispatchedAt),
          // When the broker stored the dispatch (the dispatch is durable from then on): the scheduler's part ends here.
          storedAt: Math.floor(Number(m.info.timestampNanos) / 1e6),
          at: Date.now(),
        };
        stats.dispatches.push(seen);
        stats.byJob.set(d.jobId, seen);
        void (async () => {
          const owner = { workerId: id, generation: d.generation, attempt: d.attempt };
          try {
            await store.transition(d.jobId, (cur) =>
              startAttempt(cur.record, owner, { gpus: [], gpuIndices: [] }, new Date()),
            );
            await store.transition(d.jobId, (cur) => completeAttempt(cur.record, owner, {}, new Date()));
            stats.completed++;
            if (refill && !stopped) await store.create(newJob(spec('normal', stats.completed), new Date()));
          } catch {
            // stale dispatch (another attempt owns it): drop it
          }
          m.ack();
        })();
      }
    })();
  }
  return {
    stats,
    stop: async () => {
      stopped = true;
      for (const b of beats) clearInterval(b);
      for (const l of loops) await l.close().catch(() => undefined);
    },
  };
}

/** One system under test: its own nats-server (fresh store), `queued` jobs written, a scheduler and workers. */
async function setup(label, queued) {
  const storeDir = args[`store-${label}`];
  const server = await NatsServer.start(storeDir ? { storeDir, keepStore: true } : {});
  cleanups.push(() => server.dispose());
  const nats = await NatsHandle.connect({ servers: [server.url], name: `bench-${label}`, logger, timeoutMs: 30_000 });
  const s = streamDeclarations(DEFAULT_TOPOLOGY);
  const b = bucketDeclarations(DEFAULT_TOPOLOGY);
  await provision(nats, { streams: [s.jobs, s.dispatch, s.list, s.demand], buckets: [b.workers, b.leader, b.config] });
  const store = new JobStore(nats, systemClock);
  const rpc = (op, payload = {}) => rpcRequest(nats.nc, SUBJECTS.schedulerRpc(op), payload, { timeoutMs: 30_000 });
  if (!storeDir) {
    const writeSeconds = await writeJobs(store, queued, label);
    out(
      `  ${label}: wrote ${queued.toLocaleString()} job records in ${writeSeconds.toFixed(1)} s ` +
        `(${Math.round(queued / writeSeconds).toLocaleString()}/s)`,
    );
  }
  const info = await nats.jsm.streams.info(STREAMS.jobs);
  const sched = await startScheduler(server.url);
  const afterRebuild = rssOf(sched.proc.pid);
  // Hold dispatching until this setup's turn to be measured.
  await rpc('pause');
  // The leader also indexes the listing (GET /v1/jobs) from the stream; let it catch up before timing dispatch.
  const config = await nats.kvm.open(BUCKETS.config);
  const listStarted = Date.now();
  await sched.alive(
    waitFor(
      async () => {
        // Not `e && …`: without a checkpoint yet `get` gives null, which waitFor takes as done (only undefined and
        // false mean "not yet") — the wait used to end at once and the catch-up ran inside the measured windows.
        const e = await config.get(CONFIG_KEYS.listCheckpoint);
        return e !== null && Number(e.string()) >= info.state.last_seq;
      },
      { what: 'the listing index to catch up', timeoutMs: 60 * 60_000, intervalMs: 500 },
    ),
  );
  const listSeconds = (Date.now() - listStarted) / 1000;
  const workers = await startWorkers(nats, store, { refill: true });
  const depth = (await rpc('queue')).depth.total;
  out(
    `  ${label}: ${depth.toLocaleString()} queued (stream ${mb(info.state.bytes)}); scheduler rebuilt its state in ` +
      `${(sched.rebuildMs / 1000).toFixed(1)} s, led after ${(sched.readyMs / 1000).toFixed(1)} s, RSS ${mb(afterRebuild.rss)}; ` +
      `listing caught up ${listSeconds.toFixed(1)} s later` +
      (sched.createMs !== undefined || sched.createTimeouts > 0
        ? `; rebuild consumer created in ${((sched.createMs ?? 0) / 1000).toFixed(1)} s after ${sched.createTimeouts} timed-out attempt(s)`
        : ''),
  );
  return {
    label,
    queued,
    server,
    nats,
    store,
    sched,
    workers,
    rpc,
    idleRss: afterRebuild.rss,
    rates: [],
    cpu: [],
    gc: [],
  };
}

/** The scheduler's CPU seconds and its GC pause seconds (minor = scavenges, major = mark-compact) so far. */
async function cpuSeconds(opsUrl) {
  const text = await (await fetch(`${opsUrl}/metrics`)).text();
  const m = /^gantry_process_process_cpu_seconds_total\{[^}]*\} (\S+)/m.exec(text);
  const gc = (kind) =>
    Number(
      new RegExp(`^gantry_process_nodejs_gc_duration_seconds_sum\\{[^}]*kind="${kind}"[^}]*\\} (\\S+)`, 'm').exec(
        text,
      )?.[1] ?? 0,
    );
  const gcCount = (kind) =>
    Number(
      new RegExp(`^gantry_process_nodejs_gc_duration_seconds_count\\{[^}]*kind="${kind}"[^}]*\\} (\\S+)`, 'm').exec(
        text,
      )?.[1] ?? 0,
    );
  return {
    cpu: m ? Number(m[1]) : 0,
    minor: gc('minor'),
    // Incremental marking steps belong to the major collections they prepare.
    major: gc('major') + gc('incremental'),
    minorCount: gcCount('minor'),
    majorCount: gcCount('major'),
  };
}

/** One measurement window: resume, warm up, count dispatches, pause again. */
async function measure(x) {
  await x.rpc('resume');
  await sleep(WARMUP_MS);
  const d0 = await dispatchesTotal(x.sched.opsUrl);
  const c0 = await cpuSeconds(x.sched.opsUrl);
  const t0 = Date.now();
  const m0 = monotonicUs();
  await sleep(WINDOW_MS);
  const d1 = await dispatchesTotal(x.sched.opsUrl);
  const c1 = await cpuSeconds(x.sched.opsUrl);
  const seconds = (Date.now() - t0) / 1000;
  windows.push({ label: x.label, pid: x.sched.proc.pid, from: m0, to: monotonicUs(), dispatches: d1 - d0 });
  await x.rpc('pause');
  const rate = (d1 - d0) / seconds;
  const n = Math.max(1, d1 - d0);
  x.rates.push(rate);
  x.cpu.push(((c1.cpu - c0.cpu) / n) * 1e6);
  x.gc.push(((c1.minor + c1.major - c0.minor - c0.major) / n) * 1e6);
  const us = (k) => (((c1[k] - c0[k]) / n) * 1e6).toFixed(0);
  out(
    `  ${x.label}: ${Math.round(rate).toLocaleString()} dispatches/s ` +
      `(scheduler CPU ${x.cpu.at(-1).toFixed(0)} µs per dispatch, of it GC ${x.gc.at(-1).toFixed(0)} µs: ` +
      `${c1.minorCount - c0.minorCount} scavenges ${us('minor')} µs, ` +
      `${c1.majorCount - c0.majorCount} mark-compacts ${us('major')} µs; ` +
      `depth ${(await x.rpc('queue')).depth.total.toLocaleString()}; load average ${load()})`,
  );
}

/**
 * Urgent jobs written behind the queue while dispatching runs, one at a time (--urgent=N, default 5): how soon each is
 * dispatched after its acceptance (median and worst), how soon the scheduler knew it (it answered a position for it),
 * and whether any dispatch round that began after the scheduler knew the job still sent another job first.
 */
async function urgentBehind(x) {
  await x.rpc('resume');
  await sleep(WARMUP_MS);
  const samples = [];
  for (let i = 0; i < URGENT_SAMPLES; i++) {
    const m0 = monotonicUs();
    const u = await x.store.create(newJob(spec('urgent'), new Date()));
    const acceptedAt = Date.now();
    const r = u.record;
    const ask = positionsAsk(r);
    let knownAt;
    while (knownAt === undefined) {
      const pos = await x.rpc('positions', ask);
      if (pos.positions[r.id] || x.workers.stats.byJob.has(r.id)) knownAt = Date.now();
    }
    const got = await waitFor(() => x.workers.stats.byJob.get(r.id), {
      what: 'the urgent job to be dispatched',
      timeoutMs: 60_000,
      intervalMs: 2,
    });
    const jumped = x.workers.stats.dispatches.filter((d) => d.dispatchedAt >= knownAt && d.seq < got.seq).length;
    samples.push({
      latencyMs: got.at - acceptedAt,
      knownMs: knownAt - acceptedAt,
      decidedMs: got.dispatchedAt - acceptedAt,
      storedMs: got.storedAt - acceptedAt,
      jumped,
    });
    windows.push({ label: `${x.label}-urgent`, pid: x.sched.proc.pid, from: m0, to: monotonicUs() });
    await sleep(200);
  }
  await x.rpc('pause');
  const lat = samples.map((v) => v.latencyMs);
  x.urgent = {
    latencyMs: median(lat),
    maxMs: Math.max(...lat),
    knownMs: median(samples.map((v) => v.knownMs)),
    decidedMs: median(samples.map((v) => v.decidedMs)),
    storedMs: median(samples.map((v) => v.storedMs)),
    storedMaxMs: Math.max(...samples.map((v) => v.storedMs)),
    jumped: samples.reduce((a, v) => a + v.jumped, 0),
  };
  out(
    `  ${x.label}: ${samples.length} urgent jobs dispatched ${lat.join(', ')} ms after acceptance (median ` +
      `${x.urgent.latencyMs}, worst ${x.urgent.maxMs}); known to the scheduler after ${samples.map((v) => v.knownMs).join(', ')} ms; ` +
      `planned in a round begun (the dispatch's dispatchedAt) ${samples.map((v) => v.decidedMs).join(', ')} ms after acceptance; ` +
      `its dispatch stored in the stream ${samples.map((v) => v.storedMs).join(', ')} ms after acceptance; ` +
      `${x.urgent.jumped} dispatch(es) from rounds begun after one was known went out before it; load average ${load()}`,
  );
}

/** The exact position of a job written last, with dispatching paused and the queue at rest (nothing moves). */
async function tailPosition(x) {
  const rest = async () =>
    waitFor(
      async () => {
        const r = await x.rpc('queue');
        return r.running === 0 && r.availableTokens === r.maxConcurrentJobs ? r : undefined;
      },
      { what: 'the queue at rest', timeoutMs: 60_000 },
    );
  await rest();
  await sleep(1_000); // the workers' last refills land
  const tail = await x.store.create(newJob(spec('normal'), new Date()));
  await sleep(500);
  const q = await rest();
  const r = tail.record;
  const before = performance.now();
  const pos = await x.rpc('positions', positionsAsk(r));
  const ms = performance.now() - before;
  const got = pos.positions[r.id]?.queuePosition;
  // Fair share interleaves the tenants of a level by their decayed usage, so the job written last is not last in the
  // queue: it has every job of its own tenant ahead of it (FIFO within a tenant) and at most every other job. With one
  // tenant the range is the one exact answer, depth − 1.
  const [own] = await x.rpc('tenants', { tenant: r.tenant });
  const range = { lo: (own?.queued ?? 1) - 1, hi: q.depth.total - 1 };
  const ok = got !== undefined && got >= range.lo && got <= range.hi;
  x.position = { got, range, ok, ms };
  out(
    `  ${x.label}: queuePosition of the job written last ${got?.toLocaleString()} of ${q.depth.total.toLocaleString()} ` +
      `queued (${ok ? 'within' : 'OUTSIDE'} [${range.lo.toLocaleString()}, ${range.hi.toLocaleString()}]: its ` +
      `tenant's jobs ahead … every job ahead), answered in ${ms.toFixed(1)} ms`,
  );
}

async function teardown(x) {
  x.peakRss = x.sched.peak();
  x.atPeak = x.sched.atPeak();
  await x.workers.stop();
  await x.sched.stop();
  await x.nats.drain();
  await x.server.dispose();
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  out(
    `Gantry scheduler benchmark — node ${process.version}, ${WORKERS} workers × ${SLOTS} slots, ` +
      `${ROUNDS} alternating windows of ${WINDOW_MS / 1000} s each; scheduler NODE_OPTIONS="${NODE_OPTIONS}"; ` +
      `${TENANTS.length.toLocaleString()} tenants; jobs of ${JOB_BYTES > 0 ? `${JOB_BYTES.toLocaleString()} bytes` : 'minimal size'}`,
  );
  out(`load average ${load()}`);
  out('\n== setup ==');
  const small = await setup('small', SMALL);
  const big = await setup('big', BIG);
  out('\n== warm-up (not measured) ==');
  for (const x of [small, big]) {
    await x.rpc('resume');
    await sleep(WINDOW_MS);
    await x.rpc('pause');
  }
  out('\n== dispatch rate (windows in A B B A order, so load on the box affects both alike) ==');
  for (let r = 0; r < ROUNDS; r++) {
    for (const x of r % 2 === 0 ? [small, big] : [big, small]) await measure(x);
  }
  out('\n== urgent job and positions ==');
  for (const x of [small, big]) {
    await urgentBehind(x);
    await tailPosition(x);
  }
  await teardown(small);
  await teardown(big);
  if (PROF_DIR) {
    mkdirSync(PROF_DIR, { recursive: true });
    writeFileSync(join(PROF_DIR, 'windows.json'), JSON.stringify(windows, null, 2));
    out(`\n  CPU profiles and windows.json in ${PROF_DIR} (node tools/bench/cpu-profile.mjs ${PROF_DIR})`);
  }
  const rs = median(small.rates);
  const rb = median(big.rates);
  const ratio = rb / rs;
  const row = (name, a, b) => out(`  ${name.padEnd(30)}${String(a).padStart(14)}${String(b).padStart(14)}`);
  out('\n== summary ==');
  row('queued', small.queued.toLocaleString(), big.queued.toLocaleString());
  row('dispatches/s (median)', Math.round(rs), Math.round(rb));
  row('scheduler CPU µs/dispatch', median(small.cpu).toFixed(0), median(big.cpu).toFixed(0));
  row('  of it GC pauses µs/dispatch', median(small.gc).toFixed(0), median(big.gc).toFixed(0));
  row('scheduler RSS after rebuild', mb(small.idleRss), mb(big.idleRss));
  row('scheduler RSS peak', mb(small.peakRss), mb(big.peakRss));
  const part = (x, k) => (x.atPeak ? mb(x.atPeak[k]) : '?');
  row('  near the peak: RSS', part(small, 'rss'), part(big, 'rss'));
  row('    V8 heap used', part(small, 'heapUsed'), part(big, 'heapUsed'));
  row('    V8 heap total', part(small, 'heapTotal'), part(big, 'heapTotal'));
  row('    external (buffers)', part(small, 'external'), part(big, 'external'));
  row(
    'state rebuild',
    `${(small.sched.rebuildMs / 1000).toFixed(1)} s`,
    `${(big.sched.rebuildMs / 1000).toFixed(1)} s`,
  );
  row('urgent job dispatched after', `${small.urgent.latencyMs} ms`, `${big.urgent.latencyMs} ms`);
  row('  worst of them', `${small.urgent.maxMs} ms`, `${big.urgent.maxMs} ms`);
  row('  its round begun after (median)', `${small.urgent.decidedMs} ms`, `${big.urgent.decidedMs} ms`);
  row('  its dispatch stored after (median)', `${small.urgent.storedMs} ms`, `${big.urgent.storedMs} ms`);
  row('    worst of them', `${small.urgent.storedMaxMs} ms`, `${big.urgent.storedMaxMs} ms`);
  row('  later rounds that sent another first', small.urgent.jumped, big.urgent.jumped);
  row(
    'queuePosition of the last job',
    small.position.ok ? 'in range' : 'WRONG',
    big.position.ok ? 'in range' : 'WRONG',
  );
  out(
    `\n  dispatch rate at ${big.queued.toLocaleString()} queued = ${(ratio * 100).toFixed(1)} % of the rate at ` +
      `${small.queued.toLocaleString()} (${Math.abs(1 - ratio) <= 0.2 ? 'within' : 'NOT within'} 20 %)`,
  );
  out(
    `  scheduler memory with ${big.queued.toLocaleString()} queued: peak RSS ${mb(big.peakRss)} ` +
      `(${big.peakRss < 256 * 1024 * 1024 ? 'under' : 'NOT under'} 256 MB)`,
  );
  process.exit(0);
}

main().catch(async (err) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  for (const { proc, lines } of schedulers) {
    const state = proc.exitCode ?? proc.signalCode ?? 'running';
    process.stderr.write(`scheduler ${proc.pid} (${state}), last lines:\n`);
    for (const l of lines.slice(-8)) process.stderr.write(`  ${JSON.stringify(l).slice(0, 400)}\n`);
  }
  for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => undefined);
  process.exit(1);
});
