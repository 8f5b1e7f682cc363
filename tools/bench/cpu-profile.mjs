#!/usr/bin/env node
// Top self-time and inclusive functions of the services' V8 CPU profiles, counted only inside the windows a bench
// measured (so that start-up, a rebuild, a catch-up or the pauses between rounds do not blur the comparison).
//
//   npm run bench:scheduler -- --jobs=200000 --cpu-prof=/tmp/prof       # the schedulers, per dispatch
//   npm run bench:vs-bullmq -- --only gantry --cpu-prof=/tmp/prof        # every Gantry service, per job
//   node tools/bench/cpu-profile.mjs /tmp/prof [--top=25] [--grep=REGEX]
//
// --grep=REGEX adds, per service, the self time of the functions whose `name file:line` matches REGEX, summed and row
// by row (e.g. a library's request bookkeeping: docs/performance.md, "Our own publish path").
//
// The bench writes DIR/windows.json: per window the process's pid, a label (the windows of one label are summed),
// its start and end in µs of CLOCK_MONOTONIC (the clock of V8's profile timestamps) and how many units of work it
// did (`units` with their name in `unit`; the scheduler bench's `dispatches` count as units named "dispatch"). Each
// profile (CPU.<date>.<time>.<pid>.….cpuprofile) is matched to its windows by pid.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The report of every profile in `dir` with windows, as text. */
export function profileReport(dir, { top = 25, grep } = {}) {
  const windows = JSON.parse(readFileSync(join(dir, 'windows.json'), 'utf8'));
  let text = '';
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((file) => ({ file, pid: Number(/^CPU\.\d+\.\d+\.(\d+)\./.exec(file)?.[1]) }))
    .map((p) => ({ ...p, mine: windows.filter((w) => w.pid === p.pid) }))
    .filter((p) => p.mine.length > 0)
    .sort((a, b) => a.mine[0].label.localeCompare(b.mine[0].label));
  for (const { file, pid, mine } of files) {
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
      const units = group.windows.reduce((s, w) => s + (w.units ?? w.dispatches ?? 0), 0);
      const unit = group.windows[0].unit ?? 'dispatch';
      const span = group.windows.reduce((s, w) => s + (w.to - w.from), 0);
      text +=
        `\n== ${group.label} (pid ${pid}): ${(span / 1e6).toFixed(1)} s in ${group.windows.length} window(s), ` +
        `busy ${(total / 1e6).toFixed(2)} s, idle ${(idle / 1e6).toFixed(2)} s` +
        (units > 0 ? `, ${units} ${plural(unit)}: ${(total / units).toFixed(0)} µs busy per ${unit}` : '') +
        ' ==\n';
      const sections = [
        ['self time', self],
        ['inclusive time (project code only)', new Map([...inclusive].filter(([k]) => /^\S+ (apps|libs)\//.test(k)))],
      ];
      if (grep) {
        const matching = new Map([...self].filter(([k]) => grep.test(k)));
        const sum = [...matching.values()].reduce((a, b) => a + b, 0);
        const per = units > 0 ? `, ${(sum / units).toFixed(1)} µs/${unit}` : '';
        sections.push([`self time matching --grep: ${((sum / total) * 100).toFixed(1)} %${per}`, matching]);
      }
      for (const [title, m] of sections) {
        text += `  -- ${title}\n`;
        const rows = [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
        for (const [key, us] of rows) {
          const per = units > 0 ? `${(us / units).toFixed(1).padStart(7)} µs/${unit}` : '';
          text += `  ${((us / total) * 100).toFixed(1).padStart(5)} %  ${per}  ${key}\n`;
        }
      }
    }
  }
  return text;
}

/** The windows of one label together (a scheduler's dispatch windows, its urgent-job window apart). */
function groupsOf(ws) {
  const by = new Map();
  for (const w of ws) {
    const g = by.get(w.label) ?? { label: w.label, windows: [] };
    g.windows.push(w);
    by.set(w.label, g);
  }
  return [...by.values()];
}

const plural = (unit) => (/(s|sh|ch|x)$/.test(unit) ? `${unit}es` : `${unit}s`);

function shortUrl(url) {
  if (!url) return '';
  const i = url.indexOf('/node_modules/');
  if (i >= 0) return url.slice(i + 1);
  const j = url.search(/\/(apps|libs)\//);
  return j >= 0 ? url.slice(j + 1) : url;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const dir = process.argv[2];
  if (!dir) {
    process.stderr.write('usage: cpu-profile.mjs DIR [--top=N] [--grep=REGEX]\n');
    process.exit(2);
  }
  const flag = (name) =>
    process.argv
      .slice(3)
      .find((a) => a.startsWith(`--${name}=`))
      ?.slice(name.length + 3);
  const top = Number(flag('top') ?? 25);
  const grep = flag('grep');
  process.stdout.write(profileReport(dir, { top, ...(grep ? { grep: new RegExp(grep) } : {}) }));
}
