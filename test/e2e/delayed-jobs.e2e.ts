/**
 * Issue 17, delayed jobs (real processes: two schedulers, a worker, a notifier, a gateway, nats-server): a job with
 * `runAt` / `delaySeconds` is `scheduled` — no token, not in `depth`, listed under `status=scheduled`, announced as
 * `job.scheduled` by webhook and SSE — and is released into its level within 1 s of its time (started within 5 s)
 * while other work keeps the system busy; jobs that become due together enter their level in (runAt, acceptance)
 * order, behind work queued before they were due; a scheduled job can be cancelled (it never starts) and
 * reprioritized; and a kill -9 of the leading scheduler, then of every scheduler and nats-server, while jobs are
 * scheduled, starts each of them exactly once, after its time.
 */
import { GantryCluster, WebhookReceiver, assertWholeHistory, waitFor, within } from '@gantry/testing';
import type { StoredJob } from '@gantry/contracts';
import { ADMIN, SCHEDULER_E2E_ENV, StreamReader, leaderOf } from './support/scheduler-support';

const MAX = 6;

interface View {
  id: string;
  status: string;
  priority: string;
  runAt?: string;
  startedAt?: string;
}

interface QueueBody {
  depth: { total: number };
  running: number;
  availableTokens: number;
}

/** The revisions of a job's history of one event type. */
const of = (h: StoredJob[], type: string) => h.filter((s) => s.event.type === type);

describe('delayed jobs (real processes)', () => {
  let cluster: GantryCluster;
  let reader: StreamReader;
  let hooks: WebhookReceiver;
  const accepted = new Set<string>();

  const submit = async (body: Record<string, unknown>): Promise<View> => {
    const r = await cluster.api<View>('POST', '/v1/jobs', body);
    if (r.status !== 202) throw new Error(`submit answered ${r.status}: ${JSON.stringify(r.body)}`);
    accepted.add(r.body.id);
    return r.body;
  };

  /** Every job started exactly once, not before its runAt (by the worker's clock stamping startedAt). */
  /** Per job: how late it was queued and started after its runAt (for failure messages). */
  const detail: string[] = [];
  const expectStartedOnceAfterRunAt = async (ids: readonly string[]): Promise<number[]> => {
    const lateness: number[] = [];
    detail.length = 0;
    for (const id of ids) {
      const h = await reader.history(id);
      expect(of(h, 'job.scheduled')).toHaveLength(1);
      expect(of(h, 'job.started')).toHaveLength(1);
      expect(of(h, 'job.completed')).toHaveLength(1);
      const runAt = Date.parse(h[0]!.record.runAt!);
      const queued = of(h, 'job.queued');
      expect(queued).toHaveLength(1);
      expect(Date.parse(queued[0]!.event.timestamp)).toBeGreaterThanOrEqual(runAt);
      const started = Date.parse(of(h, 'job.started')[0]!.record.startedAt!);
      expect(started).toBeGreaterThanOrEqual(runAt);
      lateness.push(started - runAt);
      const queuedAt = Date.parse(queued[0]!.event.timestamp);
      detail.push(`${id}: queued +${queuedAt - runAt} ms, started +${started - runAt} ms`);
    }
    return lateness;
  };

  beforeAll(async () => {
    hooks = await WebhookReceiver.start();
    cluster = await GantryCluster.start({
      schedulers: 2,
      workers: 1,
      env: { ...SCHEDULER_E2E_ENV, MAX_CONCURRENT_JOBS: String(MAX), WORKER_SLOTS: String(MAX) },
    });
    reader = await StreamReader.connect(cluster);
  });

  afterAll(async () => {
    await reader?.close();
    await cluster?.stop();
    await hooks?.close();
  });

  it('is scheduled (no token, not in depth, listed, announced by webhook and SSE), then is released within 1 s of runAt under load', async () => {
    const idle = await cluster.api<QueueBody>('GET', '/v1/queue');
    expect(idle.body).toMatchObject({ depth: { total: 0 }, running: 0, availableTokens: MAX });

    const base = Date.now() + 6_000;
    const delayed: View[] = [];
    for (let i = 0; i < 12; i++) {
      const runAt = new Date(base + i * 150).toISOString();
      delayed.push(
        await submit({
          type: 'noop',
          input: { durationMs: 50 },
          runAt,
          callbackUrl: `${hooks.url}/delayed`,
        }),
      );
      expect(delayed.at(-1)).toMatchObject({ status: 'scheduled', runAt });
    }
    const bySeconds = await submit({ type: 'noop', input: { durationMs: 50 }, delaySeconds: 7 });
    expect(bySeconds.status).toBe('scheduled');
    delayed.push(bySeconds);
    const ids = delayed.map((d) => d.id);

    // An SSE stream opened while it is scheduled sees its whole life.
    const sse = fetch(`${cluster.gatewayUrl}/v1/jobs/${ids[0]}/events`, {
      headers: { authorization: `Bearer ${ADMIN}` },
    }).then((r) => r.text());

    // Scheduled: no token held, not in depth, listed under status=scheduled.
    const q = await cluster.api<QueueBody>('GET', '/v1/queue');
    expect(q.body).toMatchObject({ depth: { total: 0 }, running: 0, availableTokens: MAX });
    const listed = await cluster.api<{ items: View[] }>('GET', '/v1/jobs?status=scheduled&limit=100');
    expect(listed.status).toBe(200);
    expect(listed.body.items.map((v) => v.id).sort()).toEqual([...ids].sort());
    expect(listed.body.items.every((v) => v.status === 'scheduled')).toBe(true);

    // Load: a steady stream of short jobs keeps the tokens turning over while the delayed ones come due.
    let loading = true;
    const load = (async () => {
      while (loading) {
        await submit({ type: 'noop', input: { durationMs: 100 } });
        await new Promise((r) => setTimeout(r, 40));
      }
    })();
    try {
      for (const id of ids) await cluster.waitForStatus(id, 'completed', { timeoutMs: 60_000 });
    } finally {
      loading = false;
      await load;
    }

    const lateness = await expectStartedOnceAfterRunAt(ids);
    // The scheduler's part — the release into the queue — within 1 s of runAt, always. The start adds dispatch and the
    // worker's start write: within 1 s on a quiet machine, but a 2-core box at load average 40 (other engineers' suites)
    // was seen adding up to ~2 s there, so the start gets a looser bound than the release.
    const released = detail.map((d) => Number(/queued \+(\d+) ms/.exec(d)![1]));
    if (Math.max(...released) >= 1_000)
      throw new Error(`a job was released 1 s or more after its runAt:\n${detail.join('\n')}`);
    if (Math.max(...lateness) >= 5_000)
      throw new Error(`a job started 5 s or more after its runAt:\n${detail.join('\n')}`);

    // Webhooks: job.scheduled first, with the view's status and runAt.
    await hooks.waitForCount(
      (w) => w.path === '/delayed' && (w.json as { type: string }).type === 'job.completed',
      12,
      {
        timeoutMs: 60_000,
      },
    );
    for (const d of delayed.slice(0, 12)) {
      const mine = hooks
        .matching((w) => w.path === '/delayed' && (w.json as { data: View }).data.id === d.id)
        .map((w) => w.json as { type: string; sequence: number; data: View })
        .sort((a, b) => a.sequence - b.sequence);
      expect(mine[0]).toMatchObject({
        type: 'job.scheduled',
        sequence: 1,
        data: { status: 'scheduled', runAt: d.runAt },
      });
      expect(mine.map((m) => m.type)).toEqual(['job.scheduled', 'job.queued', 'job.started', 'job.completed']);
    }

    const text = await within(sse, 30_000, 'the event stream to end');
    const events = [...text.matchAll(/^event: (.+)$/gm)].map((m) => m[1]);
    expect(events).toEqual(['job.scheduled', 'job.queued', 'job.started', 'job.completed']);
  }, 240_000);

  it('enters its level when due: behind work queued before, in (runAt, acceptance) order among jobs due together', async () => {
    await cluster.api('PUT', '/v1/queue/config', { maxConcurrentJobs: 1 });
    await cluster.api('POST', '/v1/queue/pause');
    try {
      const t = Date.now() + 3_000;
      const first = await submit({ type: 'noop', input: { durationMs: 20 }, runAt: new Date(t + 500).toISOString() });
      const tieA = await submit({ type: 'noop', input: { durationMs: 20 }, runAt: new Date(t).toISOString() });
      const tieB = await submit({ type: 'noop', input: { durationMs: 20 }, runAt: new Date(t).toISOString() });
      // Accepted after the delayed ones, queued before they are due: it goes first.
      const plain = await submit({ type: 'noop', input: { durationMs: 20 } });
      // All four queued (the paused queue dispatches nothing), then resumed.
      for (const v of [first, tieA, tieB]) await cluster.waitForStatus(v.id, 'queued', { timeoutMs: 30_000 });
      await cluster.api('POST', '/v1/queue/resume');
      const order = [plain, tieA, tieB, first];
      for (const v of order) await cluster.waitForStatus(v.id, 'completed', { timeoutMs: 30_000 });
      const starts = await Promise.all(
        order.map(async (v) => Date.parse(of(await reader.history(v.id), 'job.started')[0]!.record.startedAt!)),
      );
      expect([...starts].sort((a, b) => a - b)).toEqual(starts);
    } finally {
      await cluster.api('POST', '/v1/queue/resume');
      await cluster.api('PUT', '/v1/queue/config', { maxConcurrentJobs: MAX });
    }
  }, 120_000);

  it('never starts a cancelled scheduled job; a reprioritized one enters its new level', async () => {
    const runAt = new Date(Date.now() + 3_000).toISOString();
    const kept = await submit({ type: 'noop', input: { durationMs: 20 }, runAt, priority: 'low' });
    const dropped = await submit({ type: 'noop', input: { durationMs: 20 }, runAt });
    const p = await cluster.api<View>('PUT', `/v1/jobs/${kept.id}/priority`, { priority: 'urgent' });
    expect(p.body).toMatchObject({ status: 'scheduled', priority: 'urgent' });
    const c = await cluster.api<View>('POST', `/v1/jobs/${dropped.id}/cancel`);
    expect(c.body.status).toBe('cancelled');

    await cluster.waitForStatus(kept.id, 'completed', { timeoutMs: 30_000 });
    const h = await reader.history(kept.id);
    expect(of(h, 'job.queued')[0]!.record.priority).toBe('urgent');
    // Past its time, and after the leader had a pass for it: the cancelled one stayed cancelled and never ran.
    const d = await reader.history(dropped.id);
    expect(d.map((s) => s.event.type)).toEqual(['job.scheduled', 'job.cancelled']);
    expect((await cluster.job<View>(dropped.id)).status).toBe('cancelled');
  }, 60_000);

  it('survives a kill -9 of the leading scheduler, then of every scheduler and nats-server: each job starts once, after its time', async () => {
    const base = Date.now() + 4_000;
    const wave1: View[] = [];
    for (let i = 0; i < 20; i++)
      wave1.push(
        await submit({ type: 'noop', input: { durationMs: 20 }, runAt: new Date(base + i * 200).toISOString() }),
      );

    // Kill -9 the leader while the wave is still scheduled (the first ones come due during the handover).
    const leader = await leaderOf(cluster);
    await waitFor(async () => Date.now() >= base - 500, { what: 'the wave about to come due', timeoutMs: 30_000 });
    await leader.kill('SIGKILL');
    cluster.spawn('scheduler');
    for (const v of wave1) await cluster.waitForStatus(v.id, 'completed', { timeoutMs: 90_000 });
    const lateness1 = await expectStartedOnceAfterRunAt(wave1.map((v) => v.id));
    // Those due during the handover wait for the new leader (lease 1.5 s), the others start on time.
    expect(Math.max(...lateness1)).toBeLessThan(15_000);

    // Every scheduler and nats-server killed while a second wave is scheduled; they come back after it is due.
    const wave2: View[] = [];
    const due2 = Date.now() + 3_000;
    for (let i = 0; i < 10; i++)
      wave2.push(
        await submit({ type: 'noop', input: { durationMs: 20 }, runAt: new Date(due2 + i * 100).toISOString() }),
      );
    for (const s of cluster.of('scheduler')) await s.kill('SIGKILL');
    await cluster.nats.kill();
    await waitFor(async () => Date.now() >= due2 + 1_500, { what: 'the second wave due', timeoutMs: 30_000 });
    await cluster.nats.restart();
    cluster.spawn('scheduler');
    cluster.spawn('scheduler');
    for (const v of wave2) await cluster.waitForStatus(v.id, 'completed', { timeoutMs: 120_000 });
    await expectStartedOnceAfterRunAt(wave2.map((v) => v.id));

    // And the whole history of every job is a path the state machine allows, nothing accepted lost.
    const report = await assertWholeHistory(cluster.nats.url, { expectIds: accepted });
    expect(report.jobs).toBeGreaterThanOrEqual(accepted.size);
  }, 300_000);
});
