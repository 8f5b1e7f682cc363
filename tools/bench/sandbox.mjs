#!/usr/bin/env node
// Start-up cost of the job sandbox: the same short job process (`true`, then `ffmpeg -version`) run RUNS times bare
// and RUNS times inside the worker's bubblewrap sandbox (the argv the worker builds: setpriv to a slot uid when root,
// every namespace, read-only root, rlimits). Prints the median and p90 wall time of each and the difference per
// attempt. Needs the built worker (`node tools/gantry.mjs build`).
//
//   node tools/gantry.mjs bench sandbox          # RUNS=40
//   RUNS=100 node tools/gantry.mjs bench sandbox
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const require = createRequire(import.meta.url);
const { Sandbox, runQuick } = require('../../apps/gpu-worker/dist/sandbox/sandbox.js');

const RUNS = Number(process.env.RUNS ?? 40);

function stats(ms) {
  const s = [...ms].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)], p90: s[Math.floor(s.length * 0.9)] };
}

async function time(wrapped, cwd) {
  const t = process.hrtime.bigint();
  const r = await runQuick(wrapped, cwd);
  if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderr}`);
  return Number(process.hrtime.bigint() - t) / 1e6;
}

const root = mkdtempSync(join(tmpdir(), 'gantry-bench-sandbox-'));
try {
  const sandbox = await Sandbox.create(
    {
      mode: 'bwrap',
      bwrap: 'bwrap',
      uidBase: 50_000,
      slots: 1,
      maxOpenFiles: 4096,
      maxProcesses: 512,
      maxFileBytes: 1 << 30,
      shmBytes: 64 << 20,
    },
    root,
  );
  const slot = sandbox.acquire();
  const scratch = join(root, 'attempt');
  mkdirSync(scratch);
  await sandbox.prepareScratch(scratch, slot);
  console.log(
    `sandbox: ${sandbox.privileged ? 'root worker, per-slot uid' : 'unprivileged worker'}; ${RUNS} runs each`,
  );
  for (const [command, args] of [
    ['true', []],
    ['ffmpeg', ['-hide_banner', '-version']],
  ]) {
    const bare = { command, args, env: { PATH: process.env.PATH } };
    const boxed = await sandbox.wrap(
      { command, args, scratchDir: scratch, env: {}, gpuIndices: [], network: false, readOnly: [] },
      slot,
    );
    await time(bare, scratch);
    await time(boxed, scratch); // warm the page cache for both
    const a = [];
    const b = [];
    for (let i = 0; i < RUNS; i++) {
      a.push(await time(bare, scratch));
      b.push(await time(boxed, scratch));
    }
    const sa = stats(a);
    const sb = stats(b);
    console.log(
      `${command.padEnd(7)} bare median ${sa.median.toFixed(1)} ms (p90 ${sa.p90.toFixed(1)}) · sandboxed median ` +
        `${sb.median.toFixed(1)} ms (p90 ${sb.p90.toFixed(1)}) · cost per start ≈ ${(sb.median - sa.median).toFixed(1)} ms`,
    );
  }
  slot.release();
} finally {
  rmSync(root, { recursive: true, force: true });
}
