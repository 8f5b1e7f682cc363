/**
 * The notifier against a real nats-server, real HTTP receivers and a real S3-compatible store: signing, retries,
 * dead letters and replay, tenant secrets, the address policy at delivery time, redirects, presigned URLs, event
 * bodies and metrics.
 */
import { CONSUMERS, STREAMS, SUBJECTS, type FailedListReply, type FailedWebhookView } from '@gantry/contracts';
import { publishJson, RpcError } from '@gantry/jetstream';
import { OutputStore } from '@gantry/storage';
import { freePort, S3RVER_CREDENTIALS, waitFor, WebhookReceiver, type ReceivedWebhook } from '@gantry/testing';
import type { RunningNotifier } from '../src/notifier.app';
import { idOf, metricValue, NotifierHarness, TEST_SECRET, verifies, verifyWith } from './harness';

const ACME_OLD = 'whsec_YWNtZS1vbGQtc2VjcmV0LTAwMDAwMDAx';
const ACME_NEW = 'whsec_YWNtZS1uZXctc2VjcmV0LTAwMDAwMDAx';
const GLOBEX = 'whsec_Z2xvYmV4LXNlY3JldC0wMDAwMDAwMDAx';

interface Body {
  type: string;
  timestamp: string;
  sequence: number;
  generation: number;
  data: Record<string, unknown> & { id: string; outputs?: { name: string; downloadUrl?: string }[] };
}
const bodyOf = (w: ReceivedWebhook) => w.json as Body;
const timestampOf = (w: ReceivedWebhook) => Number(w.headers['webhook-timestamp']);

describe('notifier deliveries (real NATS, real HTTP)', () => {
  let h: NotifierHarness;
  let notifier: RunningNotifier;
  const receivers: WebhookReceiver[] = [];
  const receiver = async (port = 0) => {
    const r = await WebhookReceiver.start(port);
    receivers.push(r);
    return r;
  };

  beforeAll(async () => {
    h = await NotifierHarness.start({ s3: true });
    notifier = await h.replica({
      // At least 1 040 ms apart even with -20 % jitter, so every attempt has its own webhook-timestamp (unix seconds).
      WEBHOOK_RETRY_DELAYS_MS: '1300,1300,1300',
      WEBHOOK_TIMEOUT_MS: '1000',
      WEBHOOK_SECRETS: `acme=${ACME_OLD} ${ACME_NEW},globex=${GLOBEX}`,
    });
  });
  afterAll(async () => {
    await Promise.allSettled(receivers.map((r) => r.close()));
    await h?.stop();
  });

  /** Every delivery handed out and settled: nothing pending in either consumer. */
  async function idle(): Promise<void> {
    await waitFor(
      async () => {
        const intake = await h.client.jsm.consumers.info(STREAMS.jobs, CONSUMERS.notifierIntake);
        // A WorkQueue stream: a delivery leaves it when done, whichever tenant's consumer handed it out.
        const del = (await h.client.jsm.streams.info(STREAMS.webhooks)).state.messages;
        return intake.num_pending + intake.num_ack_pending + del === 0;
      },
      { what: 'the notifier to be idle', timeoutMs: 20_000, intervalMs: 50 },
    );
  }

  async function failedFor(webhookId: string): Promise<FailedWebhookView | undefined> {
    const page = await h.rpc<FailedListReply>('failed-list', { limit: 500 });
    return page.items.find((i) => i.webhookId === webhookId);
  }

  it('retries a flaky receiver (fails twice, then OK): three attempts, one webhook-id, fresh valid signatures', async () => {
    const r = await receiver();
    r.failFirst(2, { status: 503 });
    const { jobId, webhookId } = await h.event({
      type: 'job.completed',
      sequence: 4,
      callbackUrl: `${r.url}/flaky`,
      callbackToken: 'tok-flaky',
    });
    const got = await r.waitForCount(() => true, 3, { timeoutMs: 20_000 });
    await idle();
    expect(r.received).toHaveLength(3);
    expect(got.map((w) => w.answered)).toEqual([503, 503, 204]);
    expect(got.map(idOf)).toEqual([webhookId, webhookId, webhookId]);
    expect(webhookId).toBe(`msg_${jobId}_1_4`);
    for (const w of got) {
      expect(verifyWith(TEST_SECRET, w)).toMatchObject({ type: 'job.completed', sequence: 4 });
      expect(w.headers['authorization']).toBe('Bearer tok-flaky');
      // Signed at send time, not at enqueue time.
      expect(Math.abs(timestampOf(w) - w.receivedAt / 1000)).toBeLessThan(2);
    }
    const ts = got.map(timestampOf);
    expect(ts[1]!).toBeGreaterThan(ts[0]!);
    expect(ts[2]!).toBeGreaterThan(ts[1]!);
    expect(new Set(got.map((w) => String(w.headers['webhook-signature']))).size).toBe(3);
    expect(await failedFor(webhookId)).toBeUndefined();
  });

  it('delivers to a receiver that was down when the event happened and came back', async () => {
    const port = await freePort();
    const before = metricValue(await h.metrics(notifier), 'gantry_webhook_failures_total', { reason: 'connection' });
    const { webhookId } = await h.event({ type: 'job.queued', callbackUrl: `http://127.0.0.1:${port}/back` });
    await waitFor(
      async () =>
        metricValue(await h.metrics(notifier), 'gantry_webhook_failures_total', { reason: 'connection' }) > before,
      { what: 'a failed attempt while the receiver is down', timeoutMs: 10_000 },
    );
    const r = await receiver(port);
    const [w] = await r.waitForCount(() => true, 1, { timeoutMs: 15_000 });
    expect(idOf(w!)).toBe(webhookId);
    expect(verifies(TEST_SECRET, w!)).toBe(true);
    await idle();
    expect(r.received).toHaveLength(1);
  });

  it('dead-letters an always-failing receiver, lists it, and a replay delivers it once fixed (same id, fresh timestamp)', async () => {
    const r = await receiver();
    r.respond({ status: 500 });
    const { jobId, webhookId } = await h.event({ type: 'job.failed', sequence: 7, callbackUrl: `${r.url}/dead` });
    const item = await waitFor(() => failedFor(webhookId), { what: 'the failed entry', timeoutMs: 20_000 });
    expect(r.received).toHaveLength(4); // 1 + 3 retries
    expect(item).toMatchObject({
      webhookId,
      jobId,
      type: 'job.failed',
      url: `${r.url}/dead`,
      attempts: 4,
      lastStatus: 500,
      lastError: expect.stringContaining('HTTP 500'),
      failedAt: expect.any(String),
    });
    expect(item.id).toMatch(/^\d+$/);
    const lastFailedTs = timestampOf(r.received.at(-1)!);

    r.respond({ status: 200 });
    const replayed = await h.rpc<FailedWebhookView>('replay', { id: item.id });
    expect(replayed).toMatchObject({ id: item.id, webhookId });
    const all = await r.waitForCount(() => true, 5, { timeoutMs: 15_000 });
    const w = all[4]!;
    expect(idOf(w)).toBe(webhookId);
    expect(w.answered).toBe(200);
    expect(verifyWith(TEST_SECRET, w)).toMatchObject({ type: 'job.failed', sequence: 7 });
    expect(timestampOf(w)).toBeGreaterThanOrEqual(lastFailedTs);
    expect(Math.abs(timestampOf(w) - w.receivedAt / 1000)).toBeLessThan(2);
    await idle();
    expect(r.received).toHaveLength(5);
    // The replayed entry leaves the list; replaying it again is a 404.
    expect(await failedFor(webhookId)).toBeUndefined();
    await expect(h.rpc('replay', { id: item.id })).rejects.toMatchObject({ status: 404 });
    await expect(h.rpc('replay', { id: 'abc' })).rejects.toBeInstanceOf(RpcError);
  });

  it('pages the failed list with a cursor and refuses bad requests', async () => {
    const r = await receiver();
    r.respond({ status: 410 });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++)
      ids.push((await h.event({ type: 'job.queued', tenant: 'pager', callbackUrl: `${r.url}/p${i}` })).webhookId);
    await waitFor(
      async () => (await h.rpc<FailedListReply>('failed-list', { limit: 10, tenant: 'pager' })).items.length === 3,
      { what: 'three failed entries of tenant pager', timeoutMs: 20_000 },
    );
    const p1 = await h.rpc<FailedListReply>('failed-list', { limit: 2, tenant: 'pager' });
    expect(p1.items).toHaveLength(2);
    expect(p1.nextCursor).toMatch(/^\d+$/);
    const p2 = await h.rpc<FailedListReply>('failed-list', { limit: 2, tenant: 'pager', cursor: p1.nextCursor });
    expect(p2.items).toHaveLength(1);
    expect(p2.nextCursor).toBeNull();
    expect([...p1.items, ...p2.items].map((i) => i.webhookId).sort()).toEqual([...ids].sort());
    // Oldest first.
    expect(Number(p1.items[0]!.id)).toBeLessThan(Number(p1.items[1]!.id));
    expect((await h.rpc<FailedListReply>('failed-list', { limit: 10, tenant: 'nobody' })).items).toEqual([]);
    await expect(h.rpc('failed-list', { limit: 0 })).rejects.toMatchObject({ status: 400 });
    await expect(h.rpc('failed-list', { limit: 10, cursor: 'x' })).rejects.toMatchObject({ status: 400 });
    await expect(h.rpc('failed-list', { limit: 10, tenant: 'a.b' })).rejects.toMatchObject({ status: 400 });
  });

  it("signs a tenant's webhooks with its own secret only, with both secrets during a rotation", async () => {
    const r = await receiver();
    await h.event({ tenant: 'acme', callbackUrl: `${r.url}/acme` });
    await h.event({ tenant: 'globex', callbackUrl: `${r.url}/globex` });
    await h.event({ tenant: 'default', callbackUrl: `${r.url}/default` });
    await r.waitForCount(() => true, 3, { timeoutMs: 15_000 });
    const by = (p: string) => r.received.find((w) => w.path === p)!;
    const acme = by('/acme');
    expect(String(acme.headers['webhook-signature']).split(' ')).toHaveLength(2);
    expect(verifies(ACME_OLD, acme)).toBe(true);
    expect(verifies(ACME_NEW, acme)).toBe(true);
    expect(verifies(GLOBEX, acme)).toBe(false);
    expect(verifies(TEST_SECRET, acme)).toBe(false);
    const globex = by('/globex');
    expect(String(globex.headers['webhook-signature']).split(' ')).toHaveLength(1);
    expect(verifies(GLOBEX, globex)).toBe(true);
    expect(verifies(ACME_NEW, globex)).toBe(false);
    expect(verifies(TEST_SECRET, globex)).toBe(false);
    const def = by('/default');
    expect(verifies(TEST_SECRET, def)).toBe(true);
    expect(verifies(GLOBEX, def)).toBe(false);
  });

  it('does not follow redirects: the target never hears of it and the delivery fails with the 3xx', async () => {
    const target = await receiver();
    const r = await receiver();
    r.respond({ status: 307, headers: { location: `${target.url}/elsewhere` } });
    const { webhookId } = await h.event({ callbackUrl: `${r.url}/moved` });
    const item = await waitFor(() => failedFor(webhookId), { what: 'the failed entry', timeoutMs: 20_000 });
    expect(item).toMatchObject({ lastStatus: 307, attempts: 4 });
    expect(item.lastError).toContain('not followed');
    expect(r.received).toHaveLength(4);
    expect(target.received).toHaveLength(0);
  });

  it('presigns downloadUrls at delivery time: a retry carries a fresh, working URL', async () => {
    const store = new OutputStore({
      S3_ENDPOINT: h.s3!.endpoint,
      S3_REGION: 'us-east-1',
      S3_BUCKET: 'gantry-outputs',
      S3_FORCE_PATH_STYLE: true,
      AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
      S3_PRESIGN_SECONDS: 600,
    });
    const jobId = `J${Date.now()}`;
    await store.putObject(`jobs/${jobId}/out.txt`, 'the output', 'text/plain');
    const r = await receiver();
    r.failFirst(1, { status: 502 });
    await h.event({
      jobId,
      type: 'job.completed',
      sequence: 3,
      callbackUrl: `${r.url}/done`,
      outputs: [{ name: 'out.txt', url: `s3://gantry-outputs/jobs/${jobId}/out.txt`, sizeBytes: 10 }],
    });
    const [first, second] = await r.waitForCount(() => true, 2, { timeoutMs: 15_000 });
    const u1 = bodyOf(first!).data.outputs![0]!.downloadUrl!;
    const u2 = bodyOf(second!).data.outputs![0]!.downloadUrl!;
    expect(u1).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/gantry-outputs\/jobs\/.+X-Amz-Signature=/);
    expect(u2).not.toBe(u1);
    const res = await fetch(u2);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('the output');
    // The signature covers the presigned body.
    expect(verifies(TEST_SECRET, second!)).toBe(true);
    store.destroy();
  });

  it('sends the started event derived from an outcome that records its start, before the outcome, once each', async () => {
    const r = await receiver();
    const callbackUrl = `${r.url}/coalesced`;
    const startedAt = new Date(Date.now() - 50).toISOString();
    const { jobId } = await h.event({ type: 'job.queued', sequence: 1, callbackUrl });
    const { event } = await h.event({
      jobId,
      type: 'job.completed',
      sequence: 3,
      callbackUrl,
      started: { sequence: 2, timestamp: startedAt, workerId: 'w-short', gpus: ['GPU-a'], gpuIndices: [0] },
    });
    // The same revision handled again (as after a crash between publish and ack): no delivery twice.
    await publishJson(h.client.js, SUBJECTS.job(jobId), event, { msgID: `${jobId}.1.3.again` });
    await r.waitForCount(() => true, 3, { timeoutMs: 15_000 });
    await idle();
    expect(r.received).toHaveLength(3);
    const bodies = r.received.map(bodyOf).sort((a, b) => a.sequence - b.sequence);
    expect(bodies.map((b) => [b.type, b.sequence, b.data['status']])).toEqual([
      ['job.queued', 1, 'queued'],
      ['job.started', 2, 'running'],
      ['job.completed', 3, 'completed'],
    ]);
    expect(bodies[1]).toMatchObject({ timestamp: startedAt, data: { workerId: 'w-short', startedAt } });
    expect(bodies[1]!.data['finishedAt']).toBeUndefined();
    expect(new Set(r.received.map(idOf))).toEqual(new Set([1, 2, 3].map((n) => `msg_${jobId}_1_${n}`)));
  });

  it('sends every public event with sequence, generation, timestamp and the job view; nothing for internal events', async () => {
    const r = await receiver();
    const callbackUrl = `${r.url}/life`;
    const { jobId } = await h.event({ type: 'job.queued', sequence: 1, callbackUrl, callbackToken: 'secret-tok' });
    await h.event({ jobId, type: 'job.started', sequence: 2, callbackUrl, callbackToken: 'secret-tok' });
    await h.event({ jobId, type: 'job.cancel_requested', sequence: 3, callbackUrl });
    await h.event({ jobId, type: 'job.progress', sequence: 4, callbackUrl, progress: { percent: 50 } });
    await h.event({ jobId, type: 'job.cancelled', generation: 1, sequence: 5, callbackUrl });
    await h.event({ jobId, type: 'job.queued', generation: 2, sequence: 6, callbackUrl });
    await h.event({ type: 'job.queued' }); // no callback URL: nothing to send
    await r.waitForCount(() => true, 5, { timeoutMs: 15_000 });
    await idle();
    expect(r.received).toHaveLength(5);
    const bodies = r.received.map(bodyOf).sort((a, b) => a.sequence - b.sequence);
    expect(bodies.map((b) => [b.type, b.sequence, b.generation])).toEqual([
      ['job.queued', 1, 1],
      ['job.started', 2, 1],
      ['job.progress', 4, 1],
      ['job.cancelled', 5, 1],
      ['job.queued', 6, 2],
    ]);
    for (const w of r.received) {
      const b = bodyOf(w);
      expect(idOf(w)).toBe(`msg_${jobId}_${b.generation}_${b.sequence}`);
      expect(Number.isFinite(Date.parse(b.timestamp))).toBe(true);
      expect(b.data).toMatchObject({ id: jobId, sequence: b.sequence, generation: b.generation, tenant: 'default' });
      expect(b.data['status']).toEqual(expect.any(String));
      expect(JSON.stringify(b.data)).not.toContain('secret-tok');
    }
    expect(bodies[2]!.data['progress']).toEqual({ percent: 50 });
  });

  it('exposes deliveries, failures, retries, latency and pending in /metrics', async () => {
    const text = await h.metrics(notifier);
    expect(metricValue(text, 'gantry_webhook_deliveries_total')).toBeGreaterThanOrEqual(10);
    expect(metricValue(text, 'gantry_webhook_failures_total', { reason: 'http' })).toBeGreaterThan(0);
    expect(metricValue(text, 'gantry_webhook_retries_total')).toBeGreaterThan(0);
    expect(metricValue(text, 'gantry_webhook_dead_letters_total')).toBeGreaterThanOrEqual(5);
    expect(metricValue(text, 'gantry_webhook_replays_total')).toBe(1);
    expect(metricValue(text, 'gantry_webhook_attempt_duration_seconds_count')).toBeGreaterThan(10);
    expect(metricValue(text, 'gantry_webhook_attempt_duration_seconds_bucket', { le: '+Inf' })).toBe(
      metricValue(text, 'gantry_webhook_attempt_duration_seconds_count'),
    );
    expect(text).toMatch(/^gantry_webhook_pending\{[^}]*\} 0$/m);
    expect(metricValue(text, 'gantry_webhooks_enqueued_total', { type: 'job.queued' })).toBeGreaterThan(0);
  });
});

describe('notifier address policy at delivery time (ALLOW_PRIVATE_URLS=false)', () => {
  let h: NotifierHarness;
  let r: WebhookReceiver;

  beforeAll(async () => {
    h = await NotifierHarness.start({ env: { ALLOW_PRIVATE_URLS: 'false' } });
    await h.replica({ WEBHOOK_RETRY_DELAYS_MS: '100,100,100' });
    r = await WebhookReceiver.start();
  });
  afterAll(async () => {
    await r?.close();
    await h?.stop();
  });

  it('refuses URLs that resolve to loopback, private or metadata addresses and dead-letters them after one try', async () => {
    const port = new URL(r.url).port;
    const urls = [
      `http://127.0.0.1:${port}/literal`,
      `http://localhost:${port}/dns`,
      `http://[::ffff:127.0.0.1]:${port}/mapped`,
      `http://[::1]:${port}/v6`,
      'http://169.254.169.254/latest/meta-data/',
      'http://metadata.google.internal/computeMetadata/v1/',
    ];
    const sent = await Promise.all(urls.map((callbackUrl) => h.event({ callbackUrl })));
    const items = await waitFor(
      async () => {
        const page = await h.rpc<FailedListReply>('failed-list', { limit: 50 });
        return page.items.length === urls.length ? page.items : undefined;
      },
      { what: 'every private URL dead-lettered', timeoutMs: 15_000 },
    );
    expect(items.map((i) => i.webhookId).sort()).toEqual(sent.map((s) => s.webhookId).sort());
    for (const i of items) {
      expect(i.attempts).toBe(1);
      expect(i.lastStatus).toBeNull();
      expect(i.lastError).toMatch(/refused/);
    }
    expect(r.received).toHaveLength(0);
  });
});

describe('notifier across a nats-server restart', () => {
  let h: NotifierHarness;
  let r: WebhookReceiver;

  beforeAll(async () => {
    h = await NotifierHarness.start();
    await h.replica({ WEBHOOK_RETRY_DELAYS_MS: '4000,4000' });
    r = await WebhookReceiver.start();
  });
  afterAll(async () => {
    await r?.close();
    await h?.stop();
  });

  it('keeps the deliveries stream unexpiring and a waiting retry survives nats-server being killed and restarted', async () => {
    const info = await h.client.jsm.streams.info(STREAMS.webhooks);
    expect(info.config.max_age).toBe(0);
    expect(info.config.max_msgs).toBe(-1);
    expect(info.config.retention).toBe('workqueue');
    const consumer = await h.client.jsm.consumers.info(STREAMS.webhooks, CONSUMERS.notifierDeliveries);
    expect(consumer.config.max_deliver).toBe(-1);
    expect(info.config.subjects).toEqual(expect.arrayContaining([SUBJECTS.webhooksAll, SUBJECTS.webhooksTenantAll]));

    r.failFirst(1, { status: 503 });
    const { webhookId } = await h.event({ callbackUrl: `${r.url}/restart` });
    await r.waitForCount(() => true, 1, { timeoutMs: 10_000 });
    // The retry now waits (4 s) in the broker. Kill the broker and bring it back on the same store.
    await h.nats.kill();
    const downAt = Date.now();
    await h.nats.restart();
    const [, second] = await r.waitForCount(() => true, 2, { timeoutMs: 30_000 });
    expect(second!.answered).toBe(204);
    expect(idOf(second!)).toBe(webhookId);
    expect(second!.receivedAt).toBeGreaterThan(downAt);
    expect(verifies(TEST_SECRET, second!)).toBe(true);
  });
});
