/**
 * The dashboard in a real browser: Debian's Chromium driven by playwright-core, against the whole system as real
 * processes. It loads with no console error, shows the numbers the API gives, reflects a submitted job without a
 * reload, an admin's pause reaches the queue, and a client key sees neither admin controls nor another tenant's jobs.
 * The queue page follows the queue's SSE stream: a pause shows with no GET /v1/queue at all, and a stream cut on the
 * wire shows "reconnecting", falls back to polling and comes back live.
 * With GANTRY_UI_SCREENSHOTS=1 it also writes the screenshots under docs/screenshots.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { ADMIN_KEY, CLIENT_KEY, GantryCluster, OTHER_TENANT_KEY, repoRoot, waitFor } from '@gantry/testing';

const CHROMIUM =
  process.env['CHROMIUM_BIN'] ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
const SHOTS = process.env['GANTRY_UI_SCREENSHOTS'] === '1' ? join(repoRoot(), 'docs', 'screenshots') : undefined;
const WAIT = { timeout: 30_000 };

interface Depth {
  urgent: number;
  high: number;
  normal: number;
  low: number;
  total: number;
}
interface QueueBody {
  depth: Depth;
  scheduled?: number;
  pools?: { pool: string; depth: Depth; scheduled: number; waiting?: number }[];
}
interface Tenant {
  tenant: string;
  weight: number;
  queued: number;
  entitledPercent: number;
}

/**
 * A TCP hop between Chromium and the gateway that the test can cut, as a load balancer's idle timeout or a gateway
 * going away would: `cut()` closes the connections carrying `GET /v1/queue/events` (both sides: the browser's stream
 * breaks, the gateway closes its end and gives the slot back), and while `refuseStreams` is set a new one is closed at
 * its request line. Every other request passes through untouched.
 */
class StreamHop {
  refuseStreams = false;
  private readonly streams = new Set<Socket>();
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(target: string): Promise<StreamHop> {
    const { hostname, port } = new URL(target);
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const hop = new StreamHop(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    server.on('connection', (browser) => {
      const gateway = createConnection(Number(port), hostname);
      const both = [browser, gateway];
      for (const s of both) {
        hop.sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => {
          hop.sockets.delete(s);
          hop.streams.delete(browser);
          for (const o of both) o.destroy();
        });
      }
      gateway.pipe(browser);
      browser.on('data', (chunk: Buffer) => {
        // Chromium writes each request's head in one piece, and sends the next request on a connection only after
        // the previous answer: a chunk that starts with a request line starts a request.
        const line = /^[A-Z]+ (\S+) HTTP\/1\.1\r\n/.exec(chunk.toString('latin1'));
        if (line?.[1] === '/v1/queue/events') {
          if (hop.refuseStreams) return void browser.destroy();
          hop.streams.add(browser);
        } else if (line) hop.streams.delete(browser);
        gateway.write(chunk);
      });
    });
    return hop;
  }

  /** Cuts every open queue stream; answers how many. */
  cut(): number {
    const n = this.streams.size;
    for (const s of this.streams) s.destroy();
    return n;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server.close(r));
  }
}

describe('dashboard in real Chromium', () => {
  let cluster: GantryCluster;
  let browser: Browser;
  const contexts: BrowserContext[] = [];

  beforeAll(async () => {
    if (!CHROMIUM) throw new Error('no Chromium: install the chromium package or set CHROMIUM_BIN');
    cluster = await GantryCluster.start({
      env: { TRACE_URL_TEMPLATE: 'http://jaeger.example:16686/trace/{traceId}', TENANT_WEIGHTS: 'default=3,other=1' },
    });
    // playwright-core's launch() gives the browser a fresh temporary profile (--user-data-dir) and removes it on close.
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    });
    if (SHOTS) mkdirSync(SHOTS, { recursive: true });
  });
  afterAll(async () => {
    for (const c of contexts) await c.close().catch(() => undefined);
    await browser?.close();
    await cluster?.stop();
  });

  /**
   * A fresh browser session signed in with `key` (at `base`: the gateway unless told); collects console errors, page
   * errors and every request the page makes (`METHOD /path`).
   */
  async function signIn(
    key: string,
    base = cluster.gatewayUrl,
  ): Promise<{ page: Page; errors: string[]; requests: string[] }> {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    contexts.push(context);
    const page = await context.newPage();
    const errors: string[] = [];
    const requests: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('request', (r) => requests.push(`${r.method()} ${new URL(r.url()).pathname}`));
    await page.goto(`${base}/ui`);
    await page.getByLabel('API key').fill(key);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('who').waitFor(WAIT);
    return { page, errors, requests };
  }

  /** Waits until the element with this test id shows exactly `want`. */
  async function textIs(page: Page, testId: string, want: string): Promise<void> {
    const exact = new RegExp(`^${want.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`);
    await page.getByTestId(testId).filter({ hasText: exact }).waitFor(WAIT);
  }

  it('loads with no console error and shows the numbers the API gives', async () => {
    await cluster.api('POST', '/v1/queue/pause');
    const ids = [
      await cluster.submit({ type: 'noop', priority: 'high' }),
      await cluster.submit({ type: 'noop', priority: 'low' }),
      await cluster.submit({ type: 'noop', priority: 'low' }),
    ];
    const { page, errors } = await signIn(ADMIN_KEY);
    const q = (
      await cluster.api<{ depth: Record<string, number>; maxConcurrentJobs: number; workers: number }>(
        'GET',
        '/v1/queue',
      )
    ).body;
    expect(q.depth['total']).toBe(3);
    for (const p of ['urgent', 'high', 'normal', 'low', 'total']) await textIs(page, `depth-${p}`, String(q.depth[p]));
    await textIs(page, 'tokens', `0 / ${q.maxConcurrentJobs}`);
    expect(await page.getByTestId('workers').textContent()).toBe(String(q.workers));
    expect(await page.getByTestId('queue-state').textContent()).toBe('paused');
    for (const id of ids) await page.locator(`tr[data-job="${id}"]`).first().waitFor(WAIT);
    if (SHOTS) await page.screenshot({ path: join(SHOTS, 'queue.png'), fullPage: true });
    await cluster.api('POST', '/v1/queue/resume');
    expect(errors).toEqual([]);
  });

  it('shows a submitted job without a reload, and its page follows it live to the end', async () => {
    const { page, errors } = await signIn(ADMIN_KEY);
    await page.getByRole('table', { name: 'Recent jobs' }).waitFor(WAIT);
    const id = await cluster.submit({
      type: 'noop',
      input: { durationMs: 1500, progressSteps: 3, result: { ok: true } },
    });
    const row = page.locator(`table[aria-label="Recent jobs"] tr[data-job="${id}"]`);
    await row.waitFor(WAIT);
    await page.getByRole('link', { name: id }).first().click();
    await page.waitForURL(`**/ui/jobs/${id}`);
    await page.getByTestId('timeline').getByText('job.completed').waitFor(WAIT);
    expect(await page.getByTestId('timeline').textContent()).toMatch(
      /job\.queued[\s\S]*job\.started[\s\S]*job\.completed/,
    );
    expect(await page.getByRole('heading', { name: /^Job / }).textContent()).toContain('completed');
    const view = await cluster.job<{ traceId?: string }>(id);
    if (view.traceId) {
      expect(await page.getByRole('link', { name: view.traceId }).getAttribute('href')).toBe(
        `http://jaeger.example:16686/trace/${view.traceId}`,
      );
    }
    if (SHOTS) await page.screenshot({ path: join(SHOTS, 'job.png'), fullPage: true });
    expect(errors).toEqual([]);
  });

  it("an admin's Pause reaches the queue, and Resume ends it", async () => {
    const { page, errors } = await signIn(ADMIN_KEY);
    await page.getByRole('button', { name: 'Pause' }).click();
    await textIs(page, 'queue-state', 'paused');
    expect((await cluster.api<{ paused: boolean }>('GET', '/v1/queue')).body.paused).toBe(true);
    await page.getByRole('button', { name: 'Resume' }).click();
    await textIs(page, 'queue-state', 'running');
    expect((await cluster.api<{ paused: boolean }>('GET', '/v1/queue')).body.paused).toBe(false);
    await page.getByLabel('Max concurrent jobs').fill('7');
    await page.keyboard.press('Enter');
    await textIs(page, 'tokens', '0 / 7');
    expect((await cluster.api<{ maxConcurrentJobs: number }>('GET', '/v1/queue')).body.maxConcurrentJobs).toBe(7);
    expect(errors).toEqual([]);
  });

  it('the queue page follows the SSE stream: a pause shows with no GET /v1/queue; a cut stream reconnects', async () => {
    const hop = await StreamHop.start(cluster.gatewayUrl);
    try {
      const { page, errors, requests } = await signIn(ADMIN_KEY, hop.url);
      const gets = () => requests.filter((r) => r === 'GET /v1/queue').length;
      const opens = () => requests.filter((r) => r === 'GET /v1/queue/events').length;
      await textIs(page, 'queue-link', 'live');
      await textIs(page, 'queue-state', 'running');
      await cluster.api('POST', '/v1/queue/pause');
      await textIs(page, 'queue-state', 'paused');
      expect(gets()).toBe(0);
      expect(opens()).toBe(1);

      // The stream is cut and cannot come back for now: the page says so and polls meanwhile.
      hop.refuseStreams = true;
      expect(hop.cut()).toBe(1);
      await textIs(page, 'queue-link', 'reconnecting');
      await waitFor(() => gets() > 0, { timeoutMs: 30_000, what: 'the fallback poll of GET /v1/queue' });
      await cluster.api('POST', '/v1/queue/resume');
      await textIs(page, 'queue-state', 'running');
      // Reopening is tried again and again meanwhile (refused at the request line).
      await waitFor(() => opens() >= 2, { timeoutMs: 30_000, what: 'a reconnection attempt' });

      // Streams are let through again: the page reconnects, stops polling, and follows the queue live again.
      hop.refuseStreams = false;
      await textIs(page, 'queue-link', 'live');
      const polled = gets();
      await cluster.api('POST', '/v1/queue/pause');
      await textIs(page, 'queue-state', 'paused');
      await cluster.api('POST', '/v1/queue/resume');
      await textIs(page, 'queue-state', 'running');
      expect(gets()).toBe(polled);
      // The cut and the refused reconnections are logged by the browser as network errors; nothing else.
      expect(errors.filter((e) => !/net::ERR_/.test(e))).toEqual([]);
    } finally {
      await cluster.api('POST', '/v1/queue/resume');
      await hop.close();
    }
  });

  it("a client key sees no admin controls and none of another tenant's jobs", async () => {
    const theirs = await cluster.submit({ type: 'noop' }, OTHER_TENANT_KEY);
    const mine = await cluster.submit({ type: 'noop' }, CLIENT_KEY);
    const { page, errors } = await signIn(CLIENT_KEY);
    expect(await page.getByTestId('who').textContent()).toBe('client · tenant default');
    await page.locator(`tr[data-job="${mine}"]`).first().waitFor(WAIT);
    expect(await page.locator(`tr[data-job="${theirs}"]`).count()).toBe(0);
    expect(await page.getByTestId('admin-controls').count()).toBe(0);
    expect(await page.getByRole('button', { name: /Pause|Cancel|Retry|Clear/ }).count()).toBe(0);
    expect(await page.getByRole('link', { name: 'Failed webhooks' }).count()).toBe(0);
    await page.goto(`${cluster.gatewayUrl}/ui/jobs/${theirs}`);
    await page
      .getByRole('alert')
      .filter({ hasText: `No job ${theirs}` })
      .waitFor(WAIT);
    // The console shows the 404 of the API call the page made: that one is expected.
    expect(errors.filter((e) => !/404/.test(e))).toEqual([]);
  });

  it("an admin sees every tenant's running jobs and, through the tenant selector, another tenant's recent jobs; a client key neither", async () => {
    // Another tenant's job that runs long enough to be looked at, reporting progress on the way.
    const theirs = await cluster.submit(
      { type: 'noop', input: { durationMs: 60_000, progressSteps: 60 } },
      OTHER_TENANT_KEY,
    );
    const theirsDone = await cluster.submit({ type: 'noop', input: { result: { n: 1 } } }, OTHER_TENANT_KEY);
    const mine = await cluster.submit({ type: 'noop' }, CLIENT_KEY);
    await waitFor(
      async () => {
        const v = await cluster.job<{ status: string; progress?: { percent: number } }>(theirs);
        return v.status === 'running' && (v.progress?.percent ?? 0) > 0;
      },
      { timeoutMs: 60_000, intervalMs: 200, what: "the other tenant's job running with progress" },
    );
    try {
      const { page, errors } = await signIn(ADMIN_KEY);
      const running = page.locator(`table[aria-label="Running jobs"] tr[data-job="${theirs}"]`);
      await running.waitFor(WAIT);
      expect(await running.locator('td').nth(1).textContent()).toBe('other');
      const bar = running.getByRole('progressbar', { name: `progress of job ${theirs}` });
      await waitFor(async () => Number(await bar.getAttribute('value')) > 0, {
        timeoutMs: 30_000,
        what: 'a progress bar that moved',
      });
      expect(await running.locator('td').nth(6).textContent()).toMatch(/^\d+(m \d+)?s$/); // ETA
      // The listings below are the key's own tenant's until another is chosen.
      const recent = page.locator('table[aria-label="Recent jobs"]');
      await recent.locator(`tr[data-job="${mine}"]`).waitFor(WAIT);
      expect(await recent.locator(`tr[data-job="${theirsDone}"]`).count()).toBe(0);
      const select = page.getByLabel('Tenant', { exact: true });
      await waitFor(async () => (await select.locator('option', { hasText: /^other$/ }).count()) === 1, {
        timeoutMs: 30_000,
        what: 'the tenant "other" among the options',
      });
      await select.selectOption('other');
      await recent.locator(`tr[data-job="${theirsDone}"]`).waitFor(WAIT);
      await recent.locator(`tr[data-job="${theirs}"]`).waitFor(WAIT);
      expect(await recent.locator(`tr[data-job="${mine}"]`).count()).toBe(0);
      expect(await page.getByRole('heading', { name: /^Recent jobs/ }).textContent()).toContain('tenant other');
      if (SHOTS) await page.screenshot({ path: join(SHOTS, 'queue-admin.png'), fullPage: true });
      await select.selectOption('default');
      await recent.locator(`tr[data-job="${mine}"]`).waitFor(WAIT);
      expect(errors).toEqual([]);

      // A client key: no selector, its own tenant's running and recent jobs only, while the other's still runs.
      const client = await signIn(CLIENT_KEY);
      await client.page.locator(`table[aria-label="Recent jobs"] tr[data-job="${mine}"]`).waitFor(WAIT);
      // (the running and recent listings load together: with `mine` shown, the running one has loaded too)
      expect(await client.page.getByLabel('Tenant', { exact: true }).count()).toBe(0);
      expect(await client.page.locator(`tr[data-job="${theirs}"]`).count()).toBe(0);
      expect(await client.page.locator(`tr[data-job="${theirsDone}"]`).count()).toBe(0);
      expect((await cluster.job<{ status: string }>(theirs)).status).toBe('running');
      expect(client.errors).toEqual([]);
    } finally {
      await cluster.api('POST', `/v1/jobs/${theirs}/cancel`);
    }
  });

  it("shows queued depth per pool and priority, scheduled jobs and every tenant's share as the API gives them", async () => {
    await cluster.api('POST', '/v1/queue/pause');
    // `night` has no worker: its jobs stay queued, so the figures hold still while the page is compared with the API.
    await cluster.submit({ type: 'noop', pool: 'night', priority: 'urgent' });
    await cluster.submit({ type: 'noop', pool: 'night', priority: 'low' });
    await cluster.submit({ type: 'noop', pool: 'night', priority: 'low' }, OTHER_TENANT_KEY);
    const later = await cluster.submit({ type: 'noop', pool: 'night', delaySeconds: 3600 });
    await cluster.submit({ type: 'noop', priority: 'high' }, OTHER_TENANT_KEY);
    const { page, errors } = await signIn(ADMIN_KEY);
    const q = (await cluster.api<QueueBody>('GET', '/v1/queue')).body;
    expect(q.scheduled).toBeGreaterThanOrEqual(1);
    const night = q.pools?.find((p) => p.pool === 'night');
    expect(night).toEqual({
      pool: 'night',
      depth: { urgent: 1, high: 0, normal: 0, low: 2, total: 3 },
      scheduled: 1,
      waiting: 0,
    });
    await textIs(page, 'scheduled', String(q.scheduled));
    for (const p of q.pools ?? []) {
      for (const level of ['urgent', 'high', 'normal', 'low', 'total'] as const)
        await textIs(page, `pool-${p.pool}-${level}`, String(p.depth[level]));
      await textIs(page, `pool-${p.pool}-waiting`, String(p.waiting));
      await textIs(page, `pool-${p.pool}-scheduled`, String(p.scheduled));
    }
    const tenants = (await cluster.api<Tenant[]>('GET', '/v1/tenants')).body;
    expect(tenants.map((t) => t.tenant).sort()).toEqual(expect.arrayContaining(['default', 'other']));
    for (const t of tenants) {
      await textIs(page, `tenant-${t.tenant}-weight`, String(t.weight));
      await textIs(page, `tenant-${t.tenant}-queued`, String(t.queued));
      await textIs(page, `tenant-${t.tenant}-entitled`, `${t.entitledPercent.toFixed(1)}%`);
    }
    expect(tenants.find((t) => t.tenant === 'default')!.weight).toBe(3);
    if (SHOTS) await page.screenshot({ path: join(SHOTS, 'queue.png'), fullPage: true });

    // A client key sees its own tenant's share only.
    const mine = (await cluster.api<Tenant>('GET', '/v1/tenants/me', undefined, OTHER_TENANT_KEY)).body;
    const other = await signIn(OTHER_TENANT_KEY);
    await textIs(other.page, 'tenant-other-queued', String(mine.queued));
    await textIs(other.page, 'tenant-other-weight', '1');
    expect(await other.page.locator('tr[data-tenant]').count()).toBe(1);
    expect(await other.page.locator('tr[data-tenant="default"]').count()).toBe(0);
    // The scheduled job's page says when it runs.
    const runAt = (await cluster.job<{ runAt: string }>(later)).runAt;
    await page.goto(`${cluster.gatewayUrl}/ui/jobs/${later}`);
    await page.locator('dt', { hasText: 'runs at' }).waitFor(WAIT);
    expect(await page.locator('dt:text-is("runs at") + dd').textContent()).toBe(runAt);
    await cluster.api('POST', '/v1/queue/resume');
    expect(errors).toEqual([]);
    expect(other.errors).toEqual([]);
  });

  it('lists, pauses, resumes and deletes schedules (or says the gateway does not serve them)', async () => {
    const { page, errors } = await signIn(CLIENT_KEY);
    const served = (await cluster.api('GET', '/v1/schedules', undefined, CLIENT_KEY)).status !== 404;
    if (!served) {
      await page.getByRole('link', { name: 'Schedules' }).click();
      await page.getByText('This gateway does not serve schedules yet.').waitFor(WAIT);
      expect(errors.filter((e) => !/404/.test(e))).toEqual([]);
      return;
    }
    const created = await cluster.api<{ id: string }>(
      'POST',
      '/v1/schedules',
      { name: 'nightly-report', cron: '0 3 * * *', timezone: 'Europe/Paris', job: { type: 'noop' } },
      CLIENT_KEY,
    );
    expect(created.status).toBe(201);
    const theirs = await cluster.api<{ id: string }>(
      'POST',
      '/v1/schedules',
      { name: 'their-schedule', cron: '0 4 * * *', job: { type: 'noop' } },
      OTHER_TENANT_KEY,
    );
    expect(theirs.status).toBe(201);
    const id = created.body.id;
    await page.getByRole('link', { name: 'Schedules' }).click();
    const row = page.locator(`tr[data-schedule="${id}"]`);
    await row.waitFor(WAIT);
    expect(await row.textContent()).toContain('0 3 * * *');
    expect(await page.locator(`tr[data-schedule="${theirs.body.id}"]`).count()).toBe(0);
    expect(await page.getByText('their-schedule').count()).toBe(0);

    await row.getByRole('button', { name: 'Pause' }).click();
    await textIs(page, `schedule-${id}-state`, 'paused');
    const paused = await cluster.api<{ paused: boolean }>('GET', `/v1/schedules/${id}`, undefined, CLIENT_KEY);
    expect(paused.body.paused).toBe(true);
    await row.getByRole('button', { name: 'Resume' }).click();
    await textIs(page, `schedule-${id}-state`, 'active');
    expect(
      (await cluster.api<{ paused: boolean }>('GET', `/v1/schedules/${id}`, undefined, CLIENT_KEY)).body.paused,
    ).toBe(false);

    // Created from the form, as a user would.
    const form = page.getByRole('form', { name: 'New schedule' });
    await form.getByLabel('Name').fill('every-minute');
    await form.getByLabel('Cron').fill('* * * * *');
    await form.getByRole('button', { name: 'Create' }).click();
    await page.locator('tr[data-schedule]', { hasText: 'every-minute' }).waitFor(WAIT);
    const list = (await cluster.api<{ items: { name: string }[] }>('GET', '/v1/schedules', undefined, CLIENT_KEY)).body;
    expect(list.items.map((s) => s.name)).toEqual(expect.arrayContaining(['nightly-report', 'every-minute']));
    if (SHOTS) await page.screenshot({ path: join(SHOTS, 'schedules.png'), fullPage: true });

    page.once('dialog', (d) => void d.accept());
    await row.getByRole('button', { name: 'Delete' }).click();
    await row.waitFor({ state: 'detached', ...WAIT });
    expect((await cluster.api('GET', `/v1/schedules/${id}`, undefined, CLIENT_KEY)).status).toBe(404);
    expect(errors).toEqual([]);
  });

  it('shows workers and failed webhooks; every page is served with a strict CSP', async () => {
    const { page, errors } = await signIn(ADMIN_KEY);
    await page.getByRole('link', { name: 'Workers' }).click();
    await page.getByRole('table', { name: 'Workers' }).waitFor(WAIT);
    const workers = (await cluster.api<{ id: string }[]>('GET', '/v1/workers')).body;
    for (const w of workers) await page.getByText(w.id).waitFor(WAIT);
    if (SHOTS) await page.screenshot({ path: join(SHOTS, 'workers.png'), fullPage: true });
    await page.getByRole('link', { name: 'Failed webhooks' }).click();
    await page.getByRole('heading', { name: 'Failed webhooks' }).waitFor(WAIT);
    if (SHOTS) await page.screenshot({ path: join(SHOTS, 'webhooks.png'), fullPage: true });
    const res = await fetch(`${cluster.gatewayUrl}/ui/workers`);
    expect(res.headers.get('content-security-policy')).toMatch(/default-src 'none'; script-src 'self' 'sha256-/);
    expect((await fetch(`${cluster.gatewayUrl}/ui/assets/../../package.json`)).status).toBe(404);
    expect(errors).toEqual([]);
  });
});
