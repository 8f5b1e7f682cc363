/**
 * The Grafana dashboard only queries metrics that a service really registers (names read from the sources), and
 * every panel has a query.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '@gantry/testing';

interface Panel {
  type: string;
  title: string;
  targets?: { expr: string }[];
}

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (name === 'node_modules' || name === 'dist') continue;
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (p.endsWith('.ts') && !p.endsWith('.spec.ts')) out.push(p);
  }
  return out;
}

describe('deploy/grafana dashboard', () => {
  const root = repoRoot();
  const dash = JSON.parse(readFileSync(join(root, 'deploy/grafana/gantry-dashboard.json'), 'utf8')) as {
    panels: Panel[];
    uid: string;
  };
  const registered = new Set<string>();
  for (const f of [...sources(join(root, 'apps')), ...sources(join(root, 'libs'))]) {
    for (const m of readFileSync(f, 'utf8').matchAll(/name: '(gantry_[a-z0-9_]+)'/g)) registered.add(m[1]!);
  }

  it('has a query on every panel', () => {
    const panels = dash.panels.filter((p) => p.type !== 'row');
    expect(panels.length).toBeGreaterThan(20);
    for (const p of panels)
      expect({ title: p.title, queries: p.targets?.length ?? 0 }).toEqual({
        title: p.title,
        queries: expect.any(Number) as number,
      });
    const empty = panels.filter((p) => !p.targets?.some((t) => t.expr.trim().length > 0)).map((p) => p.title);
    expect(empty).toEqual([]);
  });

  it('queries only metrics the services export', () => {
    expect(registered.size).toBeGreaterThan(20);
    const used = new Set<string>();
    for (const p of dash.panels)
      for (const t of p.targets ?? []) for (const m of t.expr.matchAll(/\b(gantry_[a-z0-9_]+)/g)) used.add(m[1]!);
    const base = (n: string) => n.replace(/_(bucket|sum|count)$/, '');
    const unknown = [...used].filter((n) => !registered.has(n) && !registered.has(base(n)));
    expect(unknown).toEqual([]);
    // The queue, tokens, dispatch, outcome, worker, GPU, webhook and HTTP families are all on it.
    for (const n of [
      'gantry_queue_depth',
      'gantry_tokens_in_use',
      'gantry_dispatch_latency_seconds',
      'gantry_job_run_seconds',
      'gantry_job_wait_seconds',
      'gantry_gpu_memory_reserved_mb',
      'gantry_webhook_attempts_total',
      'gantry_http_requests_total',
    ]) {
      expect([...used].some((u) => base(u) === n)).toBe(true);
    }
  });
});
