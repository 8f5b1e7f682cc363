#!/usr/bin/env node
// Issue 17: the scheduler's memory for N scheduled (delayed) jobs and N waiting ones (dependsOn) against N queued ones
// — the same revisions applied to the real SchedulerState (apps/scheduler/dist), measured after full collections
// (heap + typed arrays). Waiting jobs in two shapes: pipelines (each child waits for its own parent, the worst case
// for the parent → children edges) and fan-out (1,000 parents with N/1,000 children each); 1 in 4 children has two
// parents. The parents themselves are not in the state (their own cost is that of queued jobs).
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

/** `kind`: 'queued' | 'scheduled' | 'pipelines' | 'fanout'. */
async function measure(kind) {
  const before = await settledBytes();
  const state = new SchedulerState(4, undefined, {});
  // Parent ids as the gateway mints them (the fan-out's shared by many children, each a string of its own as parsed).
  const fanParents = Array.from({ length: 1_000 }, () => newId());
  for (let i = 1; i <= N; i++) {
    const runAt =
      kind === 'scheduled' ? new Date(now.getTime() + 60_000 + (i % 86_400) * 1_000).toISOString() : undefined;
    let dependsOn;
    if (kind === 'pipelines') dependsOn = i % 4 === 0 ? [newId(), newId()] : [newId()];
    if (kind === 'fanout') {
      const p = fanParents[i % 1_000];
      dependsOn = i % 4 === 0 ? [p, fanParents[(i + 1) % 1_000]] : [p];
    }
    const t = newJob({ ...spec, id: newId(), ...(runAt ? { runAt } : {}), ...(dependsOn ? { dependsOn } : {}) }, now);
    const ev = toEvent(t, now);
    // Through JSON like a revision read from the stream: every string is the record's own.
    const record = normalizeRecord(JSON.parse(JSON.stringify(ev.job)), i);
    state.apply({ record, revision: i, event: { ...ev, job: record } }, false);
  }
  const bytes = (await settledBytes()) - before;
  const held =
    kind === 'scheduled' ? state.scheduled.size : kind === 'queued' ? state.index.size : state.dependencies.size;
  if (held !== N) throw new Error(`expected ${N} ${kind} jobs held, got ${held}`);
  return bytes / N;
}

const kinds = ['queued', 'scheduled', 'pipelines', 'fanout'];
const out = {};
for (const k of kinds) out[k] = await measure(k);
process.stdout.write(
  `${N.toLocaleString()} jobs in the scheduler state (bytes/job): queued ${out.queued.toFixed(1)}, ` +
    `scheduled ${out.scheduled.toFixed(1)}, waiting ${out.pipelines.toFixed(1)} (pipelines: a parent each) / ` +
    `${out.fanout.toFixed(1)} (fan-out: 1,000 parents)\n`,
);
