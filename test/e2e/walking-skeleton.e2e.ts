/**
 * Foundation II: jobs through the four real processes, signed webhooks verified with the `standardwebhooks` library,
 * and a worker killed with `kill -9` mid-job whose attempt is counted as WORKER_LOST and finished by another worker.
 */
import {
  GantryCluster,
  WebhookReceiver,
  E2E_WEBHOOK_SECRET,
  CLIENT_KEY,
  OTHER_TENANT_KEY,
  waitFor,
  webhookType,
  type ReceivedWebhook,
} from '@gantry/testing';
import { Webhook } from 'standardwebhooks';

interface View {
  id: string;
  status: string;
  attempts: number;
  generation: number;
  sequence: number;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  workerId?: string;
  result?: unknown;
  error?: { code: string };
}

function verify(w: ReceivedWebhook): { type: string; sequence: number; generation: number; data: View } {
  const headers = {
    'webhook-id': String(w.headers['webhook-id']),
    'webhook-timestamp': String(w.headers['webhook-timestamp']),
    'webhook-signature': String(w.headers['webhook-signature']),
  };
  return new Webhook(E2E_WEBHOOK_SECRET).verify(w.body, headers) as {
    type: string;
    sequence: number;
    generation: number;
    data: View;
  };
}

describe('walking skeleton (four real processes)', () => {
  let cluster: GantryCluster;
  let receiver: WebhookReceiver;

  beforeAll(async () => {
    receiver = await WebhookReceiver.start();
    cluster = await GantryCluster.start({ workers: 2 });
  });

  afterAll(async () => {
    await cluster?.stop();
    await receiver?.close();
  });

  it('runs jobs end to end and delivers signed queued/started/completed webhooks', async () => {
    const callbackUrl = `${receiver.url}/hooks/skeleton`;
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      ids.push(
        await cluster.submit(
          { type: 'noop', input: { durationMs: 100, result: { n: i } }, callbackUrl, callbackToken: 'tok-123' },
          CLIENT_KEY,
        ),
      );
    }
    for (const [i, id] of ids.entries()) {
      const j = (await cluster.waitForStatus(id, 'completed')) as unknown as View;
      expect(j.result).toEqual({ n: i });
      expect(j.attempts).toBe(1);
      expect(Date.parse(j.finishedAt!)).toBeGreaterThanOrEqual(Date.parse(j.startedAt!));
      expect(Date.parse(j.startedAt!)).toBeGreaterThanOrEqual(Date.parse(j.createdAt));
    }
    for (const id of ids) {
      const hooks = await receiver.waitForCount((w) => (w.json as { data?: { id?: string } })?.data?.id === id, 3, {
        timeoutMs: 20_000,
      });
      const bodies = hooks.map(verify);
      expect(bodies.map((b) => b.type).sort()).toEqual(['job.completed', 'job.queued', 'job.started']);
      const bySeq = [...bodies].sort((a, b) => a.sequence - b.sequence).map((b) => b.type);
      expect(bySeq).toEqual(['job.queued', 'job.started', 'job.completed']);
      for (const h of hooks) {
        expect(h.headers['authorization']).toBe('Bearer tok-123');
        expect(h.headers['content-type']).toBe('application/json');
        expect(String(h.headers['webhook-id'])).toMatch(new RegExp(`^msg_${id}_1_\\d+$`));
      }
      const completed = bodies.find((b) => b.type === 'job.completed')!;
      expect(completed.data.status).toBe('completed');
      expect(completed.generation).toBe(1);
    }
    // A wrong secret must not verify (the check above can fail).
    const any = receiver.received[0]!;
    expect(() =>
      new Webhook('whsec_d3JvbmctZGV2LXNlY3JldC0wMDAwMDAwMQ==').verify(any.body, {
        'webhook-id': String(any.headers['webhook-id']),
        'webhook-timestamp': String(any.headers['webhook-timestamp']),
        'webhook-signature': String(any.headers['webhook-signature']),
      }),
    ).toThrow();
    expect(receiver.received.every((w) => webhookType(w)?.startsWith('job.'))).toBe(true);
  });

  it("joins the client's trace with no trace exporter configured: the view, the worker's log lines, the webhooks", async () => {
    // No OTEL_* endpoint here: the services' spans carry ids only (libs/telemetry id-only-tracer.ts), and the trace
    // context must still flow from the request to the record, the worker and the webhook requests.
    const traceId = 'ef'.repeat(16);
    const r = await cluster.api<{ id: string }>(
      'POST',
      '/v1/jobs',
      { type: 'noop', input: { durationMs: 50 }, callbackUrl: `${receiver.url}/hooks/traced` },
      CLIENT_KEY,
      { traceparent: `00-${traceId}-${'01'.repeat(8)}-01` },
    );
    expect(r.status).toBe(202);
    const id = r.body.id;
    await cluster.waitForStatus(id, 'completed');
    expect((await cluster.job<{ traceId?: string }>(id)).traceId).toBe(traceId);
    const hooks = await receiver.waitForCount((w) => w.path === '/hooks/traced', 3, { timeoutMs: 20_000 });
    for (const w of hooks)
      expect(String(w.headers['traceparent'])).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
    const lines = await waitFor(
      () => {
        const l = cluster.of('gpu-worker').flatMap((w) => w.lines.filter((x) => x['jobId'] === id));
        return l.some((x) => x.msg === 'attempt finished') && l;
      },
      { what: "the worker's log lines about the job", timeoutMs: 20_000 },
    );
    for (const l of lines) {
      expect(l['traceId']).toBe(traceId);
      expect(l['spanId']).toMatch(/^[0-9a-f]{16}$/);
      expect(l['spanId']).not.toBe('01'.repeat(8));
    }
  });

  it('lists a tenant’s jobs newest first and hides other tenants', async () => {
    const a = await cluster.submit({ type: 'noop', input: {} }, CLIENT_KEY);
    const b = await cluster.submit({ type: 'noop', input: {} }, CLIENT_KEY);
    const other = await cluster.submit({ type: 'noop', input: {} }, OTHER_TENANT_KEY);
    const page = await waitFor(
      async () => {
        const r = await cluster.api<{ items: View[]; nextCursor: string | null }>(
          'GET',
          '/v1/jobs?limit=2',
          undefined,
          CLIENT_KEY,
        );
        return r.body.items?.[0]?.id === b ? r.body : undefined;
      },
      { what: 'the newest job at the head of the list' },
    );
    expect(page.items.map((j) => j.id)).toEqual([b, a]);
    expect(page.nextCursor).toEqual(expect.any(String));
    const next = await cluster.api<{ items: View[] }>(
      'GET',
      `/v1/jobs?limit=2&cursor=${page.nextCursor}`,
      undefined,
      CLIENT_KEY,
    );
    expect(next.body.items.map((j) => j.id)).not.toContain(b);
    expect(next.body.items.length).toBeGreaterThan(0);
    expect((await cluster.api('GET', `/v1/jobs/${other}`, undefined, CLIENT_KEY)).status).toBe(404);
    const theirs = await waitFor(
      async () => {
        const r = await cluster.api<{ items: View[] }>('GET', '/v1/jobs', undefined, OTHER_TENANT_KEY);
        return r.body.items?.length ? r.body.items : undefined;
      },
      { what: "the other tenant's list" },
    );
    expect(theirs.map((j) => j.id)).toEqual([other]);
  });

  it('finishes a job on another worker after its worker is killed with kill -9 (WORKER_LOST counted)', async () => {
    const callbackUrl = `${receiver.url}/hooks/lost`;
    const id = await cluster.submit({
      type: 'noop',
      input: { durationMs: 8_000, progressSteps: 40 },
      maxAttempts: 3,
      callbackUrl,
    });
    const running = (await cluster.waitForJob(
      id,
      (j) => j['status'] === 'running' && j['progress'] !== undefined,
    )) as unknown as View;
    const victim = cluster.of('gpu-worker').find((w) => w.lines.some((l) => l['workerId'] === running.workerId));
    expect(victim).toBeDefined();
    await victim!.kill('SIGKILL');
    const done = (await cluster.waitForStatus(id, 'completed', { timeoutMs: 40_000 })) as unknown as View;
    expect(done.attempts).toBe(2);
    expect(done.workerId).not.toBe(running.workerId);
    const hooks = await receiver.waitForCount(
      (w) => w.path === '/hooks/lost' && webhookType(w) === 'job.completed',
      1,
      { timeoutMs: 20_000 },
    );
    expect(hooks).toHaveLength(1);
    const all = receiver
      .matching((w) => w.path === '/hooks/lost')
      .map(verify)
      .sort((a, b) => a.sequence - b.sequence);
    const retrying = all.filter((b) => b.type === 'job.retrying');
    expect(retrying).toHaveLength(1);
    expect(retrying[0]!.data.error?.code).toBe('WORKER_LOST');
    expect(retrying[0]!.data.attempts).toBe(1);
    const started = all.filter((b) => b.type === 'job.started');
    expect(started.map((b) => b.data.attempts)).toEqual([1, 2]);
    expect(started[1]!.data.workerId).toBe(done.workerId);
  });
});
