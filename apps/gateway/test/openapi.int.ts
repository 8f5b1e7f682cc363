/**
 * The OpenAPI document lists every route the gateway serves (checked against what Fastify actually registered, so a
 * new route without documentation fails here), every route of API.md §3, and the HTTP metrics count every answer.
 */
import { CLIENT, startStack, type Client } from './harness';
import { V1_ROUTES } from './routes';

interface OpenApi {
  openapi: string;
  paths: Record<string, Record<string, { responses: Record<string, unknown>; parameters?: { name: string }[] }>>;
  components: { securitySchemes: Record<string, unknown>; schemas: Record<string, unknown> };
}

const toTemplate = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
const UNDOCUMENTED = new Set(['/docs', '/docs/*', '/openapi.json', '/openapi.yaml', '/docs/json', '/docs/yaml']);

describe('OpenAPI and metrics (real NATS)', () => {
  let s: Awaited<ReturnType<typeof startStack>>;
  let api: Client;
  let doc: OpenApi;

  beforeAll(async () => {
    s = await startStack();
    api = s.api;
    const a = await api.as(null).raw('GET', '/openapi.json');
    expect(a.status).toBe(200);
    doc = a.body as OpenApi;
  });
  afterAll(async () => s?.stop());

  it('documents every route Fastify registered (except the docs themselves)', () => {
    // The dashboard's pages and static files are HTML and assets, not API (docs/dashboard.md).
    const served = s.gateway.routes.filter(
      (r) => !UNDOCUMENTED.has(r.url) && !r.url.startsWith('/docs') && !r.url.startsWith('/ui'),
    );
    expect(served.length).toBeGreaterThan(20);
    const missing = served.filter((r) => !doc.paths[toTemplate(r.url)]?.[r.method.toLowerCase()]);
    expect(missing).toEqual([]);
  });

  it('lists every route of API.md §3 with its error answers, and the operational routes', () => {
    for (const r of V1_ROUTES) {
      const op = doc.paths[r.template]?.[r.method.toLowerCase()];
      expect(op).toBeDefined();
      expect(Object.keys(op!.responses)).toContain('401');
      if (r.admin) expect(Object.keys(op!.responses)).toContain('403');
    }
    for (const p of ['/healthz', '/readyz', '/metrics']) expect(doc.paths[p]?.['get']).toBeDefined();
    const submit = doc.paths['/v1/jobs']!['post']!;
    expect(Object.keys(submit.responses).sort()).toEqual([
      '200',
      '202',
      '400',
      '401',
      '413',
      '415',
      '422',
      '429',
      '503',
    ]);
    expect(submit.parameters?.map((p) => p.name)).toContain('Idempotency-Key');
    expect(doc.paths['/v1/jobs/{id}/events']!['get']!.responses['200']).toMatchObject({
      content: { 'text/event-stream': expect.anything() },
    });
    expect(Object.keys(doc.components.securitySchemes).sort()).toEqual(['apiKey', 'bearer']);
    expect(doc.components.schemas).toHaveProperty('SubmitJobDto');
    expect(doc.components.schemas).toHaveProperty('ProblemDoc');
  });

  it('documents the v1.1 pipeline fields: dependsOn and ref on submit, dependsOn and waiting in the answers', () => {
    type Schema = { properties: Record<string, { type?: string; maxItems?: number; enum?: string[] }> };
    const schemas = doc.components.schemas as Record<string, Schema>;
    expect(schemas['SubmitJobDto']!.properties['dependsOn']).toMatchObject({ type: 'array', maxItems: 100 });
    expect(schemas['SubmitJobDto']!.properties['ref']).toMatchObject({ type: 'string' });
    expect(schemas['JobViewDoc']!.properties['dependsOn']).toMatchObject({ type: 'array' });
    expect(schemas['JobViewDoc']!.properties['status']!.enum).toContain('waiting');
    expect(schemas['BatchCountsDoc']!.properties).toHaveProperty('waiting');
  });

  it('serves the UI at /docs', async () => {
    const a = await api.as(null).raw('GET', '/docs');
    expect(a.status).toBe(200);
    expect(a.text).toMatch(/swagger/i);
  });

  it('counts every answer by route template and status, 401/404/415 included, with latency histograms', async () => {
    await api.as(CLIENT).json('POST', '/v1/jobs', { type: 'noop' });
    await api.as(null).json('GET', '/v1/jobs');
    await api.raw('POST', '/v1/jobs', { body: 'x', headers: { 'content-type': 'text/plain' } });
    await api.json('GET', '/v1/no/such/route/1234');
    await api.json('GET', '/v1/jobs/01JNOSUCHJOB0000000000000');
    const m = await api.as(null).raw('GET', '/metrics');
    expect(m.headers.get('content-type')).toMatch(/^text\/plain/);
    const lines = m.text.split('\n');
    const has = (re: RegExp) =>
      expect(lines.find((l) => re.test(l)) ?? `no line matches ${re}`).not.toMatch(/^no line/);
    has(/^gantry_http_requests_total\{method="POST",route="\/v1\/jobs",status="202",service="gateway"\} [1-9]/);
    has(/^gantry_http_requests_total\{method="GET",route="\/v1\/jobs",status="401",service="gateway"\} [1-9]/);
    has(/^gantry_http_requests_total\{method="POST",route="\/v1\/jobs",status="415",service="gateway"\} [1-9]/);
    has(/^gantry_http_requests_total\{method="GET",route="unmatched",status="404",service="gateway"\} [1-9]/);
    has(/^gantry_http_requests_total\{method="GET",route="\/v1\/jobs\/:id",status="404",service="gateway"\} [1-9]/);
    has(
      /^gantry_http_request_seconds_bucket\{(?=.*method="POST")(?=.*route="\/v1\/jobs")(?=.*status_class="2xx").*\} [1-9]/,
    );
    has(/^gantry_jobs_accepted_total\{via="jobs",service="gateway"\} [1-9]/);
    has(/^gantry_process_\w*cpu_seconds_total/);
    // No raw URL ever becomes a label.
    expect(m.text).not.toContain('/v1/no/such/route');
  });
});
