#!/usr/bin/env node
// Fair-share cost in the scheduler's own state (issue 15): memory of the queue state and the cost of one dispatch
// decision and one queue position with N queued jobs spread over 1 … T tenants, in-process on the built domain
// classes (apps/scheduler/dist/domain) — the same code the scheduler process runs, without NATS around it, so the
// figures isolate what the number of tenants changes. The whole-process figure at 1M queued is bench:scheduler's
// (`--tenants=` spreads its jobs over that many tenants).
//
//   npm run bench:fair-share                         # 1,000,000 jobs over 1, 4 and 1,000 tenants
//   npm run bench:fair-share -- --jobs=200000 --tenants=1,1000
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createRequire } from 'node:module';
import { newId } from '@gantry/contracts';

const require = createRequire(import.meta.url);
const { SchedulerState } = require('../../apps/scheduler/dist/domain/scheduler-state.js');
const { FairShare } = require('../../apps/scheduler/dist/domain/fair-share.js');
const { planDispatch } = require('../../apps/scheduler/dist/domain/dispatch-plan.js');

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc');
const args = Object.fromEntries(
  process.argv
    .slice(2)
    .map((a) => /^--([^=]+)=(.*)$/.exec(a))
    .filter(Boolean)
    .map((m) => [m[1], m[2]]),
);
const JOBS = Number(args.jobs ?? 1_000_000);
const TENANTS = String(args.tenants ?? '1,4,1000')
  .split(',')
  .map(Number);
const TOKENS = 64;
const ROUNDS = Number(args.rounds ?? 200);
const out = (s = '') => process.stdout.write(`${s}\n`);
const mb = (b) => `${(b / 1024 / 1024).toFixed(1)} MB`;

function used() {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

function phase(tenants) {
  const before = used();
  let now = Date.parse('2030-01-01T00:00:00Z');
  const state = new SchedulerState(TOKENS, undefined, {}, new FairShare({}, 300, () => now));
  for (let w = 0; w < 8; w++) {
    state.capacity.upsertWorker({ id: `w${w}`, pool: 'default', slots: 8, slotsPerGpu: 1, gpus: [], draining: false });
    state.capacity.setReady(`w${w}`, true);
  }
  const t0 = Date.now();
  for (let i = 0; i < JOBS; i++) {
    state.index.add('default', `t${i % tenants}`, 2, {
      seq: i + 1,
      id: newId(),
      enqueuedAt: now,
      gpuCount: 0,
      gpuMemoryMb: 0,
      generation: 1,
      attempts: 0,
    });
  }
  const fill = Date.now() - t0;
  const bytes = used() - before;
  // Dispatch: every round fills the 64 tokens one decision at a time, then gives them all back (1 s later). The same
  // scan with a constant rank (the order FIFO between tenants would give) isolates what ranking costs.
  const unplaceable = new Set();
  const timed = (rank) => {
    let decisions = 0;
    const t1 = process.hrtime.bigint();
    for (let r = 0; r < ROUNDS; r++) {
      const d = planDispatch(state, { now, agingMs: 0, limit: TOKENS, unplaceable, ...(rank ? { rank } : {}) });
      decisions += d.length;
      now += 1_000;
      for (const x of d) state.releaseHolding(x.candidate.entry.id);
    }
    return Number(process.hrtime.bigint() - t1) / 1e3 / decisions;
  };
  const flat = [0, 0];
  const fifo = timed(() => flat);
  const perDecision = timed();
  // Position of the last job (the most expensive: every tenant's set is searched).
  const last = [...state.index.all()].at(-1);
  const t2 = process.hrtime.bigint();
  const pos = state.index.position('default', last.tenant, last.level, last.entry.seq, now, 0, state.fair);
  const posMs = Number(process.hrtime.bigint() - t2) / 1e6;
  out(
    `| ${tenants.toLocaleString()} | ${mb(bytes)} (${(bytes / JOBS).toFixed(1)} B/job) | ${fill} ms | ` +
      `${perDecision.toFixed(1)} µs (${fifo.toFixed(1)} µs unranked) | ${posMs.toFixed(1)} ms (position ${pos.toLocaleString()}) |`,
  );
  return state;
}

out(`Fair-share state benchmark — node ${process.version}, ${JOBS.toLocaleString()} queued, ${TOKENS} tokens`);
out();
out('| tenants | queue state memory | fill | per dispatch decision | last job position |');
out('|---:|---:|---:|---:|---:|');
for (const t of TENANTS) phase(t);
