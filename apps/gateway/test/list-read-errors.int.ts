/**
 * A listing read that fails is not "no page", against a real nats-server: while the broker fails the reads of the
 * listing index (direct gets switched off on its stream: no responders, the gateway's connection staying up),
 * `GET /v1/jobs` answers 503 problem+json with Retry-After — until v1.1 it answered 200 with the jobs of the unread
 * pages missing (here: an empty list), which users read as loss — and once the broker serves again the same listing
 * comes back whole.
 */
import { STREAMS, SUBJECTS, type ListHead, type ListPage } from '@gantry/contracts';
import { publishJson, replyOk } from '@gantry/jetstream';
import { CLIENT, expectProblem, startStack, type Client } from './harness';

describe('listing while the broker fails its reads (real NATS)', () => {
  let s: Awaited<ReturnType<typeof startStack>>;
  let api: Client;

  beforeAll(async () => {
    s = await startStack();
    api = s.api.as(CLIENT);
    // The leader's part of read-your-writes: nothing to wait for here (the index is written below by hand).
    s.handle.nc.subscribe(SUBJECTS.schedulerRpc('list-sync'), { callback: (_e, m) => replyOk(m, { seq: 0 }) });
  });
  afterAll(async () => s?.stop());

  it('503 with Retry-After while the index cannot be read, the whole listing after', async () => {
    const job = await api.json<{ id: string; type: string; priority: 'normal' }>('POST', '/v1/jobs', { type: 'noop' });
    expect(job.status).toBe(202);
    // The index as the scheduler's listing writer would have written it.
    const page: ListPage = {
      v: 1,
      tenant: 'default',
      bucket: 0,
      prev: null,
      entries: [[1, job.body.id, 'queued', 'noop', 'normal', 0]],
    };
    await publishJson(s.handle.js, SUBJECTS.listPage('default', 0), page);
    await publishJson(s.handle.js, SUBJECTS.listHead('default'), { v: 1, bucket: 0 } satisfies ListHead);
    const before = await api.json<{ items: { id: string }[] }>('GET', '/v1/jobs');
    expect(before.status).toBe(200);
    expect(before.body.items.map((i) => i.id)).toEqual([job.body.id]);

    const cfg = (await s.handle.jsm.streams.info(STREAMS.list)).config;
    await s.handle.jsm.streams.update(STREAMS.list, { ...cfg, allow_direct: false });
    try {
      const down = await api.json('GET', '/v1/jobs');
      const p = expectProblem(down, 503);
      expect(p.detail).toMatch(/listing could not be read/);
      expect(Number(down.headers.get('retry-after'))).toBeGreaterThan(0);
    } finally {
      await s.handle.jsm.streams.update(STREAMS.list, { ...cfg, allow_direct: true });
    }
    const after = await api.json<{ items: { id: string }[] }>('GET', '/v1/jobs');
    expect(after.status).toBe(200);
    expect(after.body.items.map((i) => i.id)).toEqual([job.body.id]);
  }, 90_000);
});
