import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/**
 * Ports below this (and from {@link FLOOR}) are where {@link freePort} looks first. The kernel hands out ports of its
 * ephemeral range (Linux: /proc/sys/net/ipv4/ip_local_port_range, usually 32768–60999) to every outgoing connection
 * and every `listen(0)`, so a port of that range found free and then given to another process to bind could be taken
 * in between by any socket of the many tests running beside it: CI saw `npm run up`'s nats-server fail with "address
 * already in use" that way. Below the range only an explicit bind takes a port.
 */
const FLOOR = 20_000;

/** The low end of the kernel's ephemeral port range (32768 when it cannot be read: the Linux default). */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 0 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

/** Listens on `port` (0: any) of 127.0.0.1 and closes again; resolves with the port, or undefined when it was taken. */
function probe(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(undefined));
    srv.listen(port, '127.0.0.1', () => {
      const addr = srv.address();
      const got = typeof addr === 'object' && addr ? addr.port : undefined;
      srv.close(() => resolve(got));
    });
  });
}

/**
 * A TCP port that was free a moment ago on 127.0.0.1, for a process that binds it later: a random one between
 * {@link FLOOR} and the kernel's ephemeral range (see FLOOR), else (none free in 50 tries, or no room below the range)
 * one the kernel picks.
 */
export async function freePort(): Promise<number> {
  const low = ephemeralLow();
  if (low - FLOOR >= 1_000) {
    for (let i = 0; i < 50; i++) {
      const got = await probe(FLOOR + Math.floor(Math.random() * (low - FLOOR)));
      if (got !== undefined) return got;
    }
  }
  const any = await probe(0);
  if (any === undefined) throw new Error('no free TCP port on 127.0.0.1');
  return any;
}
