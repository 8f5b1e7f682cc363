/**
 * Issue 4, high availability: two schedulers, the leader killed with kill -9 while it is dispatching a steady stream
 * of jobs. The standby takes over within 10 s, nothing is lost, no attempt runs twice, and the recorded runs never
 * exceed the token limits during the handover. Then a leader is frozen (SIGSTOP) until it is replaced and thawed
 * (SIGCONT): it finds itself deposed and nothing it decided reaches a worker.
 */
import { GantryCluster, assertWholeHistory, waitFor, type ServiceProcess } from '@gantry/testing';
import {
  SCHEDULER_E2E_ENV,
  StreamReader,
  TENANT_KEYS,
  peakBy,
  runIntervals,
  submitAll,
  type RunInterval,
} from './support/scheduler-support';

const MAX = 4;
const TENANT_CAP = 2;

async function opsUrl(p: ServiceProcess): Promise<string> {
  const line = await p.waitForLog((l) => l.msg === 'scheduler ops endpoint listening', { timeoutMs: 30_000 });
  return String(line['url']);
}

async function isLeader(p: ServiceProcess): Promise<boolean> {
  if (!p.running) return false;
  const r = await fetch(`${await opsUrl(p)}/readyz`).catch(() => undefined);
  if (!r) return false;
  const body = (await r.json().catch(() => ({}))) as { leader?: boolean };
  return body.leader === true;
}

async function leaderOf(cluster: GantryCluster, exclude?: ServiceProcess): Promise<ServiceProcess> {
  return waitFor(
    async () => {
      for (const s of cluster.of('scheduler')) if (s !== exclude && (await isLeader(s))) return s;
      return undefined;
    },
    { what: 'a leading scheduler', timeoutMs: 30_000, intervalMs: 50 },
  );
}

describe('scheduler failover (real processes)', () => {
  let cluster: GantryCluster;
  let reader: StreamReader;

  beforeAll(async () => {
    cluster = await GantryCluster.start({
      schedulers: 2,
      workers: 3,
      env: {
        ...SCHEDULER_E2E_ENV,
        MAX_CONCURRENT_JOBS: String(MAX),
        TENANT_MAX_CONCURRENT_JOBS: String(TENANT_CAP),
        WORKER_SLOTS: '2',
      },
    });
    reader = await StreamReader.connect(cluster);
  });

  afterAll(async () => {
    for (const s of cluster?.of('scheduler') ?? []) s.signal('SIGCONT');
    await reader?.close();
    await cluster?.stop();
  });

  it('hands over within 10 s when the leader is killed mid-dispatch, losing nothing and exceeding no limit', async () => {
    const keys = [TENANT_KEYS.a, TENANT_KEYS.b, TENANT_KEYS.c];
    const ids = await submitAll(
      cluster,
      Array.from({ length: 240 }, (_, i) => ({
        key: keys[i % 3]!,
        body: {
          type: 'noop',
          input: { durationMs: 80 + ((i * 53) % 4) * 40 },
          priority: (['normal', 'high', 'low', 'urgent'] as const)[i % 4],
        },
      })),
    );
    const completed = async () =>
      (await Promise.all(ids.map((id) => cluster.job<{ status: string }>(id)))).filter((j) => j.status === 'completed')
        .length;

    // Kill -9 the leader while it is busy dispatching: jobs are finishing and many are still queued.
    const first = await leaderOf(cluster);
    await waitFor(async () => (await completed()) >= 20, { what: 'dispatching under way', timeoutMs: 60_000 });
    const killedAt = Date.now();
    await first.kill('SIGKILL');
    const second = await leaderOf(cluster, first);
    const elected = await second.waitForLog((l) => l.msg === 'leading' && Date.parse(String(l['time'])) >= killedAt, {
      timeoutMs: 10_000,
    });
    const handoverMs = Date.parse(String(elected['time'])) - killedAt;
    expect(handoverMs).toBeLessThan(10_000);
    expect(await completed()).toBeLessThan(ids.length);

    // A fresh standby; then the leader is frozen, replaced, and thawed.
    const third = cluster.spawn('scheduler');
    await third.waitForLog((l) => l.msg === 'scheduler started', { timeoutMs: 30_000 });
    second.signal('SIGSTOP');
    await leaderOf(cluster, second);
    const mark = second.lines.length;
    second.signal('SIGCONT');
    const deposed = await second.waitForLog(
      (l) => second.lines.indexOf(l) >= mark && l.msg === 'no longer the scheduler leader',
      { timeoutMs: 15_000 },
    );
    // Thawed, its next renewal finds the lease taken: compare-and-set refused (or fenced by the new epoch).
    expect(String(deposed['reason'])).toMatch(/fenced|renewal|another replica holds it/);

    for (const id of ids) await cluster.waitForStatus(id, 'completed', { timeoutMs: 120_000 });

    const runs: RunInterval[] = [];
    for (const id of ids) {
      const history = await reader.history(id);
      const types = history.map((s) => s.event.type);
      // Nothing ran twice: one start and one completion per job; a scheduler failover costs no attempt.
      expect([id, types.filter((t) => t === 'job.started').length]).toEqual([id, 1]);
      expect([id, types.filter((t) => t === 'job.completed').length]).toEqual([id, 1]);
      runs.push(...runIntervals(history));
    }
    // The whole stream: one terminal event per generation, attempts that never overlap, no sequence reused.
    const whole = await assertWholeHistory(cluster.nats.url, { expectIds: ids });
    expect(whole.jobs).toBe(ids.length);
    expect(peakBy(runs, () => ['all']).get('all')).toBeLessThanOrEqual(MAX);
    for (const peak of peakBy(runs, (r) => [r.tenant]).values()) expect(peak).toBeLessThanOrEqual(TENANT_CAP);
    for (const peak of peakBy(runs, (r) => [r.workerId]).values()) expect(peak).toBeLessThanOrEqual(2);
    const stats = await waitFor(
      async () => {
        const s = await cluster.api<{ activeJobs: number; availableTokens: number }>('GET', '/v1/concurrency/stats');
        return s.status === 200 && s.body.activeJobs === 0 ? s.body : undefined;
      },
      { what: 'every token back after the handovers' },
    );
    expect(stats.availableTokens).toBe(MAX);
  });
});
