/**
 * `@gantry/client` against the whole system as real processes (nats-server, S3 store, scheduler, worker, notifier,
 * gateway): every call goes over HTTP to the real gateway, events come from its real SSE stream, and webhook
 * verification checks deliveries the real notifier signed.
 */
import {
  GantryApiError,
  GantryClient,
  GantryNetworkError,
  WaitTimeoutError,
  WebhookVerificationError,
  verifyWebhook,
  type JobEventMessage,
  type QueueState,
} from '@gantry/client';
import {
  ADMIN_KEY,
  CLIENT_KEY,
  E2E_WEBHOOK_SECRET,
  GantryCluster,
  OTHER_TENANT_KEY,
  WebhookReceiver,
  freePort,
  waitFor,
  within,
} from '@gantry/testing';

describe('@gantry/client against a real stack', () => {
  let cluster: GantryCluster;
  let receiver: WebhookReceiver;
  let admin: GantryClient;
  let client: GantryClient;
  let other: GantryClient;

  beforeAll(async () => {
    receiver = await WebhookReceiver.start();
    cluster = await GantryCluster.start({ env: { WEBHOOK_RETRY_DELAYS_MS: '50,50' } });
    admin = new GantryClient({ url: cluster.gatewayUrl, apiKey: ADMIN_KEY });
    client = new GantryClient({ url: cluster.gatewayUrl, apiKey: CLIENT_KEY });
    other = new GantryClient({ url: cluster.gatewayUrl, apiKey: OTHER_TENANT_KEY });
  });
  afterAll(async () => {
    await cluster?.stop();
    await receiver?.close();
  });

  it('tells each key its role and tenant', async () => {
    await expect(admin.whoami()).resolves.toEqual({ role: 'admin', tenant: 'default' });
    await expect(other.whoami()).resolves.toEqual({ role: 'client', tenant: 'other' });
  });

  it('submits, streams every event in order and waits for the end', async () => {
    const job = await client.jobs.submit({
      type: 'noop',
      input: { durationMs: 400, progressSteps: 4, result: { ok: 1 } },
    });
    expect(job.status).toBe('queued');
    const events: JobEventMessage[] = [];
    for await (const e of client.jobs.events(job.id)) events.push(e);
    const types = events.map((e) => e.type);
    expect(types[0]).toBe('job.queued');
    expect(types).toContain('job.started');
    expect(types).toContain('job.progress');
    expect(types[types.length - 1]).toBe('job.completed');
    const seqs = events.map((e) => e.sequence);
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
    expect(new Set(seqs).size).toBe(seqs.length);

    const done = await client.jobs.wait(job.id, { timeoutMs: 30_000 });
    expect(done).toMatchObject({ id: job.id, status: 'completed', result: { ok: 1 } });
    await expect(client.jobs.get(job.id)).resolves.toMatchObject({ status: 'completed' });
    const page = await client.jobs.list({ status: 'completed', limit: 10 });
    expect(page.items.map((j) => j.id)).toContain(job.id);
  });

  it('wait reports every event as it happens and resolves with the terminal view', async () => {
    const job = await client.jobs.submit({ type: 'noop', input: { durationMs: 300, progressSteps: 3 } });
    const seen: string[] = [];
    const done = await client.jobs.wait(job.id, { timeoutMs: 30_000, onEvent: (e) => seen.push(e.type) });
    expect(done.status).toBe('completed');
    expect(seen).toContain('job.started');
    expect(seen[seen.length - 1]).toBe('job.completed');
  });

  it('gives up waiting with WaitTimeoutError', async () => {
    const job = await client.jobs.submit({ type: 'noop', input: { durationMs: 60_000 } });
    const err = await client.jobs.wait(job.id, { timeoutMs: 300 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WaitTimeoutError);
    expect((err as WaitTimeoutError).code).toBe('WAIT_TIMEOUT');
    await client.jobs.cancel(job.id);
  });

  it('cancels, retries and reprioritizes', async () => {
    await admin.queue.pause();
    try {
      const job = await client.jobs.submit({ type: 'noop', input: { durationMs: 10 } });
      const high = await client.jobs.setPriority(job.id, 'high');
      expect(high.priority).toBe('high');
      const cancelled = await client.jobs.cancel(job.id);
      expect(cancelled.status).toBe('cancelled');
      const err = await client.jobs.cancel(job.id).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GantryApiError);
      expect((err as GantryApiError).status).toBe(409);
      const retried = await client.jobs.retry(job.id);
      expect(retried.generation).toBe(2);
    } finally {
      await admin.queue.resume();
    }
  });

  it('answers API errors as GantryApiError carrying the problem, and hides other tenants', async () => {
    const bad = await client.jobs.submit({ type: 'noop', priority: 'asap' as 'high' }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(GantryApiError);
    expect((bad as GantryApiError).status).toBe(400);
    expect((bad as GantryApiError).problem.errors?.map((e) => e.field)).toContain('priority');
    expect((bad as GantryApiError).message).toMatch(/^400 .*priority/);

    const mine = await client.jobs.submit({ type: 'noop' });
    const hidden = await other.jobs.get(mine.id).catch((e: unknown) => e);
    expect((hidden as GantryApiError).status).toBe(404);
    const forbidden = await client.queue.pause().catch((e: unknown) => e);
    expect((forbidden as GantryApiError).status).toBe(403);
    const unknownKey = await new GantryClient({ url: cluster.gatewayUrl, apiKey: 'nope' }).whoami().catch((e) => e);
    expect((unknownKey as GantryApiError).status).toBe(401);
  });

  it('answers an unreachable gateway with GantryNetworkError', async () => {
    const dead = new GantryClient({ url: `http://127.0.0.1:${await freePort()}`, apiKey: ADMIN_KEY });
    const err = await dead.queue.get().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GantryNetworkError);
    expect((err as Error).message).toMatch(/cannot reach .*ECONNREFUSED/);
  });

  it('reads and changes the queue, lists workers', async () => {
    const q = await admin.queue.get();
    expect(q).toMatchObject({ paused: false, draining: false });
    const changed = await admin.queue.setConfig({ maxConcurrentJobs: q.maxConcurrentJobs + 1 });
    expect(changed.maxConcurrentJobs).toBe(q.maxConcurrentJobs + 1);
    await admin.queue.setConfig({ maxConcurrentJobs: q.maxConcurrentJobs });
    const workers = await admin.workers.list();
    expect(workers).toHaveLength(1);
    expect(workers[0]).toMatchObject({ pool: 'default' });
    const metrics = await admin.queue.metrics();
    expect(metrics.performance.totalJobsProcessed).toBeGreaterThan(0);
  });

  it('follows the queue live over SSE: the current state first, then a pause and a resume as they happen', async () => {
    const stop = new AbortController();
    const seen: QueueState[] = [];
    const iter = client.queue.events({ signal: stop.signal })[Symbol.asyncIterator]();
    const next = async (what: string, ok: (q: QueueState) => boolean): Promise<QueueState> => {
      for (;;) {
        const r = await within(iter.next(), 30_000, what);
        if (r.done) throw new Error(`the queue stream ended before ${what}`);
        seen.push(r.value);
        if (ok(r.value)) return r.value;
      }
    };
    try {
      const first = await next('the first state', () => true);
      expect(first).toMatchObject({ paused: false, draining: false });
      expect(first.depth).toEqual(expect.objectContaining({ total: expect.any(Number) }));
      const paused = await admin.queue.pause();
      expect(paused.paused).toBe(true);
      await next('the pause', (q) => q.paused);
      await admin.queue.resume();
      const resumed = await next('the resume', (q) => !q.paused);
      expect(resumed).toMatchObject({ paused: false, draining: false });
    } finally {
      stop.abort();
      await iter.return?.(undefined);
      if ((await admin.queue.get()).paused) await admin.queue.resume();
    }
    // Each event is a whole state; consecutive ones differ (no repeats).
    for (let i = 1; i < seen.length; i++) expect(seen[i]).not.toEqual(seen[i - 1]);
  });

  it("reads tenants' fair share: every tenant for an admin, its own for a client key", async () => {
    await other.jobs.wait((await other.jobs.submit({ type: 'noop', input: { durationMs: 200 } })).id, {
      timeoutMs: 30_000,
    });
    const all = await admin.tenants.list();
    const names = all.map((t) => t.tenant);
    expect(names).toEqual(expect.arrayContaining(['default', 'other']));
    for (const t of all) {
      expect(t).toEqual({
        tenant: expect.any(String),
        weight: expect.any(Number),
        queued: expect.any(Number),
        running: expect.any(Number),
        usedSlotSeconds: expect.any(Number),
        sharePercent: expect.any(Number),
        entitledPercent: expect.any(Number),
      });
    }
    expect(all.find((t) => t.tenant === 'other')!.usedSlotSeconds).toBeGreaterThan(0);
    const mine = await other.tenants.me();
    expect(mine.tenant).toBe('other');
    expect(mine.weight).toBe(all.find((t) => t.tenant === 'other')!.weight);
    // A client key cannot read every tenant.
    const refused = await other.tenants.list().catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(GantryApiError);
    expect((refused as GantryApiError).status).toBe(403);
  });

  it('creates, lists, pauses, resumes and deletes schedules, tenant-scoped', async () => {
    const s = await client.schedules.create({
      name: 'client-e2e',
      cron: '0 3 * * *',
      timezone: 'Europe/Paris',
      job: { type: 'noop', input: { result: { from: 'schedule' } } },
    });
    expect(s).toMatchObject({
      name: 'client-e2e',
      cron: '0 3 * * *',
      timezone: 'Europe/Paris',
      overlap: 'skip',
      paused: false,
      lastJobId: null,
      job: { type: 'noop' },
    });
    expect(Date.parse(s.nextRunAt!)).toBeGreaterThan(Date.now());
    await expect(client.schedules.get(s.id)).resolves.toMatchObject({ id: s.id, name: 'client-e2e' });
    const ids: string[] = [];
    for await (const x of client.schedules.all({ limit: 1 })) ids.push(x.id);
    expect(ids).toContain(s.id);

    // Another tenant neither sees nor touches it.
    expect((await other.schedules.list()).items.map((x) => x.id)).not.toContain(s.id);
    for (const attempt of [
      () => other.schedules.get(s.id),
      () => other.schedules.pause(s.id),
      () => other.schedules.delete(s.id),
    ]) {
      const err = await attempt().catch((e: unknown) => e);
      expect((err as GantryApiError).status).toBe(404);
    }

    await expect(client.schedules.pause(s.id)).resolves.toMatchObject({ id: s.id, paused: true });
    await expect(client.schedules.get(s.id)).resolves.toMatchObject({ paused: true });
    await expect(client.schedules.resume(s.id)).resolves.toMatchObject({ id: s.id, paused: false });

    const bad = await client.schedules
      .create({ name: 'bad', cron: 'every day', job: { type: 'noop' } })
      .catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(GantryApiError);
    expect((bad as GantryApiError).status).toBe(400);

    await expect(client.schedules.delete(s.id)).resolves.toBeUndefined();
    const gone = await client.schedules.get(s.id).catch((e: unknown) => e);
    expect((gone as GantryApiError).status).toBe(404);
  });

  it('submits a batch and reads its counts', async () => {
    const b = await client.batches.submit({ jobs: [{ type: 'noop' }, { type: 'noop', priority: 'high' }] });
    expect(b.jobs).toHaveLength(2);
    await Promise.all(b.jobs.map((j) => client.jobs.wait(j.id, { timeoutMs: 30_000 })));
    await expect(client.batches.get(b.id)).resolves.toMatchObject({ id: b.id, total: 2, counts: { completed: 2 } });
  });

  it('verifies real webhooks with the Standard Webhooks library and refuses tampered ones', async () => {
    receiver.respond({ status: 204 });
    const job = await client.jobs.submit({ type: 'noop', callbackUrl: `${receiver.url}/ok` });
    await client.jobs.wait(job.id, { timeoutMs: 30_000 });
    const hook = await waitFor(
      () => receiver.received.find((r) => r.path === '/ok' && r.body.includes('job.completed')),
      {
        what: 'the completed webhook',
        timeoutMs: 30_000,
      },
    );
    const headers = hook.headers as Record<string, string>;
    const event = verifyWebhook(hook.body, headers, E2E_WEBHOOK_SECRET);
    expect(event).toMatchObject({ type: 'job.completed', data: { id: job.id, status: 'completed' } });
    // During a rotation any one of the secrets verifies.
    expect(verifyWebhook(hook.body, headers, ['whsec_b2xkLXNlY3JldA==', E2E_WEBHOOK_SECRET]).type).toBe(
      'job.completed',
    );
    expect(() => verifyWebhook(hook.body.replace('completed', 'failed'), headers, E2E_WEBHOOK_SECRET)).toThrow(
      WebhookVerificationError,
    );
    expect(() => verifyWebhook(hook.body, headers, 'whsec_b2xkLXNlY3JldA==')).toThrow(WebhookVerificationError);
  });

  it('lists failed webhooks and replays one', async () => {
    receiver.respond(({ path }) => ({ status: path === '/down' ? 500 : 204 }));
    const job = await client.jobs.submit({ type: 'noop', callbackUrl: `${receiver.url}/down` });
    await client.jobs.wait(job.id, { timeoutMs: 30_000 });
    const failed = await waitFor(
      async () => (await admin.webhooks.failed({ limit: 500 })).items.find((f) => f.jobId === job.id),
      { what: 'a failed delivery', timeoutMs: 30_000, intervalMs: 100 },
    );
    const forbidden = await client.webhooks.failed().catch((e: unknown) => e);
    expect((forbidden as GantryApiError).status).toBe(403);
    receiver.respond({ status: 204 });
    const before = receiver.received.filter((r) => r.headers['webhook-id'] === failed.webhookId).length;
    await admin.webhooks.replay(failed.id);
    await waitFor(
      () =>
        receiver.received.some((r) => r.headers['webhook-id'] === failed.webhookId && r.answered === 204) &&
        receiver.received.filter((r) => r.headers['webhook-id'] === failed.webhookId).length > before,
      { what: 'the replayed delivery', timeoutMs: 30_000 },
    );
  });
});
