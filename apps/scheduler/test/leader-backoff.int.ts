/**
 * The leader lease while NATS is down, against a real nats-server that is stopped and started again: a failed lease
 * call is not read as "someone else holds the lease"; the leader steps down saying why; the calls back off (bounded
 * rate, not one per tick); and once NATS is back a leader is elected again.
 */
import { DEFAULT_TOPOLOGY, bucketDeclarations } from '@gantry/contracts';
import { NatsHandle, provision } from '@gantry/jetstream';
import { NatsServer, waitFor } from '@gantry/testing';
import { createLogger } from '@gantry/telemetry';
import { LeaderElection } from '../src/leader/leader-election';

const logger = createLogger('leader-backoff-test', 'silent');
const LEASE_MS = 1_000;
/** Lease calls fail fast while the server is down, so the retry rate is the election's own, not the timeout's. */
const CALL_TIMEOUT_MS = 200;
const OUTAGE_MS = 6_000;

describe('leader lease while nats-server is down (real nats-server)', () => {
  let server: NatsServer;
  let nats: NatsHandle;
  let election: LeaderElection | undefined;

  beforeAll(async () => {
    server = await NatsServer.start();
    nats = await NatsHandle.connect({
      servers: [server.url],
      name: 'leader-backoff-test',
      logger,
      timeoutMs: CALL_TIMEOUT_MS,
    });
    const topology = { ...DEFAULT_TOPOLOGY, leaderLeaseMs: LEASE_MS };
    await provision(nats, { streams: [], buckets: [bucketDeclarations(topology).leader] }, logger);
  });
  afterAll(async () => {
    await election?.stop().catch(() => undefined);
    await nats?.drain().catch(() => undefined);
    await server?.dispose();
  });

  it('steps down on a NATS error (not "lost the race"), backs off with jitter, and is elected again after', async () => {
    const deposed: string[] = [];
    const errors: { op: string; at: number; retryInMs: number }[] = [];
    let elected = 0;
    election = new LeaderElection(
      nats,
      'solo',
      LEASE_MS,
      {
        onElected: () => void elected++,
        onDeposed: (reason) => void deposed.push(reason),
        onLeaseError: (op, _err, retryInMs) => void errors.push({ op, at: Date.now(), retryInMs }),
      },
      logger,
    );
    await election.start();
    await waitFor(() => election!.isLeader, { what: 'elected' });
    expect(elected).toBe(1);

    await server.stop();
    const downAt = Date.now();
    await waitFor(() => deposed.length > 0, { what: 'the leader to step down', timeoutMs: 10_000 });
    expect(deposed[0]).toMatch(/^lease renewal failed \(NATS error/);
    await waitFor(() => Date.now() - downAt >= OUTAGE_MS, { what: 'the outage', timeoutMs: OUTAGE_MS + 1_000 });
    const during = errors.filter((e) => e.at - downAt <= OUTAGE_MS);

    // Without backoff: one call per tick (250 ms) plus its 200 ms timeout ≈ 13 in 6 s. With it (250 ms doubling to
    // 5 s, each wait in [½, 1] of its ceiling): at most 1 + ⌈log2⌉ steps… ≈ 6.
    expect(during.length).toBeGreaterThanOrEqual(2);
    expect(during.length).toBeLessThanOrEqual(7);
    expect(during[0]!.op).toBe('renew');
    expect(during.slice(1).every((e) => e.op === 'acquire')).toBe(true);
    // The waits grow.
    expect(during.at(-1)!.retryInMs).toBeGreaterThan(during[0]!.retryInMs);
    // Nobody else holds the lease: a replica that read the errors as "lost the race" would say so; this one never
    // claimed leadership while the broker was down.
    expect(elected).toBe(1);

    await server.restart();
    const upAt = Date.now();
    await waitFor(() => election!.isLeader, {
      what: 'a leader again once NATS is back',
      timeoutMs: 5 * LEASE_MS + 15_000,
      intervalMs: 50,
    });
    expect(elected).toBe(2);
    process.stdout.write(
      `leader lease during a ${OUTAGE_MS} ms outage: ${during.length} failed calls ` +
        `(waits ${during.map((e) => e.retryInMs).join(', ')} ms); re-elected ${Date.now() - upAt} ms after restart\n`,
    );
  });
});
