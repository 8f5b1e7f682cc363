/**
 * RATE_LIMIT_READS_PER_MINUTE (real NATS, real HTTP): GET routes of one API key beyond the limit get 429 problem+json
 * with Retry-After; another key still reads; the key still submits (writes have their own limit); unauthenticated
 * health routes are not counted.
 */
import { ADMIN, CLIENT, OTHER, expectProblem, startStack, type Client } from './harness';

const LIMIT = 20;

describe('read rate limit per key (real NATS)', () => {
  let s: Awaited<ReturnType<typeof startStack>>;
  let api: Client;

  beforeAll(async () => {
    s = await startStack({ RATE_LIMIT_READS_PER_MINUTE: String(LIMIT) });
    api = s.api.as(CLIENT);
  });
  afterAll(async () => s?.stop());

  it('refuses reads beyond the limit with 429 + Retry-After, per key, leaving writes and other keys alone', async () => {
    const statuses: number[] = [];
    let refusal: Awaited<ReturnType<Client['raw']>> | undefined;
    const paths = ['/v1/jobs', '/v1/queue', '/v1/whoami', '/v1/jobs/01JNOSUCHJOB0000000000000'];
    for (let i = 0; i < 2 * LIMIT; i++) {
      const a = await api.raw('GET', paths[i % paths.length]!);
      statuses.push(a.status);
      if (a.status === 429) refusal ??= a;
    }
    const admitted = statuses.filter((x) => x !== 429).length;
    expect(admitted).toBeLessThanOrEqual(LIMIT);
    // One replica spends its own reservations: at most a chunk is lost to the sliding estimate.
    expect(admitted).toBeGreaterThanOrEqual(LIMIT - 2);
    // Once refused, every later read of the window is refused too.
    expect(statuses.slice(statuses.indexOf(429)).every((x) => x === 429)).toBe(true);
    const p = expectProblem(refusal!, 429);
    expect(p.type).toBe('urn:gantry:problem:rate-limited');
    expect(p.detail).toMatch(/RATE_LIMIT_READS_PER_MINUTE/);
    expect(Number(refusal!.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(Number(refusal!.headers.get('retry-after'))).toBeLessThanOrEqual(120);
    // Event streams are reads too.
    expectProblem(await api.raw('GET', '/v1/jobs/01JNOSUCHJOB0000000000000/events'), 429);

    // Other keys read on; the refused key still submits; health routes are not counted.
    expect((await api.as(OTHER).raw('GET', '/v1/whoami')).status).toBe(200);
    expect((await api.as(ADMIN).raw('GET', '/v1/queue')).status).not.toBe(429);
    expect((await api.json('POST', '/v1/jobs', { type: 'noop' })).status).toBe(202);
    expect((await api.as(null).raw('GET', '/healthz')).status).toBe(200);
  });
});
