/**
 * One socket write per event-loop turn (write-coalescing.ts), against a real nats-server: frames that nats.js hands
 * its transport in separate microtask checkpoints of one turn leave in one write, in order; requests are still
 * answered; a drain right after a burst loses nothing; and the wrapping survives a reconnect (a new transport).
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { NatsServer, waitFor } from '@gantry/testing';
import { createLogger } from '@gantry/telemetry';
import { coalesceWrites, NatsHandle } from '@gantry/jetstream';

const logger = createLogger('write-coalescing-test', 'silent');

interface SocketLike {
  _write: (...args: unknown[]) => unknown;
  _writev: (...args: unknown[]) => unknown;
}

/** The connection's current socket (the transport's, replaced on reconnect). */
function socketOf(nc: NatsConnection): SocketLike {
  return (nc as unknown as { protocol: { transport: { socket: SocketLike } } }).protocol.transport.socket;
}

/** Counts the socket's writes (single and vectored) from now on. */
function countWrites(nc: NatsConnection): { readonly n: number } {
  const s = socketOf(nc);
  const counter = { n: 0 };
  for (const k of ['_write', '_writev'] as const) {
    const orig = s[k].bind(s);
    s[k] = (...args: unknown[]) => {
      counter.n++;
      return orig(...args);
    };
  }
  return counter;
}

/**
 * Publishes `n` messages in one turn, each after a microtask checkpoint (as separate async chains do: nats.js flushes
 * its buffer at the end of each), and returns after that turn's check phase.
 */
async function burst(nc: NatsConnection, subject: string, n: number, from = 0): Promise<void> {
  for (let i = 0; i < n; i++) {
    nc.publish(subject, String(from + i));
    await Promise.resolve();
  }
  await new Promise<void>((r) => setImmediate(r));
}

/** Subscribes on a separate connection and collects the payloads in arrival order. */
async function collector(url: string, subject: string): Promise<{ got: string[]; nc: NatsConnection }> {
  const nc = await connect({ servers: url });
  const got: string[] = [];
  nc.subscribe(subject, {
    callback: (_e, m) => {
      got.push(m.string());
    },
  });
  await nc.flush();
  return { got, nc };
}

describe('writes coalesced per event-loop turn (real nats-server)', () => {
  let server: NatsServer;

  beforeAll(async () => {
    server = await NatsServer.start();
  }, 60_000);

  afterAll(async () => {
    await server?.dispose();
  });

  it('sends a turn of separately flushed frames in one write, in order (and one write per frame without it)', async () => {
    const sub = await collector(server.url, 'co.order');
    const plain = await connect({ servers: server.url });
    const wrapped = await connect({ servers: server.url });
    try {
      expect(coalesceWrites(wrapped)).toBe(true);
      expect(coalesceWrites(wrapped)).toBe(true); // idempotent: wrapped once
      const plainWrites = countWrites(plain);
      const wrappedWrites = countWrites(wrapped);
      await burst(plain, 'co.order', 50);
      await burst(wrapped, 'co.order', 50, 50);
      expect(plainWrites.n).toBeGreaterThanOrEqual(50);
      expect(wrappedWrites.n).toBe(1);
      await waitFor(() => sub.got.length >= 100, { what: '100 messages', timeoutMs: 10_000 });
      expect(sub.got).toEqual(Array.from({ length: 100 }, (_, i) => String(i)));
    } finally {
      await Promise.all([plain.close(), wrapped.close(), sub.nc.close()]);
    }
  });

  it('answers requests and JetStream calls, and a drain right after a burst sends all of it', async () => {
    const sub = await collector(server.url, 'co.drain');
    const nats = await NatsHandle.connect({ servers: [server.url], name: 'co-drain', logger });
    const responder = await connect({ servers: server.url });
    responder.subscribe('co.echo', {
      callback: (_e, m) => {
        m.respond(m.data);
      },
    });
    await responder.flush();
    try {
      const answers = await Promise.all(
        Array.from({ length: 20 }, (_, i) => nats.nc.request('co.echo', String(i), { timeout: 10_000 })),
      );
      expect(answers.map((m) => m.string())).toEqual(Array.from({ length: 20 }, (_, i) => String(i)));
      expect((await nats.jsm.getAccountInfo()).limits).toBeDefined();
      for (let i = 0; i < 200; i++) nats.nc.publish('co.drain', String(i));
      await nats.drain();
      await waitFor(() => sub.got.length >= 200, { what: '200 messages after the drain', timeoutMs: 10_000 });
      expect(sub.got).toEqual(Array.from({ length: 200 }, (_, i) => String(i)));
    } finally {
      await Promise.all([responder.close(), sub.nc.close()]);
    }
  });

  it('wraps the new transport after a reconnect', async () => {
    const nats = await NatsHandle.connect({ servers: [server.url], name: 'co-reconnect', logger });
    try {
      const before = socketOf(nats.nc);
      await server.restart();
      await waitFor(() => nats.connected && socketOf(nats.nc) !== before, {
        what: 'the handle to reconnect on a new socket',
        timeoutMs: 30_000,
      });
      // The reconnect status reaches the handle's watcher a moment after the transport is in place.
      await waitFor(
        async () => {
          const writes = countWrites(nats.nc);
          await burst(nats.nc, 'co.after', 20);
          return writes.n === 1;
        },
        { what: 'a burst to leave in one write on the new transport', timeoutMs: 10_000 },
      );
      const sub = await collector(server.url, 'co.after2');
      try {
        await burst(nats.nc, 'co.after2', 30);
        await waitFor(() => sub.got.length >= 30, { what: '30 messages after the reconnect', timeoutMs: 10_000 });
        expect(sub.got).toEqual(Array.from({ length: 30 }, (_, i) => String(i)));
      } finally {
        await sub.nc.close();
      }
    } finally {
      await nats.drain();
    }
  });

  it('leaves a connection of an unknown shape alone', () => {
    expect(coalesceWrites({})).toBe(false);
    expect(coalesceWrites({ protocol: { transport: { send: () => undefined } } })).toBe(false);
  });
});
