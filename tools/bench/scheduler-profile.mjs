#!/usr/bin/env node
// Top self-time functions of the schedulers' CPU profiles, counted only inside the windows the scheduler bench
// measured (so that the rebuild, the listing catch-up and the paused stretches do not blur the comparison).
//
//   npm run bench:scheduler -- --jobs=200000 --cpu-prof=/tmp/prof
//   node tools/bench/scheduler-profile.mjs /tmp/prof [--top=25]
//
// The bench writes DIR/windows.json: per window the scheduler's pid and its start and end in µs of CLOCK_MONOTONIC,
// the clock of V8's profile timestamps; each profile (CPU.<date>.<pid>.….cpuprofile) is matched to its windows by pid.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2];
if (!dir) {
  process.stderr.write('usage: scheduler-profile.mjs DIR [--top=N]\n');
  process.exit(2);
}
const TOP = Number(/^--top=(\d+)$/.exec(process.argv[3] ?? '')?.[1] ?? 25);
const windows = JSON.parse(readFileSync(join(dir, 'windows.json'), 'utf8'));

for (const file of readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))) {
  const pid = Number(/^CPU\.\d+\.\d+\.(\d+)\./.exec(file)?.[1]);
  const mine = windows.filter((w) => w.pid === pid);
  if (mine.length === 0) continue;
  const profile = JSON.parse(readFileSync(join(dir, file), 'utf8'));
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  for (const group of groupsOf(mine)) {
    const self = new Map();
    /** Time with the function anywhere on the stack (each function once per sample). */
    const inclusive = new Map();
    let total = 0;
    let idle = 0;
    let t = profile.startTime;
    for (let i = 0; i < profile.samples.length; i++) {
      t += profile.timeDeltas[i];
      // A sample stands for the interval up to the next one.
      const dt = profile.timeDeltas[i + 1] ?? 0;
      if (!group.windows.some((w) => t >= w.from && t < w.to)) continue;
      const n = nodes.get(profile.samples[i]);
      const cf = n.callFrame;
      if (cf.functionName === '(idle)') {
        idle += dt;
        continue;
      }
      const key = `${cf.functionName || '(anonymous)'} ${shortUrl(cf.url)}:${cf.lineNumber + 1}`;
      self.set(key, (self.get(key) ?? 0) + dt);
      total += dt;
      const seen = new Set();
      for (let id = n.id; id !== undefined; id = parent.get(id)) {
        const f = nodes.get(id).callFrame;
        if (!f.url) continue;
        const k = `${f.functionName || '(anonymous)'} ${shortUrl(f.url)}:${f.lineNumber + 1}`;
        if (seen.has(k)) continue;
        seen.add(k);
        inclusive.set(k, (inclusive.get(k) ?? 0) + dt);
      }
    }
    const dispatches = group.windows.reduce((s, w) => s + (w.dispatches ?? 0), 0);
    const span = group.windows.reduce((s, w) => s + (w.to - w.from), 0);
    process.stdout.write(
      `\n== ${group.label} (pid ${pid}): ${(span / 1e6).toFixed(1)} s in ${group.windows.length} window(s), ` +
        `busy ${(total / 1e6).toFixed(2)} s, idle ${(idle / 1e6).toFixed(2)} s` +
        (dispatches > 0 ? `, ${dispatches} dispatches: ${(total / dispatches).toFixed(0)} µs busy per dispatch` : '') +
        ' ==\n',
    );
    for (const [title, m] of [
      ['self time', self],
      ['inclusive time (project code only)', new Map([...inclusive].filter(([k]) => /^\S+ (apps|libs)\//.test(k)))],
    ]) {
      process.stdout.write(`  -- ${title}\n`);
      const rows = [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, TOP);
      for (const [key, us] of rows) {
        const per = dispatches > 0 ? `${(us / dispatches).toFixed(1).padStart(7)} µs/dispatch` : '';
        process.stdout.write(`  ${((us / total) * 100).toFixed(1).padStart(5)} %  ${per}  ${key}\n`);
      }
    }
  }
}

/** The dispatch windows of a scheduler together, and its urgent-job window apart. */
function groupsOf(ws) {
  const by = new Map();
  for (const w of ws) {
    const g = by.get(w.label) ?? { label: w.label, windows: [] };
    g.windows.push(w);
    by.set(w.label, g);
  }
  return [...by.values()];
}

function shortUrl(url) {
  if (!url) return '';
  const i = url.indexOf('/node_modules/');
  if (i >= 0) return url.slice(i + 1);
  const j = url.search(/\/(apps|libs)\//);
  return j >= 0 ? url.slice(j + 1) : url;
}
