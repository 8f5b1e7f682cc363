/**
 * The schedules and tenants calls over real HTTP, against a small node:http server that answers as API.md §3
 * specifies (method, path, status, problem+json), including answers the real gateway is hard to make give on demand.
 * It checks what the client sends and how it reads the answers; `libs/client/test/client.e2e.ts` runs the calls
 * against the real gateway.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ScheduleView } from '@gantry/contracts';
import { GantryClient } from './client.js';
import { GantryApiError } from './errors.js';

interface Seen {
  method: string;
  url: string;
  auth: string | undefined;
  contentType: string | undefined;
  body: string;
}

const schedule = (id: string, paused = false): ScheduleView => ({
  id,
  name: 'nightly',
  cron: '0 3 * * *',
  timezone: 'Europe/Paris',
  job: { type: 'noop', input: {} },
  overlap: 'skip',
  paused,
  nextRunAt: '2030-01-02T02:00:00.000Z',
  lastJobId: null,
  tenant: 'default',
  lastDueAt: null,
  createdAt: '2030-01-01T00:00:00.000Z',
  updatedAt: '2030-01-01T00:00:00.000Z',
});

async function read(req: IncomingMessage): Promise<string> {
  let s = '';
  for await (const c of req) s += String(c);
  return s;
}

describe('GantryClient schedules and tenants over HTTP', () => {
  let server: Server;
  let client: GantryClient;
  const seen: Seen[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      void (async () => {
        const body = await read(req);
        seen.push({
          method: req.method ?? '',
          url: req.url ?? '',
          auth: req.headers.authorization,
          contentType: req.headers['content-type'],
          body,
        });
        const json = (status: number, v: unknown, type = 'application/json') => {
          res.writeHead(status, { 'content-type': type });
          res.end(JSON.stringify(v));
        };
        const path = (req.url ?? '').split('?')[0];
        if (req.method === 'POST' && path === '/v1/schedules') {
          const b = JSON.parse(body) as { cron?: string };
          if (b.cron === 'nope')
            return json(
              400,
              {
                type: 'about:blank',
                title: 'Bad Request',
                status: 400,
                detail: 'cron: not a valid cron expression',
                errors: [{ field: 'cron', message: 'not a valid cron expression' }],
              },
              'application/problem+json',
            );
          return json(201, schedule('s1'));
        }
        if (req.method === 'GET' && path === '/v1/schedules') {
          return (req.url ?? '').includes('cursor=c2')
            ? json(200, { items: [schedule('s3')], nextCursor: null })
            : json(200, { items: [schedule('s1'), schedule('s2')], nextCursor: 'c2' });
        }
        if (req.method === 'GET' && path === '/v1/schedules/s1') return json(200, schedule('s1'));
        if (req.method === 'DELETE' && path === '/v1/schedules/s1') {
          res.writeHead(204);
          return res.end();
        }
        if (req.method === 'POST' && path === '/v1/schedules/s1/pause') return json(200, schedule('s1', true));
        if (req.method === 'POST' && path === '/v1/schedules/s1/resume') return json(200, schedule('s1'));
        if (req.method === 'GET' && path === '/v1/tenants/me')
          return json(200, {
            tenant: 'default',
            weight: 2,
            queued: 1,
            running: 0,
            usedSlotSeconds: 3,
            sharePercent: 60,
            entitledPercent: 50,
          });
        return json(
          404,
          { type: 'about:blank', title: 'Not Found', status: 404, detail: `no schedule` },
          'application/problem+json',
        );
      })();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    client = new GantryClient({
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
      apiKey: 'k1',
    });
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));
  beforeEach(() => {
    seen.length = 0;
  });

  it('creates a schedule with a JSON body and the key', async () => {
    const req = { name: 'nightly', cron: '0 3 * * *', timezone: 'Europe/Paris', job: { type: 'noop', input: {} } };
    await expect(client.schedules.create(req)).resolves.toEqual(schedule('s1'));
    expect(seen).toEqual([
      {
        method: 'POST',
        url: '/v1/schedules',
        auth: 'Bearer k1',
        contentType: 'application/json',
        body: JSON.stringify(req),
      },
    ]);
  });

  it('turns a refused schedule into a GantryApiError with the field errors', async () => {
    const err = await client.schedules
      .create({ name: 'x', cron: 'nope', job: { type: 'noop' } })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GantryApiError);
    expect((err as GantryApiError).status).toBe(400);
    expect((err as GantryApiError).problem.errors).toEqual([{ field: 'cron', message: 'not a valid cron expression' }]);
  });

  it('lists a page, and every page with all()', async () => {
    const page = await client.schedules.list({ limit: 2 });
    expect(page.items.map((s) => s.id)).toEqual(['s1', 's2']);
    expect(page.nextCursor).toBe('c2');
    expect(seen[0]!.url).toBe('/v1/schedules?limit=2');
    const ids: string[] = [];
    for await (const s of client.schedules.all({ limit: 2 })) ids.push(s.id);
    expect(ids).toEqual(['s1', 's2', 's3']);
    expect(seen.slice(1).map((s) => s.url)).toEqual(['/v1/schedules?limit=2', '/v1/schedules?limit=2&cursor=c2']);
  });

  it('gets, pauses, resumes and deletes by id (204 resolves with nothing), bodiless', async () => {
    await expect(client.schedules.get('s1')).resolves.toMatchObject({ id: 's1' });
    await expect(client.schedules.pause('s1')).resolves.toMatchObject({ id: 's1', paused: true });
    await expect(client.schedules.resume('s1')).resolves.toMatchObject({ paused: false });
    await expect(client.schedules.delete('s1')).resolves.toBeUndefined();
    expect(seen.map((s) => `${s.method} ${s.url} ${s.body}`)).toEqual([
      'GET /v1/schedules/s1 ',
      'POST /v1/schedules/s1/pause ',
      'POST /v1/schedules/s1/resume ',
      'DELETE /v1/schedules/s1 ',
    ]);
    expect(seen.every((s) => s.contentType === undefined)).toBe(true);
  });

  it('escapes ids in paths and reports a 404 as GantryApiError', async () => {
    const err = await client.schedules.get('../tenants/me').catch((e: unknown) => e);
    expect(seen[0]!.url).toBe('/v1/schedules/..%2Ftenants%2Fme');
    expect((err as GantryApiError).status).toBe(404);
  });

  it("reads the caller's tenant share", async () => {
    await expect(client.tenants.me()).resolves.toMatchObject({ tenant: 'default', sharePercent: 60 });
    expect(seen[0]).toMatchObject({ method: 'GET', url: '/v1/tenants/me' });
  });
});
