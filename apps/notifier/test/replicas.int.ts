/**
 * Several notifier replicas on one real nats-server: they share the work (one durable consumer per stage) without
 * sending a webhook twice, and `job.progress` is throttled per job across all of them (KV compare-and-set).
 */
import { newId } from '@gantry/contracts';
import { waitFor, WebhookReceiver } from '@gantry/testing';
import { idOf, metricValue, NotifierHarness, TEST_SECRET, verifies } from './harness';

const INTERVAL_MS = 500;

describe('notifier replicas (real NATS)', () => {
  let h: NotifierHarness;
  let r: WebhookReceiver;

  beforeAll(async () => {
    h = await NotifierHarness.start({ env: { WEBHOOK_PROGRESS_INTERVAL_MS: String(INTERVAL_MS) } });
    for (let i = 0; i < 3; i++) await h.replica();
    r = await WebhookReceiver.start();
  });
  afterAll(async () => {
    await r?.close();
    await h?.stop();
  });

  it('shares deliveries between replicas and sends each webhook once', async () => {
    const n = 300;
    const ids = new Set<string>();
    for (let i = 0; i < n; i++) ids.add((await h.event({ callbackUrl: `${r.url}/share` })).webhookId);
    await r.waitForCount((w) => w.path === '/share', n, { timeoutMs: 30_000 });
    const got = r.matching((w) => w.path === '/share');
    expect(new Set(got.map(idOf))).toEqual(ids);
    expect(got).toHaveLength(n);
    expect(got.every((w) => verifies(TEST_SECRET, w))).toBe(true);
    const perReplica = await Promise.all(
      h.replicas.map(async (x) => metricValue(await h.metrics(x), 'gantry_webhook_deliveries_total')),
    );
    expect(perReplica.reduce((a, b) => a + b, 0)).toBe(n);
    expect(perReplica.filter((v) => v > 0).length).toBeGreaterThanOrEqual(2);
  });

  it('sends job.progress at most once per WEBHOOK_PROGRESS_INTERVAL_MS per job across replicas', async () => {
    const jobId = newId();
    const callbackUrl = `${r.url}/progress`;
    const started = Date.now();
    const durationMs = 3_000;
    let seq = 2;
    const handled = async (): Promise<number> => {
      let n = 0;
      for (const x of h.replicas) {
        const text = await h.metrics(x);
        n +=
          metricValue(text, 'gantry_webhooks_enqueued_total', { type: 'job.progress' }) +
          metricValue(text, 'gantry_webhook_progress_throttled_total');
      }
      return n;
    };
    // A worker reporting progress for 3 s, five reports at a time (so replicas race on the same job's throttle), each
    // burst once the last one has been taken in by some replica (sent or throttled).
    while (Date.now() - started < durationMs) {
      const burst = Array.from({ length: 5 }, () => ++seq);
      await Promise.all(
        burst.map((sequence) =>
          h.event({
            jobId,
            type: 'job.progress',
            sequence,
            callbackUrl,
            progress: { percent: Math.min(99, sequence) },
          }),
        ),
      );
      const published = seq - 2;
      await waitFor(async () => (await handled()) >= published, {
        what: `${published} progress events handled`,
        timeoutMs: 20_000,
        intervalMs: 10,
      });
    }
    const sentCount = (
      await Promise.all(
        h.replicas.map(async (x) =>
          metricValue(await h.metrics(x), 'gantry_webhooks_enqueued_total', { type: 'job.progress' }),
        ),
      )
    ).reduce((a, b) => a + b, 0);
    const hooks = await r.waitForCount((w) => w.path === '/progress', sentCount, { timeoutMs: 10_000 });
    const throttledBy = await Promise.all(
      h.replicas.map(async (x) => metricValue(await h.metrics(x), 'gantry_webhook_progress_throttled_total')),
    );
    // The throttle was exercised by more than one replica (so it is shared, not per process).
    expect(throttledBy.filter((v) => v > 0).length).toBeGreaterThanOrEqual(2);

    const times = hooks.map((w) => Date.parse((w.json as { timestamp: string }).timestamp)).sort((a, b) => a - b);
    expect(hooks.length).toBeGreaterThanOrEqual(3);
    expect(hooks.length).toBeLessThanOrEqual(Math.ceil(durationMs / INTERVAL_MS) + 1);
    for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(INTERVAL_MS);
    expect(new Set(hooks.map(idOf)).size).toBe(hooks.length);
  });
});
