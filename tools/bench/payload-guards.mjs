#!/usr/bin/env node
// Issue 16: what checking one job revision against the jobs channel's contract costs (libs/contracts/dist: the
// payload guards every service runs on every message it decodes — the scheduler's projection on every revision),
// beside what parsing its JSON costs. One process, no broker: ns per revision, a completed no-op job's revision.
//
//   node tools/gantry.mjs build && node tools/gantry.mjs bench payload-guards
import { createRequire } from 'node:module';
import { loadavg } from 'node:os';

const require = createRequire(import.meta.url);
const { newJob } = require('../../libs/contracts/dist/index.js');
const { jobEvent } = require('../../libs/contracts/dist/payload-guards.js');

const now = new Date();
const created = newJob(
  {
    id: '01KBXGUARDBENCH0000000000J',
    tenant: 'tenant-a',
    type: 'noop',
    input: { durationMs: 0 },
    priority: 'normal',
    pool: 'default',
    timeoutSeconds: 60,
    maxAttempts: 3,
    retryDelaysMs: [1_000, 5_000],
    metadata: { source: 'bench' },
  },
  now,
).record;
const at = now.toISOString();
const revision = {
  type: 'job.completed',
  timestamp: at,
  sequence: 3,
  generation: 1,
  job: {
    ...created,
    status: 'completed',
    attempts: 1,
    sequence: 3,
    startedAt: at,
    finishedAt: at,
    workerId: 'w1',
    gpus: [],
    gpuIndices: [],
  },
  started: { sequence: 2, timestamp: at, workerId: 'w1', gpus: [], gpuIndices: [] },
};
const text = JSON.stringify(revision);
const parsed = Array.from({ length: 1_000 }, () => JSON.parse(text));
jobEvent(parsed[0], ''); // throws if the sample breaks the contract

const N = 300_000;
const time = (fn) => {
  for (let i = 0; i < 20_000; i++) fn(i); // warm-up
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) fn(i);
  return Number(process.hrtime.bigint() - t0) / N;
};
const parseNs = time(() => JSON.parse(text));
const guardNs = time((i) => jobEvent(parsed[i % parsed.length], ''));
console.log(
  `load average ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')}`,
);
console.log(`a completed job's revision, ${text.length} bytes of JSON, ${N.toLocaleString()} times each:`);
console.log(`  JSON.parse             ${parseNs.toFixed(0)} ns`);
console.log(`  jobs channel's check   ${guardNs.toFixed(0)} ns`);
