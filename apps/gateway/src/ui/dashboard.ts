/**
 * The web dashboard at `/ui` (docs/dashboard.md): static files only, served from memory with a strict Content
 * Security Policy. The page itself needs no key; it asks for one and calls the `/v1` API with it like any client.
 *
 * What is served is a fixed list read at startup (no path from the request ever reaches the filesystem): the app
 * (apps/gateway/ui), preact + htm as their own ESM builds, and `@gantry/client`'s compiled browser files — no build
 * step and nothing from a CDN.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { FastifyInstance } from 'fastify';

export interface DashboardOptions {
  /** `TRACE_URL_TEMPLATE`, e.g. `http://jaeger:16686/trace/{traceId}`. */
  traceUrlTemplate?: string;
}

/** Client-side routes: each answers the same page. */
export const DASHBOARD_PAGES = ['/ui', '/ui/', '/ui/workers', '/ui/webhooks', '/ui/schedules', '/ui/jobs/:id'];

interface Asset {
  body: Buffer;
  type: string;
}

const UI_DIR = join(__dirname, '..', '..', 'ui');

function assets(): Map<string, Asset> {
  const js = 'text/javascript; charset=utf-8';
  // The compiled browser files, found from the package itself (tests map `@gantry/client` to its sources).
  const clientDir = join(dirname(require.resolve('@gantry/client/package.json')), 'dist');
  const files: [string, string, string][] = [
    ['/ui/assets/app.js', join(UI_DIR, 'app.js'), js],
    ['/ui/assets/style.css', join(UI_DIR, 'style.css'), 'text/css; charset=utf-8'],
    ['/ui/vendor/preact.js', require.resolve('preact'), js],
    ['/ui/vendor/hooks.js', require.resolve('preact/hooks'), js],
    ['/ui/vendor/htm.js', join(dirname(require.resolve('htm')), 'htm.module.js'), js],
    ['/ui/client/client.js', join(clientDir, 'client.js'), js],
    ['/ui/client/errors.js', join(clientDir, 'errors.js'), js],
    ['/ui/client/sse.js', join(clientDir, 'sse.js'), js],
  ];
  return new Map(files.map(([url, path, type]) => [url, { body: readFileSync(path), type }]));
}

/** The inline import map's hash, so the CSP can allow exactly it and no other inline script. */
function importMapHash(html: string): string {
  const m = /<script type="importmap">([\s\S]*?)<\/script>/.exec(html);
  if (!m) throw new Error('apps/gateway/ui/index.html has no import map');
  return `'sha256-${createHash('sha256').update(m[1]!).digest('base64')}'`;
}

export function installDashboard(fastify: FastifyInstance, o: DashboardOptions = {}): void {
  const html = readFileSync(join(UI_DIR, 'index.html'), 'utf8');
  const files = assets();
  const security = {
    'content-security-policy':
      `default-src 'none'; script-src 'self' ${importMapHash(html)}; style-src 'self'; img-src 'self' data:; ` +
      `connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'`,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'cache-control': 'no-cache',
  };
  const config = JSON.stringify({ traceUrlTemplate: o.traceUrlTemplate ?? null });

  for (const page of DASHBOARD_PAGES) {
    fastify.get(page, async (_req, reply) =>
      reply.headers({ ...security, 'content-type': 'text/html; charset=utf-8' }).send(html),
    );
  }
  fastify.get('/ui/config.json', async (_req, reply) =>
    reply.headers({ ...security, 'content-type': 'application/json' }).send(config),
  );
  for (const [url, a] of files) {
    fastify.get(url, async (_req, reply) => reply.headers({ ...security, 'content-type': a.type }).send(a.body));
  }
}
