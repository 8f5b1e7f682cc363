/**
 * Webhooks through the real processes: a notifier killed with `kill -9` while retries wait still delivers them after
 * a restart (they live in the deliveries stream, not in memory); exhausted deliveries are listed by the gateway at
 * GET /v1/webhooks/failed and replayed with POST …/replay; the notifier's /metrics is scraped; and with two notifier
 * replicas and a real worker, job.progress webhooks keep to WEBHOOK_PROGRESS_INTERVAL_MS.
 */
import {
  CLIENT_KEY,
  E2E_WEBHOOK_SECRET,
  GantryCluster,
  waitFor,
  webhookType,
  WebhookReceiver,
  type ReceivedWebhook,
  type ServiceProcess,
} from '@gantry/testing';
import { Webhook } from 'standardwebhooks';

interface FailedItem {
  id: string;
  webhookId: string;
  jobId: string;
  type: string;
  url: string;
  attempts: number;
  lastStatus: number | null;
  lastError: string | null;
  failedAt: string;
}
interface FailedPage {
  items: FailedItem[];
  nextCursor: string | null;
}

const RETRY_MS = 3_000;

function verified(w: ReceivedWebhook): boolean {
  try {
    new Webhook(E2E_WEBHOOK_SECRET).verify(w.body, {
      'webhook-id': String(w.headers['webhook-id']),
      'webhook-timestamp': String(w.headers['webhook-timestamp']),
      'webhook-signature': String(w.headers['webhook-signature']),
    });
    return true;
  } catch {
    return false;
  }
}

const idOf = (w: ReceivedWebhook) => String(w.headers['webhook-id']);
const jobOf = (w: ReceivedWebhook) => (w.json as { data?: { id?: string } } | undefined)?.data?.id;

async function opsUrl(p: ServiceProcess): Promise<string> {
  const line = await p.waitForLog((l) => l.msg === 'notifier ops endpoint listening' && typeof l['url'] === 'string');
  return String(line['url']);
}

describe('notifier durability and dead letters (real processes)', () => {
  let cluster: GantryCluster;
  let receiver: WebhookReceiver;

  beforeAll(async () => {
    receiver = await WebhookReceiver.start();
    cluster = await GantryCluster.start({
      env: { WEBHOOK_RETRY_DELAYS_MS: `${RETRY_MS},${RETRY_MS},${RETRY_MS}`, WEBHOOK_TIMEOUT_MS: '2000' },
    });
  });
  afterAll(async () => {
    await cluster?.stop();
    await receiver?.close();
  });

  it('delivers retries that were waiting when the notifier was killed with kill -9, after a restart', async () => {
    // Every webhook's first attempt fails; any later one succeeds.
    const seen = new Set<string>();
    receiver.respond(({ headers, path }) => {
      if (path !== '/kill9') return { status: 204 };
      const id = String(headers['webhook-id']);
      if (seen.has(id)) return { status: 204 };
      seen.add(id);
      return { status: 500 };
    });
    const jobId = await cluster.submit(
      { type: 'noop', input: { durationMs: 50 }, callbackUrl: `${receiver.url}/kill9` },
      CLIENT_KEY,
    );
    await cluster.waitForStatus(jobId, 'completed');
    // queued, started, completed: each has failed once and now waits RETRY_MS in the deliveries stream.
    await receiver.waitForCount((w) => w.path === '/kill9' && w.answered === 500, 3, { timeoutMs: 20_000 });
    const [notifier] = cluster.of('notifier');
    await notifier!.kill('SIGKILL');
    const killedAt = Date.now();
    const firstFailures = receiver.matching((w) => w.path === '/kill9');
    expect(firstFailures).toHaveLength(3);
    expect(firstFailures.every((w) => w.answered === 500)).toBe(true);

    cluster.spawn('notifier');
    // Await every event, not a count of deliveries: at least once, an event can arrive twice before another arrives.
    const wanted = new Set(firstFailures.map(idOf));
    const ok = await waitFor(
      () => {
        const got = receiver.matching((w) => w.path === '/kill9' && w.answered === 204);
        return [...wanted].every((id) => got.some((w) => idOf(w) === id)) && got;
      },
      { timeoutMs: 30_000, what: 'a successful delivery of each of the three events' },
    );
    expect(new Set(ok.map(idOf))).toEqual(wanted);
    // At least once: a kill -9 between publishing a retry and acking the attempt it replaces can deliver an event
    // twice (same webhook-id, so subscribers de-duplicate). Judge per webhook-id.
    const okById = new Map<string, ReceivedWebhook[]>();
    for (const w of ok) okById.set(idOf(w), [...(okById.get(idOf(w)) ?? []), w]);
    expect([...okById.values()].map((ws) => webhookType(ws[0]!)).sort()).toEqual([
      'job.completed',
      'job.queued',
      'job.started',
    ]);
    for (const [id, deliveries] of okById) {
      const first = firstFailures.find((f) => idOf(f) === id)!;
      for (const w of deliveries) {
        expect(verified(w)).toBe(true);
        expect(jobOf(w)).toBe(jobId);
        expect(w.receivedAt).toBeGreaterThan(killedAt);
        expect(Number(w.headers['webhook-timestamp'])).toBeGreaterThan(Number(first.headers['webhook-timestamp']));
      }
      // The scheduled retry (it waited the backoff) is among them, not only the event taken in again.
      expect(deliveries.some((w) => w.receivedAt - first.receivedAt >= RETRY_MS * 0.8 - 50)).toBe(true);
    }
  });

  it('lists exhausted deliveries at GET /v1/webhooks/failed and replays one with POST …/replay', async () => {
    let fixed = false;
    receiver.respond(({ path }) => (path === '/dead' && !fixed ? { status: 503 } : { status: 204 }));
    const jobId = await cluster.submit({ type: 'noop', input: {}, callbackUrl: `${receiver.url}/dead` }, CLIENT_KEY);
    await cluster.waitForStatus(jobId, 'completed');
    const items = await waitFor(
      async () => {
        const r = await cluster.api<FailedPage>('GET', '/v1/webhooks/failed?limit=500');
        const mine = r.status === 200 ? r.body.items.filter((i) => i.jobId === jobId) : [];
        return mine.length === 3 ? mine : undefined;
      },
      { what: 'the three webhooks of the job in the failed list', timeoutMs: 40_000, intervalMs: 250 },
    );
    for (const i of items) {
      expect(i).toMatchObject({
        id: expect.stringMatching(/^\d+$/),
        webhookId: expect.stringMatching(new RegExp(`^msg_${jobId}_1_\\d+$`)),
        url: `${receiver.url}/dead`,
        attempts: 4,
        lastStatus: 503,
        lastError: expect.any(String),
      });
      expect(Number.isFinite(Date.parse(i.failedAt))).toBe(true);
    }
    const completed = items.find((i) => i.type === 'job.completed')!;

    // Admin only, strict query, clear problems.
    const forbidden = await cluster.api('GET', '/v1/webhooks/failed', undefined, CLIENT_KEY);
    expect(forbidden.status).toBe(403);
    expect(forbidden.headers.get('content-type')).toContain('application/problem+json');
    expect((await cluster.api('GET', '/v1/webhooks/failed?limit=0')).status).toBe(400);
    expect((await cluster.api('GET', '/v1/webhooks/failed?color=red')).status).toBe(400);
    expect((await cluster.api('GET', '/v1/webhooks/failed?cursor=abc')).status).toBe(400);
    const missing = await cluster.api('POST', '/v1/webhooks/failed/999999999/replay');
    expect(missing.status).toBe(404);
    expect(missing.headers.get('content-type')).toContain('application/problem+json');
    expect((await cluster.api('POST', '/v1/webhooks/failed/abc/replay')).status).toBe(404);
    expect(
      (await cluster.api('POST', `/v1/webhooks/failed/${completed.id}/replay`, undefined, CLIENT_KEY)).status,
    ).toBe(403);

    const before = receiver.matching((w) => w.path === '/dead' && idOf(w) === completed.webhookId);
    fixed = true;
    const replay = await cluster.api<FailedItem>('POST', `/v1/webhooks/failed/${completed.id}/replay`);
    expect(replay.status).toBe(202);
    expect(replay.body).toMatchObject({ id: completed.id, webhookId: completed.webhookId });
    const [delivered] = await receiver.waitForCount(
      (w) => w.path === '/dead' && idOf(w) === completed.webhookId && w.answered === 204,
      1,
      { timeoutMs: 20_000 },
    );
    expect(verified(delivered!)).toBe(true);
    expect(webhookType(delivered!)).toBe('job.completed');
    expect(Number(delivered!.headers['webhook-timestamp'])).toBeGreaterThanOrEqual(
      Math.max(...before.map((w) => Number(w.headers['webhook-timestamp']))),
    );
    const after = await cluster.api<FailedPage>('GET', '/v1/webhooks/failed?limit=500');
    expect(after.body.items.map((i) => i.id)).not.toContain(completed.id);
    expect(after.body.items.filter((i) => i.jobId === jobId)).toHaveLength(2);
    expect((await cluster.api('POST', `/v1/webhooks/failed/${completed.id}/replay`)).status).toBe(404);
  });

  it('serves Prometheus metrics: deliveries, failures, retries, latency histogram, pending', async () => {
    const url = await opsUrl(cluster.of('notifier')[0]!);
    const text = await (await fetch(`${url}/metrics`)).text();
    for (const name of [
      'gantry_webhook_deliveries_total',
      'gantry_webhook_failures_total',
      'gantry_webhook_retries_total',
      'gantry_webhook_dead_letters_total',
      'gantry_webhook_attempt_duration_seconds_bucket',
      'gantry_webhook_attempt_duration_seconds_count',
      'gantry_webhook_pending',
    ])
      expect(text).toMatch(new RegExp(`^${name}\\{[^}]*\\} [0-9.e+]+$`, 'm'));
    const delivered = /^gantry_webhook_deliveries_total\{[^}]*\} (\d+)/m.exec(text);
    expect(Number(delivered?.[1])).toBeGreaterThan(0);
  });

  it('answers 503 with Retry-After when no notifier is running', async () => {
    await Promise.all(cluster.of('notifier').map((n) => n.kill('SIGTERM')));
    const r = await cluster.api('GET', '/v1/webhooks/failed');
    expect(r.status).toBe(503);
    expect(r.headers.get('retry-after')).toBeTruthy();
  });
});

describe('job.progress webhooks with two notifier replicas and a real worker', () => {
  const INTERVAL_MS = 700;
  let cluster: GantryCluster;
  let receiver: WebhookReceiver;

  beforeAll(async () => {
    receiver = await WebhookReceiver.start();
    cluster = await GantryCluster.start({
      notifiers: 2,
      env: { WEBHOOK_PROGRESS_INTERVAL_MS: String(INTERVAL_MS) },
    });
  });
  afterAll(async () => {
    await cluster?.stop();
    await receiver?.close();
  });

  it('sends at most one job.progress per interval per job', async () => {
    const durationMs = 4_000;
    const ids = await Promise.all(
      [0, 1].map(() =>
        cluster.submit(
          { type: 'noop', input: { durationMs, progressSteps: 40 }, callbackUrl: `${receiver.url}/progress` },
          CLIENT_KEY,
        ),
      ),
    );
    const ranMs = new Map<string, number>();
    for (const id of ids) {
      const j = await cluster.waitForStatus(id, 'completed', { timeoutMs: 40_000 });
      // The job's real running time: on a loaded machine its 40 sleeps overrun the nominal duration.
      ranMs.set(id, Date.parse(String(j['finishedAt'])) - Date.parse(String(j['startedAt'])));
    }
    for (const id of ids) {
      await receiver.waitForCount((w) => jobOf(w) === id && webhookType(w) === 'job.completed', 1, {
        timeoutMs: 20_000,
      });
      const progress = receiver
        .matching((w) => jobOf(w) === id && webhookType(w) === 'job.progress')
        .map((w) => Date.parse((w.json as { timestamp: string }).timestamp))
        .sort((a, b) => a - b);
      expect(progress.length).toBeGreaterThanOrEqual(2);
      expect(progress.length).toBeLessThanOrEqual(Math.ceil(Math.max(durationMs, ranMs.get(id)!) / INTERVAL_MS) + 1);
      for (let i = 1; i < progress.length; i++)
        expect(progress[i]! - progress[i - 1]!).toBeGreaterThanOrEqual(INTERVAL_MS);
    }
  });
});
