/**
 * A service's first JetStream call at start (`NatsHandle.connect` creates the JetStream manager, which asks the server
 * for the account's JetStream info) against real nats-servers: while JetStream cannot answer yet — here a node of a
 * 3-node cluster started alone, with no meta leader until a quorum is up — the call is retried, not fatal, and the
 * connection is usable once the other nodes start; a server whose JetStream is off is refused at once.
 */
import { spawn } from 'node:child_process';
import { jserrors } from '@nats-io/jetstream/internal';
import { pino } from 'pino';
import { freePort, NatsServer, natsServerBinary, waitFor, within } from '@gantry/testing';
import type { Logger } from '@gantry/telemetry';
import { NatsHandle } from '../src';

describe('JetStream at connect (real nats-servers)', () => {
  const servers: NatsServer[] = [];
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.dispose().catch(() => undefined)));
  });

  it('retries the first JetStream call while the cluster has no meta leader, and connects once it has one', async () => {
    const ports = await Promise.all([0, 1, 2].map(async () => [await freePort(), await freePort()] as const));
    const routes = ports.map(([, c]) => `nats://127.0.0.1:${c}`).join(',');
    const node = (i: number) =>
      NatsServer.start({
        port: ports[i]![0],
        args: [
          '--server_name',
          `c${i + 1}`,
          '--cluster_name',
          'gantry-connect-test',
          '--cluster',
          `nats://127.0.0.1:${ports[i]![1]}`,
          '--routes',
          routes,
        ],
      });
    // One node of three: it serves clients, but JetStream has no quorum and no meta leader.
    servers.push(await node(0));

    const warnings: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(line) }) as unknown as Logger;
    let settled: 'connected' | Error | undefined;
    const connecting = NatsHandle.connect({
      servers: [servers[0]!.url],
      name: 'connect-start',
      logger,
      timeoutMs: 1_000,
    });
    connecting.then(
      () => (settled = 'connected'),
      (err: unknown) => (settled = err as Error),
    );
    await waitFor(() => (warnings.some((l) => l.includes('JetStream did not answer yet')) ? true : undefined), {
      what: 'a retried first JetStream call',
      timeoutMs: 30_000,
    });
    expect(settled).toBeUndefined(); // still trying, not failed

    servers.push(...(await Promise.all([node(1), node(2)])));
    const handle = await connecting;
    try {
      expect(settled).toBe('connected');
      expect((await handle.jsm.getAccountInfo()).streams).toBeGreaterThanOrEqual(0);
    } finally {
      await handle.drain();
    }
  }, 120_000);

  it('a server without JetStream is refused at once (not retried)', async () => {
    // A plain core NATS server (no -js), started as NatsServer starts one.
    const port = await freePort();
    const proc = spawn(natsServerBinary(), ['-a', '127.0.0.1', '-p', String(port)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      let log = '';
      await within(
        new Promise<void>((resolve) => {
          const on = (b: Buffer) => {
            log += b.toString();
            if (log.includes('Server is ready')) resolve();
          };
          proc.stdout.on('data', on);
          proc.stderr.on('data', on);
        }),
        15_000,
        'nats-server start',
      );
      const warnings: string[] = [];
      const logger = pino(
        { level: 'warn' },
        { write: (line: string) => void warnings.push(line) },
      ) as unknown as Logger;
      const refused = await NatsHandle.connect({
        servers: [`nats://127.0.0.1:${port}`],
        name: 'connect-nojs',
        logger,
        timeoutMs: 1_000,
      }).catch((err: unknown) => err as Error);
      expect(refused).toBeInstanceOf(jserrors.JetStreamNotEnabled);
      expect(warnings.filter((l) => l.includes('JetStream did not answer yet'))).toEqual([]);
    } finally {
      proc.kill('SIGKILL');
    }
  });
});
