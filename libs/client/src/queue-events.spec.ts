/**
 * `queue.events()` against a real HTTP server on loopback that plays `GET /v1/queue/events`: by default a stream that
 * ends or breaks is reopened; with `reconnect: false` the iterator ends when the stream ends and throws
 * GantryNetworkError when it breaks (what the dashboard needs to show "reconnecting").
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GantryClient } from './client.js';
import { GantryNetworkError } from './errors.js';

/** How the server answers the n-th stream request (0-based). */
type Behaviour = (res: ServerResponse, n: number) => void;

async function serve(behave: Behaviour): Promise<{ server: Server; url: string; opened: () => number }> {
  let n = 0;
  const server = createServer((req, res) => {
    if (req.url !== '/v1/queue/events') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write('retry: 2000\n: queue state\n\n');
    behave(res, n++);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, opened: () => n };
}

const state = (paused: boolean) => `event: queue\ndata: ${JSON.stringify({ paused })}\n\n`;

describe('queue.events()', () => {
  let server: Server | undefined;
  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
    server = undefined;
  });

  it('reopens a stream that ended, by default', async () => {
    const s = await serve((res, n) => res.end(state(n > 0)));
    server = s.server;
    const stop = new AbortController();
    const seen: boolean[] = [];
    for await (const q of new GantryClient({ url: s.url, apiKey: 'k' }).queue.events({ signal: stop.signal })) {
      seen.push(q.paused);
      if (seen.length === 2) stop.abort();
    }
    expect(seen).toEqual([false, true]);
    expect(s.opened()).toBe(2);
  });

  it('with reconnect: false, ends when the stream ends', async () => {
    const s = await serve((res) => res.end(state(true)));
    server = s.server;
    const seen: boolean[] = [];
    for await (const q of new GantryClient({ url: s.url, apiKey: 'k' }).queue.events({ reconnect: false }))
      seen.push(q.paused);
    expect(seen).toEqual([true]);
    expect(s.opened()).toBe(1);
  });

  it('with reconnect: false, throws GantryNetworkError when the stream breaks', async () => {
    // One event, then the connection is cut mid-stream (no end of the chunked body).
    const s = await serve((res) => res.write(state(false), () => res.socket?.destroy()));
    server = s.server;
    const seen: boolean[] = [];
    const read = (async () => {
      for await (const q of new GantryClient({ url: s.url, apiKey: 'k' }).queue.events({ reconnect: false }))
        seen.push(q.paused);
    })();
    await expect(read).rejects.toBeInstanceOf(GantryNetworkError);
    expect(seen).toEqual([false]);
    expect(s.opened()).toBe(1);
  });
});
