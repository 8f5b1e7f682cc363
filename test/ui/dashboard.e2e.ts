/**
 * The dashboard in a real browser: Debian's Chromium driven by playwright-core, against the whole system as real
 * processes. It loads with no console error, shows the numbers the API gives, reflects a submitted job without a
 * reload, an admin's pause reaches the queue, and a client key sees neither admin controls nor another tenant's jobs.
 * With GANTRY_UI_SCREENSHOTS=1 it also writes the screenshots under docs/screenshots.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { ADMIN_KEY, CLIENT_KEY, GantryCluster, OTHER_TENANT_KEY, repoRoot } from '@gantry/testing';

const CHROMIUM =
  process.env['CHROMIUM_BIN'] ?? ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
const SHOTS = process.env['GANTRY_UI_SCREENSHOTS'] === '1' ? join(repoRoot(), 'docs', 'screenshots') : undefined;
const WAIT = { timeout: 30_000 };

describe('dashboard in real Chromium', () => {
  let cluster: GantryCluster;
  let browser: Browser;
  const contexts: BrowserContext[] = [];

  beforeAll(async () => {
    if (!CHROMIUM) throw new Error('no Chromium: install the chromium package or set CHROMIUM_BIN');
    cluster = await GantryCluster.start({ env: { TRACE_URL_TEMPLATE: 'http://jaeger.example:16686/trace/{traceId}' } });
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

  /** A fresh browser session signed in with `key`; collects console errors and page errors. */
  async function signIn(key: string): Promise<{ page: Page; errors: string[] }> {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    contexts.push(context);
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${cluster.gatewayUrl}/ui`);
    await page.getByLabel('API key').fill(key);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('who').waitFor(WAIT);
    return { page, errors };
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
