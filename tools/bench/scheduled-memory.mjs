#!/usr/bin/env node
// Issue 17: the scheduler's memory for N scheduled (delayed) jobs against N queued ones — the same revisions applied
// to the real SchedulerState (apps/scheduler/dist), measured after full collections (heap + typed arrays).
//
//   node tools/gantry.mjs bench scheduled-memory                # 1,000,000 of each
//   node tools/gantry.mjs bench scheduled-memory --jobs=200000
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createRequire } from 'node:module';
import { newId, newJob, normalizeRecord, toEvent } from '@gantry/contracts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc');
const require = createRequire(import.meta.url);
const { SchedulerState } = require('../../apps/scheduler/dist/domain/scheduler-state.js');

const arg = process.argv.find((a) => a.startsWith('--jobs='));
const N = arg ? Number(arg.slice('--jobs='.length)) : 1_000_000;
const now = new Date();
const spec = {
  tenant: 't0',
  type: 'noop',
  input: {},
  priority: 'normal',
  pool: 'default',
  timeoutSeconds: 60,
  maxAttempts: 3,
  retryDelaysMs: [1_000],
  metadata: {},
};

async function settledBytes() {
  // Old typed-array buffers are released after the collection that finds them: collect until it settles.
  for (let i = 0; i < 5; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 100));
  }
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

async function measure(scheduled) {
  const before = await settledBytes();
  const state = new SchedulerState(4, undefined, {});
  for (let i = 1; i <= N; i++) {
    const runAt = scheduled ? new Date(now.getTime() + 60_000 + (i % 86_400) * 1_000).toISOString() : undefined;
    const t = newJob({ ...spec, id: newId(), ...(runAt ? { runAt } : {}) }, now);
    const ev = toEvent(t, now);
    const record = normalizeRecord(ev.job, i);
    state.apply({ record, revision: i, event: { ...ev, job: record } }, false);
  }
  const bytes = (await settledBytes()) - before;
  const held = scheduled ? state.scheduled.size : state.index.size;
  if (held !== N) throw new Error(`expected ${N} jobs held, got ${held}`);
  return bytes / N;
}

const queued = await measure(false);
const scheduled = await measure(true);
process.stdout.write(
  `${N.toLocaleString()} jobs in the scheduler state: queued ${queued.toFixed(1)} bytes/job, ` +
    `scheduled ${scheduled.toFixed(1)} bytes/job\n`,
);
