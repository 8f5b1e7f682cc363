/**
 * A batch read that fails is not "no such batch", against a real nats-server: while the broker fails the read
 * (direct gets switched off: no responders), `GET /v1/batches/{id}` of a batch that exists answers 503 problem+json
 * with Retry-After (it answered 404 until v1.1: the manifest read took every error for "absent"), a batch that really
 * does not exist still answers 404, and once the broker serves again the batch reads as before — nothing changed.
 * With nats-server stopped the read throws (the repair consumer naks and retries) rather than answering "absent".
 */
import { STREAMS, systemClock } from '@gantry/contracts';
import { waitFor } from '@gantry/testing';
import { BatchManifests, BatchReadError } from '../src/batches/batch-manifests';
import { CLIENT, expectProblem, startStack, type Client } from './harness';

interface BatchStatus {
  id: string;
  total: number;
  counts: Record<string, number>;
}

describe('batch reads while nats-server is down (real NATS)', () => {
  let s: Awaited<ReturnType<typeof startStack>>;
  let api: Client;

  beforeAll(async () => {
    s = await startStack({ ALLOW_PRIVATE_URLS: 'true' });
    api = s.api.as(CLIENT);
  });
  afterAll(async () => s?.stop());

  it('503 with Retry-After for a batch that exists, 404 only for one that does not, nothing changed', async () => {
    const a = await api.json<{ id: string }>('POST', '/v1/batches', { jobs: [{ type: 'noop' }, { type: 'noop' }] });
    expect(a.status).toBe(202);
    const before = await api.json<BatchStatus>('GET', `/v1/batches/${a.body.id}`);
    expect(before.status).toBe(200);
    // A real "not found" (the broker's no-message answer) is still a 404.
    expectProblem(await api.json('GET', '/v1/batches/b_doesnotexist000'), 404);

    // The broker fails the read while the gateway's connection stays up (so no gate in front answers instead):
    // without direct gets, DIRECT.GET has no responders — an error, not "no message".
    const cfg = (await s.handle.jsm.streams.info(STREAMS.batches)).config;
    await s.handle.jsm.streams.update(STREAMS.batches, { ...cfg, allow_direct: false });
    try {
      const down = await api.json('GET', `/v1/batches/${a.body.id}`);
      const p = expectProblem(down, 503);
      expect(p.type).toMatch(/nats-unavailable$/);
      // The manifest read itself answered this.
      expect(p.detail).toMatch(new RegExp(`batch ${a.body.id} could not be read`));
      expect(Number(down.headers.get('retry-after'))).toBeGreaterThan(0);
    } finally {
      await s.handle.jsm.streams.update(STREAMS.batches, { ...cfg, allow_direct: true });
    }
    await waitFor(async () => (await api.json('GET', `/v1/batches/${a.body.id}`)).status === 200, {
      what: 'the batch to read again',
      timeoutMs: 30_000,
      intervalMs: 250,
    });
    const after = await api.json<BatchStatus>('GET', `/v1/batches/${a.body.id}`);
    expect(after.body).toEqual(before.body);
  }, 90_000);

  it('with nats-server stopped, the manifest read throws (the repair consumer retries) instead of "absent"', async () => {
    const a = await api.json<{ id: string }>('POST', '/v1/batches', { jobs: [{ type: 'noop' }] });
    expect(a.status).toBe(202);
    const manifests = new BatchManifests(s.handle, systemClock);
    expect((await manifests.read(a.body.id))?.id).toBe(a.body.id);
    expect(await manifests.read('b_doesnotexist000')).toBeUndefined();

    await s.nats.stop();
    try {
      await expect(manifests.read(a.body.id)).rejects.toBeInstanceOf(BatchReadError);
    } finally {
      await s.nats.restart();
    }
    await waitFor(async () => (await manifests.read(a.body.id).catch(() => undefined))?.id === a.body.id, {
      what: 'the manifest to read again after NATS is back',
      timeoutMs: 30_000,
      intervalMs: 250,
    });
  }, 90_000);
});
