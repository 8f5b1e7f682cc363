/**
 * Property-based hardening: thousands of malformed (and some valid) bodies, media types and headers thrown at every
 * write route with fast-check. Properties, for every request: an answer within a bound (no hang), never a 500 (every
 * refusal a 4xx problem+json), only the statuses the route documents, and nothing created unless the answer is a 202.
 * The scheduler's request/reply is answered by a stand-in on the real nats-server, so that valid queue commands get
 * their 200 and the properties are about the gateway alone.
 */
import fc from 'fast-check';
import { PRIORITIES, STREAMS, SUBJECTS, type QueueState } from '@gantry/contracts';
import { replyOk } from '@gantry/jetstream';
import { ADMIN, CLIENT, startStack, type Client } from './harness';
import { fieldName, isAbout, jobWithWrongTypes, validJob, type Mutated } from './wrong-types';

const TIMEOUT_MS = 10_000;
const CONTENT_TYPES = [
  'application/json',
  'application/json; charset=utf-8',
  'text/plain',
  'application/x-www-form-urlencoded',
  'application/octet-stream',
  '',
];

interface Req {
  body: string | undefined;
  contentType: string;
  idempotencyKey?: string;
}

/** Any JSON, as text. */
const anyJson = fc.jsonValue({ maxDepth: 6 }).map((v) => JSON.stringify(v));
/** Text that is mostly not JSON. */
const junk = fc.oneof(
  fc.string({ maxLength: 200 }),
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.constantFrom(
    '{',
    '[',
    '{"type":',
    '{"type":"noop"',
    'null',
    'true',
    '1e999',
    '{"__proto__":{"a":1}}',
    '{"constructor":{"prototype":{"a":1}}}',
  ),
  fc.nat({ max: 60 }).map((n) => `${'['.repeat(n)}${']'.repeat(n)}`),
);
const anything = fc.jsonValue({ maxDepth: 3 });

/** A job that is often valid and often wrong in one or more fields. */
const job = fc.record(
  {
    type: fc.oneof(fc.constantFrom('noop', 'ffmpeg', 'nope', 'NOOP', ''), anything),
    input: fc.oneof(
      fc.record(
        {
          durationMs: fc.oneof(fc.integer({ min: -10, max: 4_000_000 }), anything),
          progressSteps: fc.nat(2000),
          failTimes: fc.nat(200),
          retryable: fc.oneof(fc.boolean(), anything),
          result: anything,
        },
        { requiredKeys: [] },
      ),
      fc.dictionary(fc.string({ maxLength: 10 }), anything, { maxKeys: 4 }),
      anything,
    ),
    priority: fc.oneof(fc.constantFrom(...PRIORITIES), anything),
    pool: fc.oneof(fc.constantFrom('default', 'gpu-a', 'bad pool', 'x'.repeat(65)), anything),
    callbackUrl: fc.oneof(
      fc.webUrl(),
      fc.constantFrom('http://127.0.0.1/x', 'ftp://a/b', 'http://169.254.169.254/'),
      anything,
    ),
    callbackToken: fc.oneof(fc.string({ maxLength: 40 }), anything),
    timeoutSeconds: fc.oneof(fc.integer({ min: -5, max: 700_000 }), fc.double(), anything),
    maxAttempts: fc.oneof(fc.integer({ min: -1, max: 101 }), anything),
    gpu: fc.oneof(
      fc.record(
        { count: fc.oneof(fc.integer({ min: -1, max: 20 }), anything), memoryMb: fc.oneof(fc.nat(), anything) },
        { requiredKeys: [] },
      ),
      anything,
    ),
    upload: fc.oneof(fc.record({ url: fc.oneof(fc.webUrl(), anything) }, { requiredKeys: [] }), anything),
    metadata: fc.oneof(fc.dictionary(fc.string({ maxLength: 8 }), anything, { maxKeys: 5 }), anything),
  },
  { requiredKeys: [] },
);
const jobWithExtras = fc
  .tuple(job, fc.dictionary(fc.string({ minLength: 1, maxLength: 12 }), anything, { maxKeys: 2 }))
  .map(([j, extra]) => (Math.random() < 0.7 ? j : { ...extra, ...j }));

function request(bodies: fc.Arbitrary<string | undefined>): fc.Arbitrary<Req> {
  return fc.record({
    body: bodies,
    contentType: fc.oneof(
      { weight: 6, arbitrary: fc.constant('application/json') },
      { weight: 1, arbitrary: fc.constantFrom(...CONTENT_TYPES) },
    ),
  });
}

describe('fuzzing every write route (real NATS)', () => {
  let s: Awaited<ReturnType<typeof startStack>>;
  let api: Client;
  let queued: string;
  let cancelled: string;
  const jobMessages = async () => (await s.handle.jsm.streams.info(STREAMS.jobs)).state.messages;

  beforeAll(async () => {
    s = await startStack({ ALLOW_PRIVATE_URLS: 'false', MAX_JOBS_PER_BATCH: '20' });
    api = s.api;
    // The scheduler's part: answer every request/reply op with a queue state.
    const state: QueueState = {
      paused: false,
      draining: false,
      depth: { urgent: 0, high: 0, normal: 0, low: 0, total: 0 },
      running: 0,
      retrying: 0,
      maxConcurrentJobs: 4,
      availableTokens: 4,
      maxQueueSize: 100_000,
      workers: 0,
    };
    s.handle.nc.subscribe(SUBJECTS.schedulerRpc('queue').replace(/queue$/, '*'), {
      callback: (_e, m) => replyOk(m, state),
    });
    queued = (await api.as(CLIENT).json<{ id: string }>('POST', '/v1/jobs', { type: 'noop' })).body.id;
    cancelled = (await api.as(CLIENT).json<{ id: string }>('POST', '/v1/jobs', { type: 'noop' })).body.id;
    await api.as(CLIENT).json('POST', `/v1/jobs/${cancelled}/cancel`);
  });
  afterAll(async () => s?.stop());

  /** Sends one request and checks the properties; `created` is how many jobs a 202 may create. */
  async function check(
    method: string,
    path: string,
    r: Req,
    allowed: readonly number[],
    created: (answer: unknown) => number,
    key = ADMIN,
  ): Promise<void> {
    const before = await jobMessages();
    const headers: Record<string, string> = {};
    if (r.contentType) headers['content-type'] = r.contentType;
    if (r.idempotencyKey !== undefined) headers['idempotency-key'] = r.idempotencyKey;
    const res = await fetch(`${api.baseUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...headers },
      ...(r.body !== undefined ? { body: r.body } : {}),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    const text = await res.text();
    const ctx = `${method} ${path} ${JSON.stringify(r).slice(0, 300)} → ${res.status} ${text.slice(0, 300)}`;
    if (res.status >= 500 || !allowed.includes(res.status)) throw new Error(`unexpected answer: ${ctx}`);
    if (res.status >= 400) {
      if (!/^application\/problem\+json/.test(res.headers.get('content-type') ?? ''))
        throw new Error(`not a problem: ${ctx}`);
      const p = JSON.parse(text) as { status: number; type: string };
      if (p.status !== res.status || !p.type.startsWith('urn:gantry:problem:')) throw new Error(`bad problem: ${ctx}`);
    }
    const grew = (await jobMessages()) - before;
    const expected = res.status === 202 ? created(JSON.parse(text)) : 0;
    if (grew !== expected) throw new Error(`created ${grew} job revisions, expected ${expected}: ${ctx}`);
  }

  it('POST /v1/jobs', async () => {
    const bodies = fc.oneof(
      { weight: 5, arbitrary: jobWithExtras.map((j) => JSON.stringify(j)) },
      { weight: 2, arbitrary: anyJson },
      { weight: 2, arbitrary: junk },
      { weight: 1, arbitrary: fc.constant(undefined) },
    );
    const withKey = fc
      .tuple(request(bodies), fc.option(fc.string({ unit: 'binary-ascii', maxLength: 300 }), { nil: undefined }))
      .map(([r, k]) => ({
        ...r,
        ...(k !== undefined ? { idempotencyKey: k.replace(/[\x00-\x08\x0a-\x1f\x7f]/g, '').trim() } : {}),
      }));
    await fc.assert(
      fc.asyncProperty(withKey, (r) => check('POST', '/v1/jobs', r, [200, 202, 400, 413, 415, 422], () => 1)),
      { numRuns: 1500 },
    );
  });

  it('POST /v1/batches', async () => {
    const batch = fc.record(
      {
        jobs: fc.oneof(fc.array(jobWithExtras, { maxLength: 25 }), anything),
        callbackUrl: fc.oneof(fc.webUrl(), anything),
      },
      { requiredKeys: [] },
    );
    const bodies = fc.oneof(
      { weight: 5, arbitrary: batch.map((b) => JSON.stringify(b)) },
      { weight: 2, arbitrary: anyJson },
      { weight: 1, arbitrary: junk },
    );
    await fc.assert(
      fc.asyncProperty(request(bodies), (r) =>
        check('POST', '/v1/batches', r, [202, 400, 413, 415], (a) => (a as { jobs: unknown[] }).jobs.length),
      ),
      { numRuns: 600 },
    );
  });

  /** Sends a body that must be refused with 400 and exactly these fields (or things inside them) reported. */
  async function refusedNaming(path: string, body: unknown, fields: string[]): Promise<void> {
    const before = await jobMessages();
    const res = await fetch(`${api.baseUrl}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${CLIENT}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    const text = await res.text();
    const ctx = `${path} ${JSON.stringify(body).slice(0, 400)} (wrong: ${fields.join(', ')}) → ${res.status} ${text.slice(0, 400)}`;
    if (res.status !== 400 || !/^application\/problem\+json/.test(res.headers.get('content-type') ?? ''))
      throw new Error(`not a 400 problem: ${ctx}`);
    const reported = ((JSON.parse(text) as { errors?: { field: string }[] }).errors ?? []).map((e) => e.field);
    const missing = fields.filter((f) => !reported.some((r) => isAbout(r, f)));
    const strays = reported.filter((r) => !fields.some((f) => isAbout(r, f)));
    if (missing.length > 0 || strays.length > 0)
      throw new Error(`missing ${JSON.stringify(missing)}, strays ${JSON.stringify(strays)}: ${ctx}`);
    if ((await jobMessages()) !== before) throw new Error(`a refused request wrote: ${ctx}`);
  }

  it('a wrong JSON type in any field of a job is a 400 naming that field (single jobs)', async () => {
    // The oracle is the table of field types in wrong-types.ts, not the validator: every field, every wrong type.
    await fc.assert(
      fc.asyncProperty(jobWithWrongTypes, ({ job, fields }) => refusedNaming('/v1/jobs', job, fields)),
      { numRuns: 600 },
    );
    // …and the same jobs with right types are accepted (so the refusals are about the types alone).
    await fc.assert(
      fc.asyncProperty(validJob, async (job) => {
        const a = await api.as(CLIENT).json('POST', '/v1/jobs', job);
        if (a.status !== 202) throw new Error(`valid job refused: ${JSON.stringify(job)} → ${a.status} ${a.text}`);
      }),
      { numRuns: 30 },
    );
  });

  it('a wrong JSON type in any field of any job of a batch is a 400 naming jobs[i].field', async () => {
    const batch = fc
      .array(
        fc.oneof(
          validJob.map((job): Mutated => ({ job, fields: [] })),
          jobWithWrongTypes,
        ),
        {
          minLength: 1,
          maxLength: 8,
        },
      )
      .filter((jobs) => jobs.some((j) => j.fields.length > 0));
    await fc.assert(
      fc.asyncProperty(batch, (jobs) =>
        refusedNaming(
          '/v1/batches',
          { jobs: jobs.map((j) => j.job) },
          jobs.flatMap((j, i) => j.fields.map((f) => fieldName([f], `jobs[${i}].`))),
        ),
      ),
      { numRuns: 300 },
    );
  });

  it('POST /v1/jobs/{id}/cancel, /retry and PUT /v1/jobs/{id}/priority', async () => {
    const noBody = fc.oneof(
      { weight: 3, arbitrary: anyJson },
      { weight: 1, arbitrary: junk },
      { weight: 1, arbitrary: fc.constantFrom(undefined, '', '{}') },
    );
    const priorityBody = fc.oneof(
      {
        weight: 3,
        arbitrary: fc
          .record({ priority: fc.oneof(fc.constantFrom(...PRIORITIES), anything) }, { requiredKeys: [] })
          .map((b) => JSON.stringify(b)),
      },
      { weight: 2, arbitrary: anyJson },
      { weight: 1, arbitrary: junk },
    );
    // Valid requests meet a job in a state that refuses them (409), so nothing changes and nothing is created.
    await fc.assert(
      fc.asyncProperty(request(noBody), (r) =>
        check('POST', `/v1/jobs/${cancelled}/cancel`, r, [400, 409, 415], () => 0, CLIENT),
      ),
      { numRuns: 500 },
    );
    await fc.assert(
      fc.asyncProperty(request(noBody), (r) =>
        check('POST', `/v1/jobs/${queued}/retry`, r, [400, 409, 415], () => 0, CLIENT),
      ),
      { numRuns: 500 },
    );
    await fc.assert(
      fc.asyncProperty(request(priorityBody), (r) =>
        check('PUT', `/v1/jobs/${cancelled}/priority`, r, [400, 409, 415], () => 0, CLIENT),
      ),
      { numRuns: 500 },
    );
    const view = await api.as(CLIENT).json<{ status: string; generation: number }>('GET', `/v1/jobs/${queued}`);
    expect(view.body).toMatchObject({ status: 'queued', generation: 1 });
  });

  it('PUT /v1/queue/config and POST /v1/queue/{pause,resume,drain,clear}', async () => {
    const config = fc.oneof(
      {
        weight: 3,
        arbitrary: fc
          .record(
            {
              maxConcurrentJobs: fc.oneof(fc.integer({ min: -5, max: 2_000_000 }), anything),
              maxQueueSize: fc.oneof(fc.integer({ min: -5, max: 200_000_000 }), anything),
            },
            { requiredKeys: [] },
          )
          .map((b) => JSON.stringify(b)),
      },
      { weight: 2, arbitrary: anyJson },
      { weight: 1, arbitrary: junk },
    );
    await fc.assert(
      fc.asyncProperty(request(config), (r) => check('PUT', '/v1/queue/config', r, [200, 400, 415], () => 0)),
      { numRuns: 600 },
    );
    const noBody = fc.oneof(anyJson, junk, fc.constantFrom(undefined, '{}'));
    for (const op of ['pause', 'resume', 'drain', 'clear']) {
      await fc.assert(
        fc.asyncProperty(request(noBody), (r) => check('POST', `/v1/queue/${op}`, r, [200, 400, 415], () => 0)),
        { numRuns: 150 },
      );
    }
  });
});
