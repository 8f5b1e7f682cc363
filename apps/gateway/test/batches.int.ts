/**
 * Batches against a real nats-server: all-or-nothing validation (errors as `jobs[i].…`, nothing written), 413 above
 * MAX_JOBS_PER_BATCH, the batch callback default, counts, large batches stored in parts, and the repair path: a
 * manifest accepted by a gateway that died before writing the job records is finished by the repair consumer.
 */
import {
  CONSUMERS,
  STREAMS,
  SUBJECTS,
  newId,
  systemClock,
  type BatchManifest,
  type JobStatus,
  type NewJobSpec,
} from '@gantry/contracts';
import { decodeJson, type NatsHandle } from '@gantry/jetstream';
import { JobStore } from '@gantry/job-store';
import { waitFor } from '@gantry/testing';
import { BatchExistsError, BatchManifests, INLINE_SPECS_BYTES } from '../src/batches/batch-manifests';
import { CLIENT, expectProblem, startStack, type Client } from './harness';
import { JOB_FIELDS, WRONG_VALUES, fieldName, isAbout, setPath } from './wrong-types';

interface View {
  id: string;
  status: string;
  batchId?: string;
  callbackUrl?: string;
  priority: string;
}
interface BatchAnswer {
  id: string;
  jobs: View[];
}
interface BatchStatus {
  id: string;
  total: number;
  counts: Record<JobStatus, number>;
}

function spec(tenant: string, batchId: string, pad = 0): NewJobSpec {
  return {
    id: newId(),
    tenant,
    type: 'noop',
    input: {},
    priority: 'normal',
    pool: 'default',
    timeoutSeconds: 60,
    maxAttempts: 2,
    retryDelaysMs: [100],
    metadata: pad ? { pad: 'p'.repeat(pad) } : {},
    batchId,
  };
}

describe('gateway batches (real NATS)', () => {
  let s: Awaited<ReturnType<typeof startStack>>;
  let api: Client;
  const jobMessages = async () => (await s.handle.jsm.streams.info(STREAMS.jobs)).state.messages;

  beforeAll(async () => {
    s = await startStack({ MAX_JOBS_PER_BATCH: '50', BATCH_REPAIR_AFTER_MS: '300', ALLOW_PRIVATE_URLS: 'true' });
    api = s.api.as(CLIENT);
  });
  afterAll(async () => s?.stop());

  it('202 with every job queued, in order, sharing the batch id; GET counts them', async () => {
    const a = await api.json<BatchAnswer>('POST', '/v1/batches', {
      callbackUrl: 'http://127.0.0.1:9/batch-hook',
      jobs: [
        { type: 'noop', priority: 'high' },
        { type: 'noop', callbackUrl: 'http://127.0.0.1:9/own-hook' },
        { type: 'noop', input: { durationMs: 1 } },
      ],
    });
    expect(a.status).toBe(202);
    expect(a.headers.get('location')).toBe(`/v1/batches/${a.body.id}`);
    expect(a.body.jobs).toHaveLength(3);
    expect(a.body.jobs.map((j) => j.status)).toEqual(['queued', 'queued', 'queued']);
    expect(a.body.jobs.every((j) => j.batchId === a.body.id)).toBe(true);
    expect(a.body.jobs[0]!.priority).toBe('high');
    // The batch callbackUrl is the default; a job's own wins.
    expect(a.body.jobs.map((j) => j.callbackUrl)).toEqual([
      'http://127.0.0.1:9/batch-hook',
      'http://127.0.0.1:9/own-hook',
      'http://127.0.0.1:9/batch-hook',
    ]);
    for (const j of a.body.jobs) expect((await api.json<View>('GET', `/v1/jobs/${j.id}`)).status).toBe(200);

    await api.json('POST', `/v1/jobs/${a.body.jobs[1]!.id}/cancel`);
    const g = await api.json<BatchStatus>('GET', `/v1/batches/${a.body.id}`);
    expect(g.status).toBe(200);
    expect(g.body).toEqual({
      id: a.body.id,
      total: 3,
      counts: { scheduled: 0, waiting: 0, queued: 2, running: 0, retrying: 0, completed: 0, failed: 0, cancelled: 1 },
    });
  });

  it('all or nothing: one bad job refuses the batch with every error by job index, and nothing is written', async () => {
    const before = await jobMessages();
    const batchesBefore = (await s.handle.jsm.streams.info(STREAMS.batches)).state.messages;
    const p = expectProblem(
      await api.json('POST', '/v1/batches', {
        jobs: [
          { type: 'noop' },
          { type: 'noop', input: { durationMs: 'slow' } },
          { type: 'nope' },
          'not an object',
          { type: 'noop', priority: 'asap', extra: 1 },
        ],
      }),
      400,
    );
    expect(p.errors!.map((e) => e.field)).toEqual([
      'jobs[1].input.durationMs',
      'jobs[2].type',
      'jobs[3]',
      'jobs[4].extra',
      'jobs[4].priority',
    ]);
    expect(await jobMessages()).toBe(before);
    expect((await s.handle.jsm.streams.info(STREAMS.batches)).state.messages).toBe(batchesBefore);
  });

  it('400 naming jobs[i].field for a value of the wrong type in any field of any job, and nothing is written', async () => {
    const before = await jobMessages();
    const ok = { type: 'noop', input: { durationMs: 1 }, gpu: { count: 0 }, maxAttempts: 2 };
    for (const f of JOB_FIELDS) {
      const values = WRONG_VALUES[f.kind];
      // One batch per field: job i gets the i-th wrong value, between valid jobs.
      const jobs = values.flatMap((v) => [ok, setPath(ok, f.path, v)]);
      const p = expectProblem(await api.json('POST', '/v1/batches', { jobs }), 400);
      const fields = (p.errors ?? []).map((e) => e.field);
      values.forEach((v, i) => {
        const field = fieldName(f.path, `jobs[${2 * i + 1}].`);
        if (!fields.some((x) => isAbout(x, field))) throw new Error(`${field} = ${JSON.stringify(v)} not reported`);
      });
      const strays = fields.filter((x) => !values.some((_, i) => isAbout(x, fieldName(f.path, `jobs[${2 * i + 1}].`))));
      expect(strays).toEqual([]);
    }
    for (const gpu of [[], [{ count: 1 }]]) {
      expect(
        expectProblem(await api.json('POST', '/v1/batches', { jobs: [{ type: 'noop' }, { type: 'noop', gpu }] }), 400)
          .errors,
      ).toEqual([{ field: 'jobs[1].gpu', message: 'must be an object' }]);
    }
    expect(await jobMessages()).toBe(before);
  });

  it('400 for an empty batch, a non-array, unknown top-level fields, a bad batch callbackUrl', async () => {
    expectProblem(await api.json('POST', '/v1/batches', { jobs: [] }), 400);
    expectProblem(await api.json('POST', '/v1/batches', { jobs: { type: 'noop' } }), 400);
    expectProblem(await api.json('POST', '/v1/batches', [{ type: 'noop' }]), 400);
    expect(
      expectProblem(await api.json('POST', '/v1/batches', { jobs: [{ type: 'noop' }], priority: 'high' }), 400).errors,
    ).toEqual([{ field: 'priority', message: 'is not a known field' }]);
    expect(
      expectProblem(await api.json('POST', '/v1/batches', { jobs: [{ type: 'noop' }], callbackUrl: 'gopher://x' }), 400)
        .errors?.[0]?.field,
    ).toBe('callbackUrl');
  });

  it('413 above MAX_JOBS_PER_BATCH, before any job is looked at', async () => {
    const before = await jobMessages();
    const p = expectProblem(
      await api.json('POST', '/v1/batches', { jobs: Array(51).fill({ type: 'bad type!' }) }),
      413,
    );
    expect(p.detail).toMatch(/MAX_JOBS_PER_BATCH/);
    expect(await jobMessages()).toBe(before);
    expect((await api.json('POST', '/v1/batches', { jobs: Array(50).fill({ type: 'noop' }) })).status).toBe(202);
  });

  it('404 for an unknown or malformed batch id', async () => {
    expectProblem(await api.json('GET', '/v1/batches/01JNOSUCHBATCH000000000000'), 404);
    expectProblem(await api.json('GET', '/v1/batches/not.valid'), 404);
  });

  it('stores a large batch in parts before its manifest, and commits it', async () => {
    const jobs = Array.from({ length: 40 }, (_, i) => ({ type: 'noop', metadata: { i, pad: 'x'.repeat(7_000) } }));
    expect(JSON.stringify(jobs).length).toBeGreaterThan(INLINE_SPECS_BYTES);
    const a = await api.json<BatchAnswer>('POST', '/v1/batches', { jobs });
    expect(a.status).toBe(202);
    const manifests = new BatchManifests(s.handle, systemClock);
    const m = await waitFor(async () => {
      const x = await manifests.read(a.body.id);
      return x?.state === 'committed' ? x : undefined;
    });
    expect(m.jobIds).toEqual(a.body.jobs.map((j) => j.id));
    const part0 = await s.handle.jsm.direct.getMessage(STREAMS.batches, {
      last_by_subj: SUBJECTS.batchPart(a.body.id, 0),
    });
    expect(part0).toBeTruthy();
    const g = await api.json<BatchStatus>('GET', `/v1/batches/${a.body.id}`);
    expect(g.body.total).toBe(40);
    expect(g.body.counts.queued).toBe(40);
  });

  it.each([
    ['inline', 0, 5],
    ['in parts', 6_000, 30],
  ])(
    'repair: an accepted batch (%s) whose gateway died before writing the jobs is finished by the repair consumer',
    async (_kind, pad, n) => {
      const batchId = newId();
      const specs = Array.from({ length: n }, () => spec('default', batchId, pad));
      // The crashed gateway got as far as the manifest (and one record), not further.
      const manifests = new BatchManifests(s.handle, systemClock);
      const m = await manifests.accept(batchId, 'default', specs);
      expect(m.state).toBe('accepted');
      expect(pad > 0 ? m.parts : m.specs?.length).toBeGreaterThan(0);
      await manifests.createJobs(specs.slice(0, 1));

      const store = new JobStore(s.handle, systemClock);
      await waitFor(
        async () => {
          const got = await store.getMany(specs.map((x) => x.id));
          return got.size === n;
        },
        { what: 'every job of the batch written by the repair', timeoutMs: 20_000, intervalMs: 100 },
      );
      const got = await store.getMany(specs.map((x) => x.id));
      for (const x of specs) {
        expect(got.get(x.id)?.record).toMatchObject({ status: 'queued', batchId, tenant: 'default', sequence: 1 });
      }
      // Each job written once: one revision per job subject.
      for (const x of specs) {
        const info = await s.handle.jsm.streams.info(STREAMS.jobs, { subjects_filter: SUBJECTS.job(x.id) });
        expect(info.state.subjects?.[SUBJECTS.job(x.id)]).toBe(1);
      }
      const latest = await waitFor(async () => {
        const x = await manifests.read(batchId);
        return x?.state === 'committed' ? x : undefined;
      });
      expect(latest.jobIds).toEqual(specs.map((x) => x.id));
      const g = await api.json<BatchStatus>('GET', `/v1/batches/${batchId}`);
      expect(g.body.total).toBe(n);
      // Nothing left waiting in the repair consumer.
      await waitFor(async () => {
        const ci = await s.handle.jsm.consumers.info(STREAMS.batches, CONSUMERS.batchRepair);
        return ci.num_pending === 0 && ci.num_ack_pending === 0;
      });
    },
  );

  it('a batch in parts submitted twice under one id (an idempotent retry): the manifest always reads its own parts', async () => {
    const manifests = new BatchManifests(s.handle, systemClock);
    const idsOf = (specs: readonly NewJobSpec[]) => specs.map((x) => x.id);
    /** A gateway that dies after writing its parts: its connection refuses the manifest's publish. */
    const dyingBefore = (subject: string): NatsHandle => {
      const js = new Proxy(s.handle.js, {
        get(target, prop, receiver) {
          if (prop !== 'publish') return Reflect.get(target, prop, receiver) as unknown;
          return (
            subj: string,
            ...rest: Parameters<NatsHandle['js']['publish']> extends [string, ...infer R] ? R : never
          ) => (subj === subject ? Promise.reject(new Error('gateway died')) : target.publish(subj, ...rest));
        },
      });
      return Object.assign(Object.create(s.handle) as NatsHandle, { js });
    };

    // 1. The first submit wrote its parts and died; the retry (same batch id, new job ids) must win whole.
    const batchId = newId();
    const first = Array.from({ length: 100 }, () => spec('default', batchId, 6_000));
    const retry = Array.from({ length: 100 }, () => spec('default', batchId, 6_000));
    await expect(
      new BatchManifests(dyingBefore(SUBJECTS.batch(batchId)), systemClock).accept(batchId, 'default', first),
    ).rejects.toThrow('gateway died');
    const won = await manifests.accept(batchId, 'default', retry);
    expect(won.parts).toBeGreaterThan(1);
    const stored = (await manifests.read(batchId))!;
    expect(stored.jobIds).toEqual(idsOf(retry));
    expect(idsOf(await manifests.specs(stored))).toEqual(idsOf(retry));

    // 2. Two submits at once: exactly one wins, and its manifest reads exactly its own parts.
    const raced = newId();
    const a = Array.from({ length: 100 }, () => spec('default', raced, 6_000));
    const b = Array.from({ length: 100 }, () => spec('default', raced, 6_000));
    const results = await Promise.allSettled([
      manifests.accept(raced, 'default', a),
      manifests.accept(raced, 'default', b),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const lost = results.find((r) => r.status === 'rejected');
    expect(lost?.status === 'rejected' && lost.reason).toBeInstanceOf(BatchExistsError);
    const m = (await manifests.read(raced))!;
    const winner = m.jobIds[0] === a[0]!.id ? a : b;
    expect(m.jobIds).toEqual(idsOf(winner));
    expect(idsOf(await manifests.specs(m))).toEqual(idsOf(winner));

    // The repair consumer finishes both from the manifests' own parts: only the winners' jobs exist.
    const store = new JobStore(s.handle, systemClock);
    await waitFor(async () => (await store.getMany([...idsOf(retry), ...idsOf(winner)])).size === 200, {
      what: 'the winning batches written by the repair consumer',
      timeoutMs: 20_000,
      intervalMs: 100,
    });
    const losers = [...idsOf(first), ...idsOf(winner === a ? b : a)];
    expect((await store.getMany(losers)).size).toBe(0);
  });

  it('repair leaves committed batches alone (a second gateway racing the original writes nothing twice)', async () => {
    const a = await api.json<BatchAnswer>('POST', '/v1/batches', { jobs: [{ type: 'noop' }, { type: 'noop' }] });
    expect(a.status).toBe(202);
    // The commit marker follows the 202 (it is not on the answer's path).
    await waitFor(async () => {
      const latest = await s.handle.jsm.direct.getMessage(STREAMS.batches, { last_by_subj: SUBJECTS.batch(a.body.id) });
      return decodeJson<BatchManifest>(latest!.data).state === 'committed';
    });
    await waitFor(async () => {
      const ci = await s.handle.jsm.consumers.info(STREAMS.batches, CONSUMERS.batchRepair);
      return ci.num_pending === 0 && ci.num_ack_pending === 0;
    });
    for (const j of a.body.jobs) {
      const info = await s.handle.jsm.streams.info(STREAMS.jobs, { subjects_filter: SUBJECTS.job(j.id) });
      expect(info.state.subjects?.[SUBJECTS.job(j.id)]).toBe(1);
    }
  });
});
