/**
 * The submit rate limit is shared by gateway replicas through NATS KV: two gateways (separate applications, separate
 * connections, nothing shared but the nats-server) together admit at most RATE_LIMIT_SUBMITS_PER_MINUTE submits of a
 * key, refuse the rest with 429 + Retry-After, and keep keys apart.
 */
import { BUCKETS, STREAMS } from '@gantry/contracts';
import { NatsServer } from '@gantry/testing';
import type { Gateway } from '../src/gateway.app';
import { CLIENT, Client, OTHER, expectProblem, startTestGateway } from './harness';

describe('shared submit rate limit (two gateways, real NATS)', () => {
  let nats: NatsServer;
  let gws: Gateway[];
  const LIMIT = 30;

  beforeAll(async () => {
    nats = await NatsServer.start();
    const env = { RATE_LIMIT_SUBMITS_PER_MINUTE: String(LIMIT) };
    gws = [await startTestGateway(nats.url, env), await startTestGateway(nats.url, env)];
  });
  afterAll(async () => {
    for (const g of gws ?? []) await g.close();
    await nats?.dispose();
  });

  it('admits at most the limit across both replicas, refuses the rest with Retry-After, and counts batches as one submit', async () => {
    const clients = gws.map((g) => new Client(g.url, CLIENT));
    const statuses: number[] = [];
    let refusal: { retryAfter: string | null; type: string } | undefined;
    for (let i = 0; i < 3 * LIMIT; i++) {
      const c = clients[i % 2]!;
      const a =
        i % 10 === 9
          ? await c.json('POST', '/v1/batches', { jobs: [{ type: 'noop' }, { type: 'noop' }] })
          : await c.json('POST', '/v1/jobs', { type: 'noop' });
      statuses.push(a.status);
      if (a.status === 429 && !refusal) {
        refusal = { retryAfter: a.headers.get('retry-after'), type: expectProblem(a, 429).type };
      }
    }
    const accepted = statuses.filter((x) => x === 202).length;
    expect(accepted).toBeLessThanOrEqual(LIMIT);
    // Chunks reserved but unspent by one replica are the only loss (at most a few per replica at this limit).
    expect(accepted).toBeGreaterThanOrEqual(LIMIT - 4);
    expect(statuses.filter((x) => x !== 202 && x !== 429)).toEqual([]);
    expect(refusal?.type).toBe('urn:gantry:problem:rate-limited');
    expect(Number(refusal?.retryAfter)).toBeGreaterThanOrEqual(1);
    expect(Number(refusal?.retryAfter)).toBeLessThanOrEqual(120);

    // Reads are not submits: still answered.
    expect((await clients[0]!.json('GET', '/v1/whoami')).status).toBe(200);
    // Another key has its own quota, on either replica.
    expect((await clients[1]!.as(OTHER).json('POST', '/v1/jobs', { type: 'noop' })).status).toBe(202);

    // The shared state is in the KV bucket, one counter per key and window.
    const kv = await gws[0]!.nats.handle().kvm.open(BUCKETS.rateLimit);
    const keys: string[] = [];
    for await (const k of await kv.keys()) keys.push(k);
    expect(keys.some((k) => /^k_[0-9a-f]{16}\.\d+$/.test(k))).toBe(true);
    // Refused submits wrote nothing.
    const jobs = (await gws[0]!.nats.handle().jsm.streams.info(STREAMS.jobs)).state.messages;
    expect(jobs).toBeLessThanOrEqual(LIMIT * 2 + 1);
  });
});
