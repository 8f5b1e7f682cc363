/**
 * The job routes against a real nats-server (no scheduler: the test plays its part where needed by writing what the
 * scheduler writes): submit and every refusal of API.md §3 (400 with every field error, 413, 415, 429 queue full,
 * 503 draining and NATS away — each with Retry-After), cancel / retry / priority with their 409s, and
 * Idempotency-Key. Every refusal is checked to have created nothing.
 */
import {
  BUCKETS,
  CONFIG_KEYS,
  STREAMS,
  SUBJECTS,
  newId,
  type IdempotencyEntry,
  type QueueConfigRecord,
  type QueueStatsBroadcast,
} from '@gantry/contracts';
import { encodeJson } from '@gantry/jetstream';
import { JobStore } from '@gantry/job-store';
import { waitFor } from '@gantry/testing';
import { systemClock } from '@gantry/contracts';
import { bodyHash } from '../src/http/json-shape';
import { IdempotencyService } from '../src/idempotency/idempotency.service';
import { ADMIN, CLIENT, OTHER, expectProblem, startStack, type Client } from './harness';
import { JOB_FIELDS, WRONG_VALUES, fieldName, isAbout, setPath } from './wrong-types';

interface View {
  id: string;
  status: string;
  priority: string;
  generation: number;
  sequence: number;
  tenant: string;
  attempts: number;
  maxAttempts: number;
  timeoutSeconds: number;
  callbackUrl?: string;
  queuePosition?: number;
}

describe('gateway job routes (real NATS)', () => {
  let s: Awaited<ReturnType<typeof startStack>>;
  let api: Client;
  const jobMessages = async () => (await s.handle.jsm.streams.info(STREAMS.jobs)).state.messages;

  /** Runs `fn` and asserts the jobs stream did not grow. */
  async function createsNothing<T>(fn: () => Promise<T>): Promise<T> {
    const before = await jobMessages();
    const out = await fn();
    expect(await jobMessages()).toBe(before);
    return out;
  }

  beforeAll(async () => {
    s = await startStack({ POOLS: 'default=2x16000', MAX_ATTEMPTS: '3' });
    api = s.api;
  });
  afterAll(async () => s?.stop());

  describe('submit', () => {
    it('202 + Location + the queued view, once the record is durably stored', async () => {
      const a = await api.as(CLIENT).json<View>('POST', '/v1/jobs', {
        type: 'noop',
        input: { durationMs: 10 },
        priority: 'high',
        metadata: { a: 1 },
      });
      expect(a.status).toBe(202);
      expect(a.headers.get('location')).toBe(`/v1/jobs/${a.body.id}`);
      expect(a.body).toMatchObject({
        status: 'queued',
        priority: 'high',
        tenant: 'default',
        generation: 1,
        sequence: 1,
        attempts: 0,
        maxAttempts: 3,
      });
      const stored = await new JobStore(s.handle, systemClock).get(a.body.id, { consistent: true });
      expect(stored?.record.status).toBe('queued');
      const g = await api.as(CLIENT).json<View>('GET', `/v1/jobs/${a.body.id}`);
      expect(g.status).toBe(200);
      expect(g.body.id).toBe(a.body.id);
    });

    it('415 for anything but application/json, before parsing', async () => {
      await createsNothing(async () => {
        const body = JSON.stringify({ type: 'noop' });
        for (const ct of [
          'text/plain',
          'application/x-www-form-urlencoded',
          'application/jsonx',
          'multipart/form-data',
        ]) {
          expectProblem(await api.raw('POST', '/v1/jobs', { body, headers: { 'content-type': ct } }), 415);
        }
        expectProblem(await api.raw('POST', '/v1/jobs', { body }), 415);
        // charset parameters are fine
        const ok = await api.raw('POST', '/v1/jobs', {
          body,
          headers: { 'content-type': 'application/json; charset=utf-8' },
        });
        expect(ok.status).toBe(202);
        await s.handle.jsm.streams.purge(STREAMS.jobs, { filter: SUBJECTS.job((ok.body as View).id) });
      });
    });

    it('400 for a body that is not JSON or not an object', async () => {
      await createsNothing(async () => {
        for (const body of [
          '{',
          '[1,2]',
          'null',
          '"x"',
          '42',
          '{"type":"noop",}',
          '{"__proto__":{"x":1},"type":"noop"}',
        ]) {
          const a = await api.raw('POST', '/v1/jobs', { body, headers: { 'content-type': 'application/json' } });
          expectProblem(a, 400);
        }
        const deep = '{"type":"noop","metadata":' + '{"a":'.repeat(40) + '1' + '}'.repeat(40) + '}';
        expect(
          expectProblem(
            await api.raw('POST', '/v1/jobs', { body: deep, headers: { 'content-type': 'application/json' } }),
            400,
          ).detail,
        ).toMatch(/nested deeper/);
      });
    });

    it('400 lists every field error at once: DTO rules, the type input schema, URLs and GPU fit together', async () => {
      const p = await createsNothing(async () =>
        expectProblem(
          await api.json('POST', '/v1/jobs', {
            type: 'noop',
            input: { durationMs: -5, bogus: true },
            priority: 'asap',
            pool: 'bad pool!',
            maxAttempts: 0,
            timeoutSeconds: 1.5,
            callbackUrl: 'ftp://example.com/hook',
            callbackToken: 'has space',
            upload: { url: 'http://10.0.0.1/put' },
            metadata: { pad: 'x'.repeat(9 * 1024) },
            extra: 1,
          }),
          400,
        ),
      );
      const fields = p.errors!.map((e) => e.field).sort();
      expect(fields).toEqual(
        [
          'callbackToken',
          'callbackUrl',
          'extra',
          'input.bogus',
          'input.durationMs',
          'maxAttempts',
          'metadata',
          'pool',
          'priority',
          'timeoutSeconds',
          'upload.url',
        ].sort(),
      );
    });

    it('400 for an unknown job type, input of the wrong type, and sizes over the limits', async () => {
      await createsNothing(async () => {
        expect(expectProblem(await api.json('POST', '/v1/jobs', { type: 'nope' }), 400).errors).toEqual([
          { field: 'type', message: expect.stringContaining('unknown job type') },
        ]);
        expectProblem(await api.json('POST', '/v1/jobs', {}), 400);
        expectProblem(await api.json('POST', '/v1/jobs', { type: 'noop', input: [] }), 400);
        expectProblem(await api.json('POST', '/v1/jobs', { type: 'noop', gpu: { count: '1' } }), 400);
        expectProblem(
          await api.json('POST', '/v1/jobs', { type: 'noop', input: { result: 'x'.repeat(300 * 1024) } }),
          400,
        );
        expectProblem(
          await api.json('POST', '/v1/jobs', { type: 'noop', callbackUrl: `https://x.io/${'a'.repeat(3000)}` }),
          400,
        );
        const ffmpeg = expectProblem(
          await api.json('POST', '/v1/jobs', { type: 'ffmpeg', input: { args: ['-i', '/etc/passwd', 'out.mp4'] } }),
          400,
        );
        expect(ffmpeg.errors!.length).toBeGreaterThan(0);
        expect(ffmpeg.errors!.every((e) => e.field.startsWith('input'))).toBe(true);
      });
    });

    it('400 naming the field for a value of the wrong type in any field (arrays for objects, strings for numbers, null…)', async () => {
      const base = {
        type: 'noop',
        input: { durationMs: 1, progressSteps: 1, failTimes: 0, retryable: true },
        priority: 'high',
        pool: 'default',
        callbackToken: 'tok',
        timeoutSeconds: 60,
        maxAttempts: 2,
        gpu: { count: 0, memoryMb: 0 },
        metadata: { a: 1 },
      };
      await createsNothing(async () => {
        for (const f of JOB_FIELDS) {
          const field = fieldName(f.path);
          for (const value of WRONG_VALUES[f.kind]) {
            const a = await api.as(CLIENT).json('POST', '/v1/jobs', setPath(base, f.path, value));
            const p = expectProblem(a, 400);
            const fields = (p.errors ?? []).map((e) => e.field);
            if (fields.length === 0 || !fields.every((x) => isAbout(x, field)))
              throw new Error(`${field} = ${JSON.stringify(value)}: errors ${JSON.stringify(p.errors)}`);
          }
        }
      });
      // The ones found in review, exactly.
      for (const gpu of [[], [{ count: 1 }]]) {
        expect(expectProblem(await api.json('POST', '/v1/jobs', { type: 'noop', gpu }), 400).errors).toEqual([
          { field: 'gpu', message: 'must be an object' },
        ]);
      }
      // The base itself is accepted: the refusals above are about the one wrong field.
      expect((await api.as(CLIENT).json('POST', '/v1/jobs', base)).status).toBe(202);
    });

    it('400 for callback, upload and input URLs on private, loopback, link-local or metadata addresses', async () => {
      await createsNothing(async () => {
        for (const url of [
          'http://127.0.0.1:8080/hook',
          'http://localhost/hook',
          'http://[::1]/hook',
          'http://192.168.1.10/hook',
          'http://169.254.169.254/latest/meta-data',
          'http://metadata.google.internal/',
          'http://user:pw@example.com/',
          'not a url',
        ]) {
          const p = expectProblem(await api.json('POST', '/v1/jobs', { type: 'noop', callbackUrl: url }), 400);
          expect(p.errors?.[0]?.field).toBe('callbackUrl');
        }
        const up = expectProblem(
          await api.json('POST', '/v1/jobs', { type: 'noop', upload: { url: 'http://10.1.2.3/put' } }),
          400,
        );
        expect(up.errors?.[0]?.field).toBe('upload.url');
        const input = expectProblem(
          await api.json('POST', '/v1/jobs', {
            type: 'ffmpeg',
            input: {
              args: ['-i', 'in.mp4', 'out.mp4'],
              inputs: { 'in.mp4': 'http://127.0.0.1/in.mp4' },
              outputs: ['out.mp4'],
            },
          }),
          400,
        );
        expect(input.errors?.map((e) => e.field)).toEqual(['input.inputs.in.mp4']);
      });
    });

    it('400 when no GPU of the pool can fit the job (POOLS)', async () => {
      await createsNothing(async () => {
        expect(
          expectProblem(await api.json('POST', '/v1/jobs', { type: 'noop', gpu: { count: 3 } }), 400).errors,
        ).toEqual([{ field: 'gpu', message: expect.stringContaining('no GPU of pool default') }]);
        expectProblem(await api.json('POST', '/v1/jobs', { type: 'noop', gpu: { count: 1, memoryMb: 16001 } }), 400);
      });
      expect((await api.json('POST', '/v1/jobs', { type: 'noop', gpu: { count: 2, memoryMb: 16000 } })).status).toBe(
        202,
      );
    });

    it('413 for a body over the route limit (1 MiB for a job)', async () => {
      await createsNothing(async () => {
        const body = JSON.stringify({ type: 'noop', metadata: { pad: 'x'.repeat(1024 * 1024) } });
        const p = expectProblem(
          await api.raw('POST', '/v1/jobs', { body, headers: { 'content-type': 'application/json' } }),
          413,
        );
        expect(p.type).toBe('urn:gantry:problem:payload-too-large');
      });
    });

    it('429 + Retry-After when the leader reports a full queue; accepted again when it has room', async () => {
      const stats = (depth: number, maxQueueSize: number): QueueStatsBroadcast => ({
        v: 1,
        epoch: 1,
        at: new Date().toISOString(),
        paused: false,
        draining: false,
        depth: { urgent: 0, high: 0, normal: depth, low: 0, total: depth },
        running: 0,
        retrying: 0,
        maxConcurrentJobs: 4,
        availableTokens: 4,
        maxQueueSize,
        workers: 0,
      });
      s.handle.nc.publish(SUBJECTS.queueStats, encodeJson(stats(10, 10)));
      await s.handle.nc.flush();
      const full = await waitFor(
        async () => {
          const a = await api.json('POST', '/v1/jobs', { type: 'noop' });
          return a.status === 429 ? a : undefined;
        },
        { what: 'a 429' },
      );
      const p = expectProblem(full, 429);
      expect(p.type).toBe('urn:gantry:problem:queue-full');
      expect(Number(full.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      await createsNothing(async () => expectProblem(await api.json('POST', '/v1/jobs', { type: 'noop' }), 429));
      // A batch that would overflow is refused whole.
      s.handle.nc.publish(SUBJECTS.queueStats, encodeJson(stats(8, 10)));
      await s.handle.nc.flush();
      await waitFor(async () => (await api.json('POST', '/v1/batches', { jobs: [{ type: 'noop' }] })).status === 202);
      await createsNothing(async () =>
        expectProblem(await api.json('POST', '/v1/batches', { jobs: Array(5).fill({ type: 'noop' }) }), 429),
      );
      s.handle.nc.publish(SUBJECTS.queueStats, encodeJson(stats(0, 100_000)));
      await s.handle.nc.flush();
      await waitFor(async () => (await api.json('POST', '/v1/jobs', { type: 'noop' })).status === 202, {
        what: 'accepted again',
      });
    });

    it('503 + Retry-After while the queue drains (config written by the scheduler), accepted after resume', async () => {
      const kv = await s.handle.kvm.open(BUCKETS.config);
      const put = (draining: boolean) =>
        kv.put(
          CONFIG_KEYS.queue,
          JSON.stringify({ paused: false, draining, updatedAt: new Date().toISOString() } satisfies QueueConfigRecord),
        );
      await put(true);
      const a = await waitFor(async () => {
        const r = await api.json('POST', '/v1/jobs', { type: 'noop' });
        return r.status === 503 ? r : undefined;
      });
      expect(expectProblem(a, 503).type).toBe('urn:gantry:problem:draining');
      expect(Number(a.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      await createsNothing(async () => {
        expectProblem(await api.json('POST', '/v1/jobs', { type: 'noop' }), 503);
        expectProblem(await api.json('POST', '/v1/batches', { jobs: [{ type: 'noop' }] }), 503);
      });
      await put(false);
      await waitFor(async () => (await api.json('POST', '/v1/jobs', { type: 'noop' })).status === 202);
    });
  });

  describe('cancel, retry, priority', () => {
    async function submit(key = CLIENT): Promise<string> {
      const a = await api.as(key).json<View>('POST', '/v1/jobs', { type: 'noop' });
      expect(a.status).toBe(202);
      return a.body.id;
    }

    it('cancel: a queued job ends cancelled (200); cancelling it again is a 409', async () => {
      const id = await submit();
      const c = await api.as(CLIENT).json<View>('POST', `/v1/jobs/${id}/cancel`);
      expect(c.status).toBe(200);
      expect(c.body.status).toBe('cancelled');
      expect(expectProblem(await api.as(CLIENT).json('POST', `/v1/jobs/${id}/cancel`), 409).type).toBe(
        'urn:gantry:problem:conflict',
      );
    });

    it('retry: a cancelled job starts a new generation (202); retrying a queued job is a 409', async () => {
      const id = await submit();
      await api.as(CLIENT).json('POST', `/v1/jobs/${id}/cancel`);
      const r = await api.as(CLIENT).json<View>('POST', `/v1/jobs/${id}/retry`);
      expect(r.status).toBe(202);
      expect(r.body).toMatchObject({ status: 'queued', generation: 2, attempts: 0 });
      expectProblem(await api.as(CLIENT).json('POST', `/v1/jobs/${id}/retry`), 409);
    });

    it('priority: a queued job changes level (200); a finished one is a 409; a bad level a 400', async () => {
      const id = await submit();
      const p = await api.as(CLIENT).json<View>('PUT', `/v1/jobs/${id}/priority`, { priority: 'urgent' });
      expect(p.status).toBe(200);
      expect(p.body.priority).toBe('urgent');
      expectProblem(await api.as(CLIENT).json('PUT', `/v1/jobs/${id}/priority`, { priority: 'asap' }), 400);
      expectProblem(await api.as(CLIENT).json('PUT', `/v1/jobs/${id}/priority`, { priority: 'low', x: 1 }), 400);
      expectProblem(await api.as(CLIENT).json('PUT', `/v1/jobs/${id}/priority`), 400);
      await api.as(CLIENT).json('POST', `/v1/jobs/${id}/cancel`);
      expectProblem(await api.as(CLIENT).json('PUT', `/v1/jobs/${id}/priority`, { priority: 'low' }), 409);
    });

    it('cancel and retry take no body ({} or an empty JSON body are fine); unknown fields are a 400', async () => {
      const id = await submit();
      expectProblem(await api.as(CLIENT).json('POST', `/v1/jobs/${id}/cancel`, { force: true }), 400);
      expect((await api.as(CLIENT).json<View>('GET', `/v1/jobs/${id}`)).body.status).toBe('queued');
      const empty = await api.as(CLIENT).raw('POST', `/v1/jobs/${id}/cancel`, {
        body: '',
        headers: { 'content-type': 'application/json' },
      });
      expect(empty.status).toBe(200);
      expect((await api.as(CLIENT).json('POST', `/v1/jobs/${id}/retry`, {})).status).toBe(202);
    });

    it('404 for unknown and malformed ids', async () => {
      for (const id of ['01JNOSUCHJOB0000000000000', 'bad.id', 'x'.repeat(65)]) {
        expectProblem(await api.json('GET', `/v1/jobs/${id}`), 404);
        expectProblem(await api.json('POST', `/v1/jobs/${id}/cancel`), 404);
      }
    });
  });

  describe('Idempotency-Key', () => {
    const key = (k: string) => ({ 'idempotency-key': k });

    it('a repeat with the same key, tenant and body answers 200 with the original job and creates nothing', async () => {
      const body = { type: 'noop', input: { durationMs: 5 }, metadata: { order: 42 } };
      const first = await api.as(CLIENT).json<View>('POST', '/v1/jobs', body, key('order-42'));
      expect(first.status).toBe(202);
      const again = await createsNothing(() =>
        // the same body with its keys in another order is the same body
        api
          .as(CLIENT)
          .json<View>(
            'POST',
            '/v1/jobs',
            { metadata: { order: 42 }, input: { durationMs: 5 }, type: 'noop' },
            key('order-42'),
          ),
      );
      expect(again.status).toBe(200);
      expect(again.body.id).toBe(first.body.id);
      expect(again.headers.get('location')).toBe(`/v1/jobs/${first.body.id}`);
    });

    it('the same key with a different body is a 422 and creates nothing', async () => {
      await api.as(CLIENT).json('POST', '/v1/jobs', { type: 'noop' }, key('k-422'));
      const p = await createsNothing(async () =>
        expectProblem(
          await api.as(CLIENT).json('POST', '/v1/jobs', { type: 'noop', priority: 'high' }, key('k-422')),
          422,
        ),
      );
      expect(p.type).toBe('urn:gantry:problem:unprocessable');
    });

    it('keys are per tenant', async () => {
      const a = await api.as(CLIENT).json<View>('POST', '/v1/jobs', { type: 'noop' }, key('shared-key'));
      const b = await api.as(OTHER).json<View>('POST', '/v1/jobs', { type: 'noop' }, key('shared-key'));
      expect(a.status).toBe(202);
      expect(b.status).toBe(202);
      expect(b.body.id).not.toBe(a.body.id);
    });

    it('concurrent repeats create exactly one job', async () => {
      const before = await jobMessages();
      const answers = await Promise.all(
        Array.from({ length: 20 }, () =>
          api.as(CLIENT).json<View>('POST', '/v1/jobs', { type: 'noop' }, key('race-1')),
        ),
      );
      expect(new Set(answers.map((a) => a.body.id)).size).toBe(1);
      expect(answers.filter((a) => a.status === 202).length).toBe(1);
      expect(answers.filter((a) => a.status === 200).length).toBe(19);
      expect(await jobMessages()).toBe(before + 1);
    });

    it('a key claimed by a request that never wrote its job (crash) creates that job on the repeat, with the reserved id', async () => {
      const body = { type: 'noop', metadata: { crashed: true } };
      const reserved = newId();
      const kv = await s.handle.kvm.open(BUCKETS.idempotency);
      const entry: IdempotencyEntry = {
        v: 1,
        kind: 'job',
        id: reserved,
        bodyHash: bodyHash(body),
        createdAt: new Date().toISOString(),
      };
      await kv.create(IdempotencyService.storageKey('default', 'job', 'crashed-1'), JSON.stringify(entry));
      const a = await api.as(CLIENT).json<View>('POST', '/v1/jobs', body, key('crashed-1'));
      expect(a.status).toBe(202);
      expect(a.body.id).toBe(reserved);
      expect((await api.as(CLIENT).json<View>('POST', '/v1/jobs', body, key('crashed-1'))).status).toBe(200);
    });

    it('400 for a key that is too long or not printable ASCII', async () => {
      await createsNothing(async () => {
        expectProblem(await api.json('POST', '/v1/jobs', { type: 'noop' }, key('k'.repeat(256))), 400);
        expectProblem(await api.json('POST', '/v1/jobs', { type: 'noop' }, key('caf\u00e9')), 400);
      });
      expect((await api.json('POST', '/v1/jobs', { type: 'noop' }, key('k'.repeat(255)))).status).toBe(202);
    });

    it('works for batches: the repeat answers 200 with the same batch and jobs', async () => {
      const body = { jobs: [{ type: 'noop' }, { type: 'noop', priority: 'low' }] };
      const first = await api
        .as(CLIENT)
        .json<{ id: string; jobs: View[] }>('POST', '/v1/batches', body, key('batch-1'));
      expect(first.status).toBe(202);
      const again = await createsNothing(() =>
        api.as(CLIENT).json<{ id: string; jobs: View[] }>('POST', '/v1/batches', body, key('batch-1')),
      );
      expect(again.status).toBe(200);
      expect(again.body.id).toBe(first.body.id);
      expect(again.body.jobs.map((j) => j.id)).toEqual(first.body.jobs.map((j) => j.id));
      expectProblem(
        await api.as(CLIENT).json('POST', '/v1/batches', { jobs: [{ type: 'noop' }] }, key('batch-1')),
        422,
      );
    });
  });

  describe('dependencies', () => {
    it('503 scheduler-unavailable (Retry-After) when no scheduler answers the queue routes', async () => {
      for (const path of ['/v1/queue', '/v1/queue/metrics', '/v1/workers', '/v1/concurrency/stats']) {
        const a = await api.json('GET', path);
        expect(expectProblem(a, 503).type).toBe('urn:gantry:problem:scheduler-unavailable');
        expect(a.headers.get('retry-after')).toBe('2');
      }
      expectProblem(await api.as(ADMIN).json('POST', '/v1/queue/pause'), 503);
      expectProblem(await api.as(ADMIN).json('PUT', '/v1/queue/config', { maxConcurrentJobs: 2 }), 503);
      expectProblem(await api.as(ADMIN).json('PUT', '/v1/queue/config', { maxConcurrentJobs: -1 }), 400);
    });

    it('503 + Retry-After while NATS is away (readyz too), and back to normal when it returns', async () => {
      await s.nats.stop();
      try {
        await waitFor(async () => (await api.as(null).raw('GET', '/readyz')).status === 503, { what: 'readyz 503' });
        const a = await api.json('POST', '/v1/jobs', { type: 'noop' });
        expect(expectProblem(a, 503).type).toBe('urn:gantry:problem:nats-unavailable');
        expect(Number(a.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
        expectProblem(await api.json('GET', '/v1/jobs/01JNOSUCHJOB0000000000000'), 503);
        expect((await api.as(null).raw('GET', '/healthz')).status).toBe(200);
      } finally {
        await s.nats.restart();
      }
      await waitFor(async () => (await api.as(null).raw('GET', '/readyz')).status === 200, {
        what: 'readyz 200',
        timeoutMs: 20_000,
      });
      await waitFor(async () => (await api.json('POST', '/v1/jobs', { type: 'noop' })).status === 202, {
        what: 'submits accepted again',
        timeoutMs: 20_000,
      });
    });
  });
});
