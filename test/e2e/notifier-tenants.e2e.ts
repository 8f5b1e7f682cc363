/**
 * The noisy neighbour, for real (a notifier process, real HTTP receivers, the real jobs stream): tenant A's 300 jobs
 * call back to 33 endpoints that hang (one origin per job in rotation: 33 loopback ports, so per-origin gates alone
 * would let A fill every delivery slot), then tenant B's 5 jobs' webhooks must arrive within seconds — before any of
 * A's hanging requests has even timed out. The notifier is then killed with `kill -9` while A's deliveries are held,
 * A's endpoints recover, and a new notifier delivers every one of A's 300 webhooks exactly once (with a 2xx), and
 * dead-letters none. Before v1.1 (one consumer, slots per origin) B waited for A's attempts to time out.
 */
import { STREAMS, SUBJECTS, type JobEvent } from '@gantry/contracts';
import { NatsHandle } from '@gantry/jetstream';
import { callbackEvent, metric, publishAll } from './support/job-events';
import { createLogger } from '@gantry/telemetry';
import { E2E_WEBHOOK_SECRET, NatsServer, ServiceProcess, waitFor, WebhookReceiver } from '@gantry/testing';

jest.setTimeout(600_000);

const A_JOBS = 300;
const A_ENDPOINTS = 33;
const B_JOBS = 5;
/** A's requests hang this long before they count as failed: B must not wait for that. */
const TIMEOUT_MS = 30_000;
const TENANT_SLOTS = 16;
const ALL_SLOTS = 64;
/** "Within seconds" on a loaded 2-core machine; far below TIMEOUT_MS, which is what B waited before v1.1. */
const B_BOUND_MS = 10_000;

function event(tenant: string, callbackUrl: string): JobEvent {
  return callbackEvent(callbackUrl, { tenant });
}

const jobOf = (body: unknown) => (body as { data: { id: string } }).data.id;

describe('webhooks: one tenant’s hanging endpoints never delay another tenant (real notifier processes)', () => {
  let nats: NatsServer;
  let client: NatsHandle;
  let notifier: ServiceProcess;
  const hanging: WebhookReceiver[] = [];
  let quiet: WebhookReceiver;

  const env = {
    WEBHOOK_SECRET: E2E_WEBHOOK_SECRET,
    ALLOW_PRIVATE_URLS: 'true',
    NOTIFIER_HTTP_PORT: '0',
    WEBHOOK_TIMEOUT_MS: String(TIMEOUT_MS),
    WEBHOOK_MAX_IN_FLIGHT: String(ALL_SLOTS),
    WEBHOOK_TENANT_MAX_IN_FLIGHT: String(TENANT_SLOTS),
    WEBHOOK_TENANT_MAX_PENDING: '1000',
    // A's retries keep coming due quickly and never run out during the test.
    WEBHOOK_RETRY_DELAYS_MS: ['500', ...Array<string>(40).fill('2000')].join(','),
  };

  async function startNotifier(): Promise<{ p: ServiceProcess; ops: string }> {
    const p = new ServiceProcess('notifier', { NATS_URL: nats.url, ...env }).start();
    const line = await p.waitForLog((l) => l.msg === 'notifier ops endpoint listening', { timeoutMs: 120_000 });
    await p.waitForLog((l) => l.msg === 'notifier started', { timeoutMs: 120_000 });
    return { p, ops: String(line['url']) };
  }

  beforeAll(async () => {
    nats = await NatsServer.start();
    for (let i = 0; i < A_ENDPOINTS; i++) {
      const r = await WebhookReceiver.start();
      r.respond({ status: 200, hang: true });
      hanging.push(r);
    }
    quiet = await WebhookReceiver.start();
    client = await NatsHandle.connect({
      servers: [nats.url],
      name: 'tenants-test',
      logger: createLogger('t', 'silent'),
    });
  }, 120_000);

  afterAll(async () => {
    await notifier?.kill('SIGKILL').catch(() => undefined);
    await client?.drain();
    await Promise.allSettled([...hanging.map((r) => r.close()), quiet?.close()]);
    await nats?.dispose();
  });

  const requestsToA = () => hanging.reduce((n, r) => n + r.received.length, 0);

  it('delivers B’s webhooks within seconds while A hangs on 33 origins, and all of A’s after a kill -9 and recovery', async () => {
    let { p, ops } = await startNotifier();
    notifier = p;
    const a = Array.from({ length: A_JOBS }, (_, i) => event('tenant-a', `${hanging[i % A_ENDPOINTS]!.url}/a`));
    const aStart = Date.now();
    await publishAll(client, a);
    // A holds its share: its slots are busy with hanging requests.
    await waitFor(() => requestsToA() >= TENANT_SLOTS, {
      what: `${TENANT_SLOTS} of A's requests hanging`,
      timeoutMs: 60_000,
      intervalMs: 50,
    });

    const b = Array.from({ length: B_JOBS }, () => event('tenant-b', `${quiet.url}/b`));
    const bStart = Date.now();
    await publishAll(client, b);
    const got = await quiet.waitForCount((w) => w.path === '/b', B_JOBS, { timeoutMs: 120_000, intervalMs: 20 });
    const bLatency = Math.max(...got.map((w) => w.receivedAt)) - bStart;
    const aInFlight = requestsToA();
    const aElapsed = Date.now() - aStart;
    process.stdout.write(
      `noisy neighbour: B's ${B_JOBS} webhooks all arrived ${bLatency} ms after publish, while A (${A_JOBS} jobs, ` +
        `${A_ENDPOINTS} hanging origins) had ${aInFlight} requests out (tenant slots ${TENANT_SLOTS} of ${ALL_SLOTS})\n`,
    );
    expect(new Set(got.map((w) => jobOf(w.json)))).toEqual(new Set(b.map((e) => e.job.id)));
    expect(bLatency).toBeLessThan(B_BOUND_MS);
    // No hanging request of A has timed out yet, so every request A sent is still out: bounded by its share.
    expect(aElapsed).toBeLessThan(TIMEOUT_MS);
    expect(aInFlight).toBeLessThanOrEqual(TENANT_SLOTS);

    // B's deliveries are settled (acked off the deliveries stream) before the kill: a kill between B's 2xx and its
    // ack would rightly send it again (at least once, same webhook-id), which is not what this test is about.
    await waitFor(
      async () => {
        const info = await client.jsm.streams.info(STREAMS.webhooks, {
          subjects_filter: SUBJECTS.webhooksOfTenant('tenant-b'),
        });
        return Object.keys(info.state.subjects ?? {}).length === 0;
      },
      { what: "B's deliveries acked off the deliveries stream", timeoutMs: 60_000, intervalMs: 50 },
    );

    // kill -9 while A's deliveries are held (its hanging requests die with the process), then A's endpoints recover.
    await notifier.kill('SIGKILL');
    for (const r of hanging) r.respond({ status: 200 });
    ({ p, ops } = await startNotifier());
    notifier = p;
    const aIds = new Set(a.map((e) => e.job.id));
    await waitFor(
      () => {
        const delivered = new Set<string>();
        for (const r of hanging) for (const w of r.received) if (w.answered === 200) delivered.add(jobOf(w.json));
        return [...aIds].every((id) => delivered.has(id));
      },
      { what: `all ${A_JOBS} of A's webhooks delivered after recovery`, timeoutMs: 300_000, intervalMs: 500 },
    );
    // Exactly once each with a 2xx; nothing dead-lettered; B's were not sent again.
    const okPerJob = new Map<string, number>();
    for (const r of hanging)
      for (const w of r.received)
        if (w.answered === 200) okPerJob.set(jobOf(w.json), (okPerJob.get(jobOf(w.json)) ?? 0) + 1);
    expect([...okPerJob.values()].every((n) => n === 1)).toBe(true);
    expect(okPerJob.size).toBe(A_JOBS);
    const metrics = await (await fetch(`${ops}/metrics`)).text();
    expect(metric(metrics, 'gantry_webhook_dead_letters_total')).toBe(0);
    expect(quiet.matching((w) => w.path === '/b')).toHaveLength(B_JOBS);
    await waitFor(async () => (await client.jsm.streams.info('GANTRY_WEBHOOKS_V1')).state.messages === 0, {
      what: 'the deliveries stream to be empty',
      timeoutMs: 60_000,
      intervalMs: 250,
    });
  });
});
