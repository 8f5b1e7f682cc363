/**
 * Event stream slots (real NATS, real sockets): a slot is released on every way a stream can end — the client
 * aborting right after sending its headers (before the stream is set up), mid-stream, the job ending, the gateway
 * stopping — so loops of open/abort leave none held and a new stream still opens at the cap; one API key at its
 * SSE_MAX_STREAMS_PER_KEY gets 429 while other keys still get their streams.
 */
import { connect } from 'node:net';
import { Deferred, waitFor, within } from '@gantry/testing';
import { JobEventsService } from '../src/events/job-events.service';
import { ADMIN, CLIENT, OTHER, expectProblem, startStack, startTestGateway, type Client } from './harness';

const PER_KEY = 3;

interface Stream {
  status: number;
  first: Promise<void>;
  done: Promise<void>;
  abort(): void;
}

/** Opens an event stream with fetch; `first` resolves on the first event, `done` when the stream ends. */
async function open(base: string, id: string, key: string): Promise<Stream> {
  const ac = new AbortController();
  const res = await fetch(`${base}/v1/jobs/${id}/events`, {
    headers: { authorization: `Bearer ${key}` },
    signal: ac.signal,
  });
  const first = new Deferred<void>();
  const done = (async () => {
    if (!res.body || res.status !== 200) return;
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        if (new TextDecoder().decode(chunk).includes('event: ')) first.resolve();
      }
    } catch (err) {
      if (!ac.signal.aborted) throw err;
    }
  })();
  return { status: res.status, first: first.promise, done, abort: () => ac.abort() };
}

/** Sends the request's headers on a raw socket and destroys it after `afterMs` (0: at once, in the same tick). */
async function rawAbort(base: string, id: string, key: string, afterMs: number): Promise<void> {
  const u = new URL(base);
  await new Promise<void>((resolve) => {
    const sock = connect(Number(u.port), u.hostname, () => {
      sock.write(
        `GET /v1/jobs/${id}/events HTTP/1.1\r\nHost: ${u.host}\r\nAuthorization: Bearer ${key}\r\nAccept: text/event-stream\r\n\r\n`,
      );
      if (afterMs === 0) sock.destroy();
      else setTimeout(() => sock.destroy(), afterMs);
    });
    sock.on('error', () => undefined);
    sock.on('close', () => resolve());
  });
}

describe('event stream slots (real NATS, real sockets)', () => {
  let s: Awaited<ReturnType<typeof startStack>>;
  let api: Client;
  let events: JobEventsService;

  beforeAll(async () => {
    s = await startStack({ SSE_MAX_STREAMS: '8', SSE_MAX_STREAMS_PER_KEY: String(PER_KEY), SSE_KEEPALIVE_MS: '200' });
    api = s.api.as(CLIENT);
    events = s.gateway.app.get(JobEventsService);
  });
  afterAll(async () => s?.stop());

  async function submit(key = CLIENT): Promise<string> {
    const a = await api.as(key).json<{ id: string }>('POST', '/v1/jobs', { type: 'noop' });
    expect(a.status).toBe(202);
    return a.body.id;
  }

  /** Opens the key's full quota of streams (all 200, each with its first event), then proves one more is a 429. */
  async function expectFullQuotaOpens(id: string, key = CLIENT): Promise<Stream[]> {
    // A request whose socket the client destroyed can still be reaching its handler on a loaded machine (it takes its
    // slot, then finds the socket gone and gives it back): the full quota must open within a bound, not at once. A
    // leaked slot never comes back, so this still fails on a leak.
    const streams = await waitFor(
      async () => {
        const tried = await Promise.all(Array.from({ length: PER_KEY }, () => open(s.gateway.url, id, key)));
        if (tried.every((x) => x.status === 200)) return tried;
        for (const x of tried) x.abort();
        await Promise.all(tried.map((x) => x.done));
        return undefined;
      },
      { what: `${PER_KEY} streams of one key opening at once`, timeoutMs: 15_000, intervalMs: 100 },
    );
    expect(streams.map((x) => x.status)).toEqual(Array(PER_KEY).fill(200));
    await within(Promise.all(streams.map((x) => x.first)), 15_000, 'the first events');
    const refused = await api.as(key).raw('GET', `/v1/jobs/${id}/events`);
    expect(expectProblem(refused, 429).type).toBe('urn:gantry:problem:sse-key-capacity');
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    return streams;
  }

  async function closeAll(streams: Stream[]): Promise<void> {
    for (const x of streams) x.abort();
    await Promise.all(streams.map((x) => x.done));
    await waitFor(() => events.open === 0, { what: 'every slot released', timeoutMs: 15_000 });
  }

  it('releases every slot after loops of aborts right after the headers, during setup and mid-stream', async () => {
    const id = await submit();
    for (let round = 0; round < 5; round++) {
      // Aborts at once, after a few ms (setup in flight), and after the first event (mid-stream): all at the same time.
      const attempts: Promise<unknown>[] = [];
      for (let i = 0; i < 12; i++) attempts.push(rawAbort(s.gateway.url, id, CLIENT, i % 3 === 0 ? 0 : i % 3));
      attempts.push(
        open(s.gateway.url, id, CLIENT).then(async (x) => {
          // Some of the raw attempts may hold the key's slots for a moment: a 429 is fine here.
          if (x.status === 200) await within(x.first, 15_000, 'a first event');
          x.abort();
          await x.done;
        }),
      );
      await Promise.all(attempts);
    }
    await waitFor(() => events.open === 0, { what: 'every slot released', timeoutMs: 15_000 });
    // The key's full quota still opens.
    await closeAll(await expectFullQuotaOpens(id));
  });

  it('one key at its cap does not block other keys', async () => {
    const mine = await submit();
    const theirs = await submit(OTHER);
    const held = await expectFullQuotaOpens(mine);
    const other = await open(s.gateway.url, theirs, OTHER);
    const admin = await open(s.gateway.url, mine, ADMIN);
    expect([other.status, admin.status]).toEqual([200, 200]);
    await within(Promise.all([other.first, admin.first]), 15_000, 'their first events');
    await closeAll([...held, other, admin]);
  });

  it('releases the slots of streams that end with their job', async () => {
    const id = await submit();
    const streams = await expectFullQuotaOpens(id);
    expect((await api.json('POST', `/v1/jobs/${id}/cancel`)).status).toBe(200);
    await within(Promise.all(streams.map((x) => x.done)), 15_000, 'the streams to end with the job');
    await waitFor(() => events.open === 0, { what: 'every slot released', timeoutMs: 15_000 });
    await closeAll(await expectFullQuotaOpens(await submit()));
  });

  it('releases every slot when the gateway stops, streams being set up included', async () => {
    const gw = await startTestGateway(s.nats.url, { SSE_MAX_STREAMS: '8', SSE_MAX_STREAMS_PER_KEY: String(PER_KEY) });
    const svc = gw.app.get(JobEventsService);
    const id = await submit();
    const live = await Promise.all([1, 2].map(() => open(gw.url, id, CLIENT)));
    await within(Promise.all(live.map((x) => x.first)), 15_000, 'the first events');
    // One more is still being set up (its headers sent, no answer read) when the gateway stops.
    const pending = rawAbort(gw.url, id, CLIENT, 10_000);
    await gw.close();
    await Promise.all([...live.map((x) => x.done), pending]);
    expect(svc.open).toBe(0);
  });
});
