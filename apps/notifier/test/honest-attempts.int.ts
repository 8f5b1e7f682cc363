/**
 * API.md §5: an attempt counts only when a request was actually sent, and an endpoint that comes back within the
 * schedule receives every event still owed to it. Real nats-server, real notifier, real HTTP receivers; the short
 * schedule `300,600,1200,2400` (5 attempts over ~4.5 s) with the default circuit (5 consecutive failures, 5 s
 * cooldown), which before this fix dead-lettered deliveries without a request.
 */
import { newId, STREAMS, type FailedListReply, type FailedWebhookView } from '@gantry/contracts';
import { freePort, waitFor, WebhookReceiver } from '@gantry/testing';
import type { RunningNotifier } from '../src/notifier.app';
import { idOf, metricValue, NotifierHarness } from './harness';

const TYPES = ['job.queued', 'job.started', 'job.completed'] as const;

describe('honest webhook attempts behind the circuit breaker (real NATS, real HTTP)', () => {
  let h: NotifierHarness;
  let notifier: RunningNotifier;
  const receivers: WebhookReceiver[] = [];
  const receiver = async (port = 0) => {
    const r = await WebhookReceiver.start(port);
    receivers.push(r);
    return r;
  };

  beforeAll(async () => {
    h = await NotifierHarness.start();
    notifier = await h.replica({
      WEBHOOK_RETRY_DELAYS_MS: '300,600,1200,2400',
      WEBHOOK_TIMEOUT_MS: '1000',
      WEBHOOK_CIRCUIT_FAILURES: '5',
      WEBHOOK_CIRCUIT_COOLDOWN_MS: '5000',
    });
  });
  afterAll(async () => {
    await Promise.allSettled(receivers.map((r) => r.close()));
    await h?.stop();
  });

  async function failedOf(tenant: string): Promise<FailedWebhookView[]> {
    return (await h.rpc<FailedListReply>('failed-list', { limit: 500, tenant })).items;
  }

  async function idle(): Promise<void> {
    await waitFor(
      async () => {
        // A WorkQueue stream: a delivery leaves it when done, whichever tenant's consumer handed it out.
        return (await h.client.jsm.streams.info(STREAMS.webhooks)).state.messages === 0;
      },
      { what: 'no delivery left', timeoutMs: 30_000, intervalMs: 50 },
    );
  }

  /** One job's three events to `url`; returns their webhook ids. */
  async function job(url: string, tenant: string): Promise<string[]> {
    const ids: string[] = [];
    let sequence = 1;
    const jobId = newId();
    for (const type of TYPES)
      ids.push((await h.event({ jobId, type, sequence: sequence++, tenant, callbackUrl: url })).webhookId);
    return ids;
  }

  it('an endpoint down for 1.5 s (circuit opened meanwhile) receives every event, nothing dead-lettered', async () => {
    const port = await freePort();
    const t0 = Date.now();
    const ids = await job(`http://127.0.0.1:${port}/back`, 'down');
    // The outage: connection refused until the circuit has opened and 1.5 s have passed.
    await waitFor(
      async () =>
        Date.now() - t0 >= 1_500 && metricValue(await h.metrics(notifier), 'gantry_webhook_circuit_open') >= 1,
      { what: 'the circuit to open during a 1.5 s outage', timeoutMs: 10_000, intervalMs: 20 },
    );
    const r = await receiver(port);
    await r.waitForCount(() => true, ids.length, { timeoutMs: 15_000 });
    await idle();
    expect(new Set(r.received.map(idOf))).toEqual(new Set(ids));
    expect(r.received.every((w) => w.answered === 204)).toBe(true);
    expect(await failedOf('down')).toEqual([]);
  });

  it('an always-500 endpoint sees exactly the schedule (5 real attempts per delivery) before the DLQ', async () => {
    const r = await receiver();
    r.respond({ status: 500 });
    const ids = await job(`${r.url}/dead`, 'dead');
    const failed = await waitFor(
      async () => ((await failedOf('dead')).length === ids.length ? failedOf('dead') : undefined),
      {
        what: 'three dead letters',
        timeoutMs: 30_000,
      },
    );
    await idle();
    for (const id of ids) expect(r.received.filter((w) => idOf(w) === id)).toHaveLength(5);
    expect(r.received).toHaveLength(15);
    for (const f of failed) expect(f).toMatchObject({ attempts: 5, lastStatus: 500 });
  });

  it('a hanging endpoint: one request at a time, and the dead letters count exactly the requests it received', async () => {
    const r = await receiver();
    r.respond({ status: 0, hang: true });
    // Two jobs: six deliveries whose schedules would send 30 requests.
    const ids = [...(await job(`${r.url}/hang`, 'hang')), ...(await job(`${r.url}/hang2`, 'hang'))];
    const failed = await waitFor(
      async () => {
        const items = await failedOf('hang');
        return items.length === ids.length ? items : undefined;
      },
      { what: 'six dead letters (time budget)', timeoutMs: 40_000, intervalMs: 100 },
    );
    await idle();
    // Every attempt a dead letter reports is a request the endpoint really received, and nothing else was sent.
    const sent = new Map<string, number>();
    for (const w of r.received) sent.set(idOf(w), (sent.get(idOf(w)) ?? 0) + 1);
    for (const f of failed) expect(f.attempts).toBe(sent.get(f.webhookId) ?? 0);
    expect(failed.reduce((n, f) => n + f.attempts, 0)).toBe(r.received.length);
    // The circuit held it to one request at a time: fewer requests than the schedule would have sent.
    expect(r.received.length).toBeLessThan(20);
    expect(failed.some((f) => /circuit stayed open/.test(f.lastError ?? ''))).toBe(true);
  });
});
