/** Human output: small aligned tables and key/value blocks. `--json` bypasses all of it. */
import type { JobView, QueueState, ScheduleView, TenantView, WorkerView } from '@gantry/client';

export function table(rows: string[][]): string {
  if (rows.length === 0) return '';
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

export function jobsTable(jobs: JobView[]): string {
  return table([
    ['ID', 'TYPE', 'STATUS', 'PRIORITY', 'PROGRESS', 'CREATED'],
    ...jobs.map((j) => [
      j.id,
      j.type,
      j.status,
      j.priority,
      j.progress ? `${Math.round(j.progress.percent)}%${j.progress.stage ? ` ${j.progress.stage}` : ''}` : '',
      j.createdAt,
    ]),
  ]);
}

export function jobBlock(j: JobView): string {
  const lines: [string, unknown][] = [
    ['id', j.id],
    ['type', j.type],
    ['status', j.status],
    ['priority', j.priority],
    ['pool', j.pool],
    ['tenant', j.tenant],
    ['attempts', `${j.attempts}/${j.maxAttempts}`],
    ['progress', j.progress ? `${Math.round(j.progress.percent)}% ${j.progress.stage ?? ''}`.trim() : undefined],
    ['queuePosition', j.queuePosition],
    ['estimatedWait', j.estimatedWaitSeconds != null ? `${j.estimatedWaitSeconds}s` : undefined],
    ['created', j.createdAt],
    ['started', j.startedAt],
    ['finished', j.finishedAt],
    ['elapsed', j.elapsedSeconds !== undefined ? `${j.elapsedSeconds}s` : undefined],
    ['worker', j.workerId],
    ['error', j.error ? `${j.error.code}: ${j.error.message}` : undefined],
    ['result', j.result !== undefined ? JSON.stringify(j.result) : undefined],
  ];
  for (const o of j.outputs ?? []) lines.push([`output ${o.name}`, o.downloadUrl ?? o.url]);
  return lines
    .filter(([, v]) => v !== undefined && v !== '')
    .map(([k, v]) => `${k.padEnd(14)} ${String(v)}`)
    .join('\n')
    .concat('\n');
}

export function queueBlock(q: QueueState): string {
  const state = q.draining ? 'draining' : q.paused ? 'paused' : 'running';
  return (
    `state          ${state}\n` +
    `depth          urgent ${q.depth.urgent}  high ${q.depth.high}  normal ${q.depth.normal}  low ${q.depth.low}  total ${q.depth.total}\n` +
    `running        ${q.running}\n` +
    `retrying       ${q.retrying}\n` +
    (q.scheduled !== undefined ? `scheduled      ${q.scheduled}\n` : '') +
    (q.waiting !== undefined ? `waiting        ${q.waiting}\n` : '') +
    `tokens         ${q.maxConcurrentJobs - q.availableTokens}/${q.maxConcurrentJobs} in use\n` +
    `maxQueueSize   ${q.maxQueueSize}\n` +
    `workers        ${q.workers}\n` +
    (q.pools?.length
      ? '\n' +
        table([
          ['POOL', 'URGENT', 'HIGH', 'NORMAL', 'LOW', 'QUEUED', 'SCHEDULED', 'WAITING'],
          ...q.pools.map((p) => [
            p.pool,
            String(p.depth.urgent),
            String(p.depth.high),
            String(p.depth.normal),
            String(p.depth.low),
            String(p.depth.total),
            String(p.scheduled),
            String(p.waiting ?? 0),
          ]),
        ])
      : '')
  );
}

export function tenantsTable(ts: TenantView[]): string {
  return table([
    ['TENANT', 'WEIGHT', 'QUEUED', 'RUNNING', 'USED SLOT-S', 'SHARE', 'ENTITLED'],
    ...ts.map((t) => [
      t.tenant,
      String(t.weight),
      String(t.queued),
      String(t.running),
      t.usedSlotSeconds.toFixed(1),
      `${t.sharePercent.toFixed(1)}%`,
      `${t.entitledPercent.toFixed(1)}%`,
    ]),
  ]);
}

export function schedulesTable(ss: ScheduleView[]): string {
  return table([
    ['ID', 'NAME', 'CRON', 'TIMEZONE', 'STATE', 'NEXT RUN', 'LAST JOB'],
    ...ss.map((s) => [
      s.id,
      s.name,
      s.cron,
      s.timezone,
      s.paused ? 'paused' : 'active',
      s.nextRunAt ?? '-',
      s.lastJobId ?? '-',
    ]),
  ]);
}

export function workersTable(ws: WorkerView[]): string {
  return table([
    ['ID', 'POOL', 'BUSY', 'GPUS', 'RUNNING', 'HEARTBEAT'],
    ...ws.map((w) => [
      w.id,
      w.pool,
      `${w.busy}/${w.slots}`,
      w.gpus.length ? w.gpus.map((g) => `${g.name} ${g.memoryTotalMb}MB`).join(', ') : '-',
      String(w.runningJobs.length),
      w.lastHeartbeatAt,
    ]),
  ]);
}
