/**
 * A quiet tenant's webhooks do not wait behind a flooding tenant at the notifier's intake (issue 15), for real: one
 * notifier process, the real jobs stream, real HTTP receivers. While the notifier is down (a backlog, as a flood
 * faster than the intake builds one), tenant A publishes 4,000 lifecycle events (callbacks to 33 origins that never
 * answer, so A's deliveries only pile up), then tenant B publishes 5. Every one of A's events is ahead of B's in the
 * one intake consumer (stream order); before the intake read ahead and took turns across tenants, B's deliveries were
 * only published after all of A's 4,000 (with the read-ahead window at 64, the old in-order intake, this test fails:
 * the intake has finished A's flood when B's webhooks arrive). Now B's webhooks must arrive within a few seconds of
 * the notifier starting, while the intake still has a large part of A's flood unfinished — B overtook it.
 */
import { CONSUMERS, STREAMS } from '@gantry/contracts';
import { NatsHandle } from '@gantry/jetstream';
import { createLogger } from '@gantry/telemetry';
import { E2E_WEBHOOK_SECRET, NatsServer, ServiceProcess, waitFor, WebhookReceiver } from '@gantry/testing';
import { callbackEvent, publishAll } from './support/job-events';

jest.setTimeout(600_000);

const A_EVENTS = 4_000;
const A_ENDPOINTS = 33;
const B_EVENTS = 5;
/**
 * Generous for a loaded 2-core machine (load average 22: 7.4 s measured, the intake then still had 3,208 of A's events
 * unfinished; working off A's flood took it over 30 s). What proves B overtook the flood is the next bound.
 */
const B_BOUND_MS = 15_000;
/** A's events the intake must still have unfinished when B's last webhook arrives (B overtook the flood). */
const A_UNFINISHED_AT_LEAST = 500;

const jobOf = (body: unknown) => (body as { data: { id: string } }).data.id;

describe('webhooks: a quiet tenant does not wait behind a flooding tenant at the intake (real notifier process)', () => {
  let nats: NatsServer;
  let client: NatsHandle;
  let notifier: ServiceProcess;
  const hanging: WebhookReceiver[] = [];
  let quiet: WebhookReceiver;

  const startNotifier = async () => {
    const p = new ServiceProcess('notifier', {
      NATS_URL: nats.url,
      WEBHOOK_SECRET: E2E_WEBHOOK_SECRET,
      ALLOW_PRIVATE_URLS: 'true',
      NOTIFIER_HTTP_PORT: '0',
      // A's requests hang for the whole test; none times out.
      WEBHOOK_TIMEOUT_MS: '120000',
      ...(process.env['INTAKE_WINDOW'] ? { WEBHOOK_INTAKE_WINDOW: process.env['INTAKE_WINDOW'] } : {}),
    }).start();
    await p.waitForLog((l) => l.msg === 'notifier started', { timeoutMs: 120_000 });
    return p;
  };

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
      name: 'intake-test',
      logger: createLogger('t', 'silent'),
    });
    notifier = await startNotifier();
  }, 180_000);

  afterAll(async () => {
    await notifier?.kill('SIGKILL').catch(() => undefined);
    await client?.drain();
    await Promise.allSettled([...hanging.map((r) => r.close()), quiet?.close()]);
    await nats?.dispose();
  });

  /** Events of the jobs stream the intake has not finished: not yet handed out, or handed out and not acked. */
  async function intakeUnfinished(): Promise<number> {
    const ci = await client.jsm.consumers.info(STREAMS.jobs, CONSUMERS.notifierIntake);
    return ci.num_pending + ci.num_ack_pending;
  }

  it('delivers B’s webhooks within seconds of a start, ahead of the rest of A’s 4,000 events', async () => {
    // B's delivery consumer is created with its first delivery (a one-time cost per tenant): not what is measured.
    await publishAll(client, [callbackEvent(`${quiet.url}/warm`, { tenant: 'tenant-b' })]);
    await quiet.waitForCount((w) => w.path === '/warm', 1, { timeoutMs: 60_000, intervalMs: 20 });
    await notifier.kill('SIGTERM', 60_000);

    const a = Array.from({ length: A_EVENTS }, (_, i) =>
      callbackEvent(`${hanging[i % A_ENDPOINTS]!.url}/a`, { tenant: 'tenant-a' }),
    );
    await publishAll(client, a, 500);
    const b = Array.from({ length: B_EVENTS }, () => callbackEvent(`${quiet.url}/b`, { tenant: 'tenant-b' }));
    await publishAll(client, b);
    expect(await intakeUnfinished()).toBe(A_EVENTS + B_EVENTS);
    notifier = await startNotifier();
    const bStart = Date.now();
    const got = await quiet.waitForCount((w) => w.path === '/b', B_EVENTS, { timeoutMs: 120_000, intervalMs: 10 });
    const unfinished = await intakeUnfinished();
    const bLatency = Math.max(...got.map((w) => w.receivedAt)) - bStart;
    process.stdout.write(
      `intake fairness: B's ${B_EVENTS} webhooks all arrived ${bLatency} ms after the notifier started, behind A's ${A_EVENTS} ` +
        `events; the intake still had ${unfinished} of A's unfinished then\n`,
    );
    expect(new Set(got.map((w) => jobOf(w.json)))).toEqual(new Set(b.map((e) => e.job.id)));
    expect(bLatency).toBeLessThan(B_BOUND_MS);
    expect(unfinished).toBeGreaterThanOrEqual(A_UNFINISHED_AT_LEAST);

    // Nothing of A's was lost by being read ahead: every event becomes a delivery (A's wait in its own consumer).
    await waitFor(async () => (await intakeUnfinished()) === 0, {
      what: "the intake to finish A's flood",
      timeoutMs: 300_000,
      intervalMs: 250,
    });
    const deliveries = await client.jsm.streams.info(STREAMS.webhooks, {
      subjects_filter: 'gantry.v1.webhook.tenant-a.>',
    });
    expect(Object.values(deliveries.state.subjects ?? {}).reduce((n, c) => n + c, 0)).toBe(A_EVENTS);
  });
});
