/**
 * One tenant's dead endpoint does not take its tenant's whole pending budget from the tenant's other endpoints
 * (WEBHOOK_ENDPOINT_MAX_PENDING, issue 15), for real: one notifier process, real HTTP receivers, the real streams.
 * Tenant A has 300 deliveries for an endpoint that hangs and a pending budget of 100; without a per-endpoint share
 * the hanging endpoint's deferred deliveries hold all 100 and A's healthy endpoint waits until the hanging requests
 * time out (30 s). With a share of 20 the hanging endpoint's excess is parked durably outside A's consumer, A's
 * healthy endpoint gets its 5 webhooks within seconds, and once the hanging endpoint recovers every one of its 300
 * deliveries comes back from the parked stream and is delivered (nothing dropped, nothing dead-lettered).
 */
import { STREAMS } from '@gantry/contracts';
import { NatsHandle } from '@gantry/jetstream';
import { createLogger } from '@gantry/telemetry';
import { E2E_WEBHOOK_SECRET, NatsServer, ServiceProcess, waitFor, WebhookReceiver } from '@gantry/testing';
import { callbackEvent, metric, publishAll } from './support/job-events';

jest.setTimeout(600_000);

const DEAD_EVENTS = 300;
const HEALTHY_EVENTS = 5;
const TENANT_PENDING = 100;
const SHARE = Number(process.env['ENDPOINT_SHARE'] ?? 20);
/** The hanging requests time out after this: the healthy endpoint must not wait for that. */
const TIMEOUT_MS = 30_000;
const HEALTHY_BOUND_MS = 15_000;

const jobOf = (body: unknown) => (body as { data: { id: string } }).data.id;

/** A per-tenant gauge's non-zero series, tenant → value. */
function tenantSeries(text: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of text.matchAll(new RegExp(`^${name}\\{([^}]*)\\} (\\S+)$`, 'gm'))) {
    const tenant = /(?:^|,)tenant="([^"]*)"/.exec(m[1]!)?.[1];
    if (tenant !== undefined && Number(m[2]) !== 0) out.set(tenant, Number(m[2]));
  }
  return out;
}

describe('webhooks: a dead endpoint holds at most its share of its tenant’s pending budget (real notifier process)', () => {
  let nats: NatsServer;
  let client: NatsHandle;
  let notifier: ServiceProcess;
  let ops: string;
  let dead: WebhookReceiver;
  let healthy: WebhookReceiver;

  beforeAll(async () => {
    nats = await NatsServer.start();
    dead = await WebhookReceiver.start();
    dead.respond({ status: 200, hang: true });
    healthy = await WebhookReceiver.start();
    client = await NatsHandle.connect({ servers: [nats.url], name: 'share-test', logger: createLogger('t', 'silent') });
    notifier = new ServiceProcess('notifier', {
      NATS_URL: nats.url,
      WEBHOOK_SECRET: E2E_WEBHOOK_SECRET,
      ALLOW_PRIVATE_URLS: 'true',
      NOTIFIER_HTTP_PORT: '0',
      WEBHOOK_TIMEOUT_MS: String(TIMEOUT_MS),
      WEBHOOK_MAX_IN_FLIGHT: '64',
      WEBHOOK_TENANT_MAX_IN_FLIGHT: '16',
      WEBHOOK_TENANT_MAX_PENDING: String(TENANT_PENDING),
      // ENDPOINT_SHARE=0 (no per-endpoint share, as before) shows what the share prevents: this test then fails.
      WEBHOOK_ENDPOINT_MAX_PENDING: String(SHARE),
      WEBHOOK_RETRY_DELAYS_MS: ['500', ...Array<string>(20).fill('1000')].join(','),
    }).start();
    const line = await notifier.waitForLog((l) => l.msg === 'notifier ops endpoint listening', { timeoutMs: 120_000 });
    ops = String(line['url']);
    await notifier.waitForLog((l) => l.msg === 'notifier started', { timeoutMs: 120_000 });
  }, 180_000);

  afterAll(async () => {
    await notifier?.kill('SIGKILL').catch(() => undefined);
    await client?.drain();
    await Promise.allSettled([dead?.close(), healthy?.close()]);
    await nats?.dispose();
  });

  const parkedNow = async () => (await client.jsm.streams.info(STREAMS.webhookParked)).state.messages;

  it('delivers to the tenant’s healthy endpoint within seconds while its dead endpoint’s excess is parked, then all', async () => {
    const deadEvents = Array.from({ length: DEAD_EVENTS }, () =>
      callbackEvent(`${dead.url}/dead`, { tenant: 'tenant-a' }),
    );
    const start = Date.now();
    await publishAll(client, deadEvents);
    await waitFor(async () => dead.received.length > 0 && (SHARE === 0 || (await parkedNow()) > 0), {
      what: "the dead endpoint's first requests out and its excess parked",
      timeoutMs: 60_000,
      intervalMs: 100,
    });

    const healthyEvents = Array.from({ length: HEALTHY_EVENTS }, () =>
      callbackEvent(`${healthy.url}/ok`, { tenant: 'tenant-a' }),
    );
    const hStart = Date.now();
    await publishAll(client, healthyEvents);
    const got = await healthy.waitForCount((w) => w.path === '/ok', HEALTHY_EVENTS, {
      timeoutMs: 120_000,
      intervalMs: 20,
    });
    const latency = Math.max(...got.map((w) => w.receivedAt)) - hStart;
    const parked = await parkedNow();
    process.stdout.write(
      `endpoint share: the healthy endpoint's ${HEALTHY_EVENTS} webhooks arrived ${latency} ms after publish; ` +
        `${parked} of the dead endpoint's ${DEAD_EVENTS} parked then (share ${SHARE} of ${TENANT_PENDING})\n`,
    );
    expect(new Set(got.map((w) => jobOf(w.json)))).toEqual(new Set(healthyEvents.map((e) => e.job.id)));
    expect(latency).toBeLessThan(HEALTHY_BOUND_MS);
    // No hanging request has timed out yet: the healthy endpoint did not wait for the dead one's attempts.
    expect(Date.now() - start).toBeLessThan(TIMEOUT_MS);
    expect(parked).toBeGreaterThan(0);
    // The parked deliveries in the metrics: parked now (in all and for tenant A, read from the parked stream), and
    // parked so far (the counter: at least what is parked now, nothing moved back while the endpoint hangs). The gauge
    // reads the stream, which may already hold a park whose publish ack the counter awaits: await a settled scrape.
    const during = await waitFor(
      async () => {
        const text = await (await fetch(`${ops}/metrics`)).text();
        const gauge = metric(text, 'gantry_webhook_parked');
        return gauge > 0 && metric(text, 'gantry_webhook_parked_total') >= gauge ? text : undefined;
      },
      { what: 'the parked counter caught up with the parked stream', timeoutMs: 30_000, intervalMs: 100 },
    );
    const parkedGauge = metric(during, 'gantry_webhook_parked');
    expect(parkedGauge).toBeGreaterThan(0);
    expect(tenantSeries(during, 'gantry_webhook_parked_tenant')).toEqual(new Map([['tenant-a', parkedGauge]]));
    expect(metric(during, 'gantry_webhook_parked_total')).toBeGreaterThanOrEqual(parkedGauge);

    // The dead endpoint recovers: every one of its deliveries comes back from the parked stream and goes out.
    dead.respond({ status: 200 });
    const ids = new Set(deadEvents.map((e) => e.job.id));
    await waitFor(
      () => {
        const delivered = new Set(dead.received.filter((w) => w.answered === 200).map((w) => jobOf(w.json)));
        return [...ids].every((id) => delivered.has(id));
      },
      { what: `all ${DEAD_EVENTS} of the dead endpoint's webhooks delivered`, timeoutMs: 300_000, intervalMs: 500 },
    );
    await waitFor(
      async () => (await parkedNow()) === 0 && (await client.jsm.streams.info(STREAMS.webhooks)).state.messages === 0,
      { what: 'the parked and deliveries streams to be empty', timeoutMs: 60_000, intervalMs: 250 },
    );
    const text = await (await fetch(`${ops}/metrics`)).text();
    expect(metric(text, 'gantry_webhook_dead_letters_total')).toBe(0);
    // Everything parked came back: nothing parked now, and every delivery parked was moved back.
    expect(metric(text, 'gantry_webhook_parked')).toBe(0);
    expect(tenantSeries(text, 'gantry_webhook_parked_tenant')).toEqual(new Map());
    expect(metric(text, 'gantry_webhook_parked_total')).toBeGreaterThan(0);
    expect(metric(text, 'gantry_webhook_unparked_total')).toBe(metric(text, 'gantry_webhook_parked_total'));
  });
});
