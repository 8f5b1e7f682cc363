/**
 * Dependencies at the gateway (v1.1; real NATS, real HTTP, no scheduler): `dependsOn` of a single submit and of a
 * batch, batch `ref`s resolved to ids before the records are written, parent outputs named as inputs
 * (`job:<id>/<name>`, `job:ref:<ref>/<name>`), and every refusal a 400 problem naming the field that writes nothing.
 * The listing's `status=waiting` needs the scheduler's index: test/e2e/pipelines.e2e.ts. The tenant attack: tenant B naming tenant A's job id gets exactly the answer a random id gets.
 */
import { STREAMS, newId, type JobStatus } from '@gantry/contracts';
import { CLIENT, OTHER, expectProblem, startStack, type Client, type ProblemBody } from './harness';

const IN = 'https://media.example.com/in.mp4';

interface View {
  id: string;
  status: JobStatus;
  input: Record<string, unknown>;
  dependsOn?: string[];
  callbackUrl?: string;
  batchId?: string;
}

function transcode(extra: Record<string, unknown> = {}) {
  return {
    type: 'ffmpeg',
    input: { args: ['-i', 'in.mp4', '-vf', 'scale=320:-2', 'out.mp4'], inputs: { 'in.mp4': IN }, outputs: ['out.mp4'] },
    ...extra,
  };
}

/** A thumbnail of `source` (an input URL such as `job:<id>/out.mp4`). */
function thumbnail(source: string, extra: Record<string, unknown> = {}) {
  return {
    type: 'ffmpeg',
    input: {
      args: ['-i', 'in.mp4', '-frames:v', '1', 'thumb.png'],
      inputs: { 'in.mp4': source },
      outputs: ['thumb.png'],
    },
    ...extra,
  };
}

describe('dependencies at submit (real NATS)', () => {
  let s: Awaited<ReturnType<typeof startStack>>;
  let api: Client;
  let other: Client;
  const jobMessages = async () => (await s.handle.jsm.streams.info(STREAMS.jobs)).state.messages;

  /** The problem, asserting it is a 400 and that nothing was written. */
  async function refused(path: string, body: unknown, as: Client = api): Promise<ProblemBody> {
    const before = await jobMessages();
    const p = expectProblem(await as.json('POST', path, body), 400);
    expect(await jobMessages()).toBe(before);
    return p;
  }

  async function submit(body: unknown, as: Client = api): Promise<View> {
    const a = await as.json<View>('POST', '/v1/jobs', body);
    if (a.status !== 202) throw new Error(`submit answered ${a.status}: ${a.text}`);
    return a.body;
  }

  beforeAll(async () => {
    // The input URLs name example.com: resolution is not what is under test here.
    s = await startStack({ ALLOW_PRIVATE_URLS: 'true' });
    api = s.api.as(CLIENT);
    other = s.api.as(OTHER);
  });
  afterAll(async () => s?.stop());

  it('accepts dependsOn of the tenant’s own jobs: the job is waiting and its view holds the ids', async () => {
    const a = await submit({ type: 'noop' });
    const b = await submit({ type: 'noop' });
    const c = await submit({ type: 'noop', dependsOn: [a.id, b.id] });
    expect(c).toMatchObject({ status: 'waiting', dependsOn: [a.id, b.id] });
    const got = await api.json<View>('GET', `/v1/jobs/${c.id}`);
    expect(got.body).toMatchObject({ status: 'waiting', dependsOn: [a.id, b.id] });
  });

  it('refuses malformed dependsOn with a 400 naming the field', async () => {
    const a = await submit({ type: 'noop' });
    const cases: [unknown, string, RegExp][] = [
      ['x', 'dependsOn', /array/],
      [[1], 'dependsOn', /string/],
      [[a.id, a.id], 'dependsOn', /unique/],
      [Array.from({ length: 101 }, () => newId()), 'dependsOn', /no more than 100/],
      [['bad id!'], 'dependsOn', /job id or ref/],
      [['ref:first'], 'dependsOn[0]', /same batch/],
    ];
    for (const [dependsOn, field, message] of cases) {
      const p = await refused('/v1/jobs', { type: 'noop', dependsOn });
      if (!p.errors?.some((e) => e.field === field && message.test(e.message)))
        throw new Error(`${JSON.stringify(dependsOn)}: no error on ${field} ~ ${message}: ${JSON.stringify(p.errors)}`);
    }
    const p = await refused('/v1/jobs', { type: 'noop', ref: 'first' });
    expect(p.errors).toEqual([{ field: 'ref', message: expect.stringMatching(/batches only/) }]);
  });

  it('attack: tenant B naming tenant A’s job gets exactly the answer a random id gets', async () => {
    const theirs = await submit({ type: 'noop' }, api);
    const random = newId();
    const foreign = await refused('/v1/jobs', { type: 'noop', dependsOn: [theirs.id] }, other);
    const unknown = await refused('/v1/jobs', { type: 'noop', dependsOn: [random] }, other);
    expect(foreign.errors).toEqual([{ field: 'dependsOn[0]', message: 'is an unknown job' }]);
    expect(foreign).toEqual(unknown);
    // The same through an input and in a batch.
    const viaInput = await refused(
      '/v1/jobs',
      thumbnail(`job:${theirs.id}/out.mp4`, { dependsOn: [theirs.id] }),
      other,
    );
    const viaInputRandom = await refused(
      '/v1/jobs',
      thumbnail(`job:${random}/out.mp4`, { dependsOn: [random] }),
      other,
    );
    expect(viaInput).toEqual(viaInputRandom);
    const inBatch = await refused('/v1/batches', { jobs: [{ type: 'noop', dependsOn: [theirs.id] }] }, other);
    const inBatchRandom = await refused('/v1/batches', { jobs: [{ type: 'noop', dependsOn: [random] }] }, other);
    expect(inBatch).toEqual(inBatchRandom);
    expect(inBatch.errors).toEqual([{ field: 'jobs[0].dependsOn[0]', message: 'is an unknown job' }]);
    // Tenant A's own key may name it.
    expect((await submit({ type: 'noop', dependsOn: [theirs.id] }, api)).status).toBe('waiting');
  });

  it('checks parent outputs named as inputs: in dependsOn, declared, stored', async () => {
    const parent = await submit(transcode());
    const uploader = await submit(transcode({ upload: { url: 'https://media.example.com/put?sig=1' } }));
    const ok = await submit(thumbnail(`job:${parent.id}/out.mp4`, { dependsOn: [parent.id] }));
    expect(ok).toMatchObject({ status: 'waiting', dependsOn: [parent.id] });
    expect(ok.input['inputs']).toEqual({ 'in.mp4': `job:${parent.id}/out.mp4` });

    const field = 'input.inputs.in.mp4';
    const cases: [Record<string, unknown>, RegExp][] = [
      [thumbnail(`job:${parent.id}/out.mp4`), /not in dependsOn/],
      [thumbnail(`job:${parent.id}/other.mp4`, { dependsOn: [parent.id] }), /declares no output "other.mp4".*out\.mp4/],
      [thumbnail(`job:${uploader.id}/out.mp4`, { dependsOn: [uploader.id] }), /upload\.url/],
      [thumbnail(`job:ref:first/out.mp4`, { dependsOn: [parent.id] }), /same batch/],
      [thumbnail(`job:${parent.id}/../x.mp4`, { dependsOn: [parent.id] }), /job:<parent id>/],
      [thumbnail(`job:${parent.id}`, { dependsOn: [parent.id] }), /job:<parent id>/],
    ];
    for (const [body, message] of cases) {
      const p = await refused('/v1/jobs', body);
      if (!p.errors?.some((e) => e.field === field && message.test(e.message)))
        throw new Error(`${JSON.stringify(body)}: no error on ${field} ~ ${message}: ${JSON.stringify(p.errors)}`);
    }
  });

  it('a pipeline batch: refs resolved to ids in order, inputs rewritten, the batch callbackUrl applied', async () => {
    const external = await submit({ type: 'noop' });
    const a = await s.api.as(CLIENT).json<{ id: string; jobs: View[] }>('POST', '/v1/batches', {
      callbackUrl: 'https://hooks.example.com/gantry',
      jobs: [
        transcode({ ref: 'transcode' }),
        thumbnail('job:ref:transcode/out.mp4', { ref: 'thumb', dependsOn: ['ref:transcode'] }),
        { type: 'noop', ref: 'analyze', dependsOn: ['ref:transcode', 'ref:thumb', external.id] },
        { type: 'noop' },
      ],
    });
    expect(a.status).toBe(202);
    const [t, th, an, free] = a.body.jobs;
    expect(t).toMatchObject({ status: 'queued', callbackUrl: 'https://hooks.example.com/gantry' });
    expect(t!.dependsOn).toBeUndefined();
    expect(th).toMatchObject({ status: 'waiting', dependsOn: [t!.id] });
    expect(th!.input['inputs']).toEqual({ 'in.mp4': `job:${t!.id}/out.mp4` });
    expect(an).toMatchObject({ status: 'waiting', dependsOn: [t!.id, th!.id, external.id] });
    expect(free!.status).toBe('queued');
    // As stored (not only as answered).
    const stored = await api.json<View>('GET', `/v1/jobs/${th!.id}`);
    expect(stored.body).toMatchObject({ dependsOn: [t!.id], input: { inputs: { 'in.mp4': `job:${t!.id}/out.mp4` } } });
    const counts = await api.json<{ counts: Record<string, number> }>('GET', `/v1/batches/${a.body.id}`);
    expect(counts.body.counts).toMatchObject({ queued: 2, waiting: 2, scheduled: 0 });
  });

  it('refuses bad batch refs naming the field; a later job or itself is refused as a possible cycle', async () => {
    const cases: [Record<string, unknown>[], string, RegExp][] = [
      [
        [
          { type: 'noop', ref: 'a' },
          { type: 'noop', ref: 'a' },
        ],
        'jobs[1].ref',
        /already the ref of jobs\[0\]/,
      ],
      [[{ type: 'noop', ref: 'a', dependsOn: ['ref:a'] }], 'jobs[0].dependsOn[0]', /itself: a cycle/],
      [
        [
          { type: 'noop', ref: 'a', dependsOn: ['ref:b'] },
          { type: 'noop', ref: 'b' },
        ],
        'jobs[0].dependsOn[0]',
        /later job of the batch; a job may depend only on earlier jobs/,
      ],
      [
        [
          { type: 'noop', ref: 'a', dependsOn: ['ref:b'] },
          { type: 'noop', ref: 'b', dependsOn: ['ref:a'] },
        ],
        'jobs[0].dependsOn[0]',
        /a later job that depends on this one: a cycle/,
      ],
      [
        [
          { type: 'noop', ref: 'a' },
          { type: 'noop', dependsOn: ['ref:zz'] },
        ],
        'jobs[1].dependsOn[0]',
        /no job of this/,
      ],
      [[{ type: 'noop', ref: 'bad ref' }], 'jobs[0].ref', /must match/],
      [[{ type: 'noop', ref: 'x'.repeat(65) }], 'jobs[0].ref', /must match/],
      [[transcode({ ref: 't' }), thumbnail('job:ref:t/out.mp4')], 'jobs[1].input.inputs.in.mp4', /not in dependsOn/],
      [
        [transcode({ ref: 't' }), thumbnail('job:ref:t/x.mkv', { dependsOn: ['ref:t'] })],
        'jobs[1].input.inputs.in.mp4',
        /jobs\[0\] \(ref t\) declares no output "x.mkv"/,
      ],
      [
        [
          transcode({ ref: 't', upload: { url: 'https://media.example.com/put' } }),
          thumbnail('job:ref:t/out.mp4', { dependsOn: ['ref:t'] }),
        ],
        'jobs[1].input.inputs.in.mp4',
        /upload\.url/,
      ],
    ];
    for (const [jobs, field, message] of cases) {
      const p = await refused('/v1/batches', { jobs });
      if (!p.errors?.some((e) => e.field === field && message.test(e.message)))
        throw new Error(`${JSON.stringify(jobs)}: no error on ${field} ~ ${message}: ${JSON.stringify(p.errors)}`);
    }
  });
});

describe('TENANT_MAX_QUEUED_JOBS counts waiting jobs (real NATS)', () => {
  let s: Awaited<ReturnType<typeof startStack>>;
  afterAll(async () => s?.stop());

  it('refuses a pipeline batch that would pass the cap whole (429), writing nothing', async () => {
    s = await startStack({ TENANT_MAX_QUEUED_JOBS: '3' });
    const api = s.api.as(CLIENT);
    const jobMessages = async () => (await s.handle.jsm.streams.info(STREAMS.jobs)).state.messages;
    const first = await api.json<View>('POST', '/v1/batches', {
      jobs: [
        { type: 'noop', ref: 'a' },
        { type: 'noop', dependsOn: ['ref:a'] },
      ],
    });
    expect(first.status).toBe(202);
    const before = await jobMessages();
    const a = await api.json('POST', '/v1/batches', {
      jobs: [
        { type: 'noop', ref: 'a' },
        { type: 'noop', dependsOn: ['ref:a'] },
      ],
    });
    const p = expectProblem(a, 429);
    expect(p.detail).toMatch(/holds 2 queued, retrying, scheduled or waiting jobs; at most 3.*refused whole/);
    expect(a.headers.get('retry-after')).toBeTruthy();
    expect(await jobMessages()).toBe(before);
  });
});
