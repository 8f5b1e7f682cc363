/**
 * Observability (issue 8): one job = one trace across the four real processes, exported over OTLP/HTTP to a real
 * receiver; the spans form one tree with the expected services, kinds and parent links, one span per webhook
 * attempt with the failed ones marked. A pipeline (issue 17): each job its own trace, a child's root linked to its
 * parents' traces, its release and a cascade as scheduler spans in the child's trace linked to the parents' (and the
 * release / cascade counters moving). And every service's /metrics moves as jobs run.
 */
import { spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GantryCluster, OtlpReceiver, WebhookReceiver, waitFor, type ReceivedSpan } from '@gantry/testing';

const SERVER = 2;
const CLIENT = 3;
const PRODUCER = 4;
const CONSUMER = 5;
const STATUS_ERROR = 2;

function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+([-\d.e+]+|NaN)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const l = m[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`))) sum += Number(m[3]);
  }
  return sum;
}

describe('observability across the four services', () => {
  let otlp: OtlpReceiver;
  let receiver: WebhookReceiver;
  let cluster: GantryCluster;

  beforeAll(async () => {
    otlp = await OtlpReceiver.start();
    receiver = await WebhookReceiver.start();
    cluster = await GantryCluster.start({
      serviceEnv: {
        gateway: otlp.env('gateway'),
        scheduler: otlp.env('scheduler'),
        'gpu-worker': otlp.env('gpu-worker'),
        notifier: otlp.env('notifier'),
      },
    });
  });

  afterAll(async () => {
    await cluster?.stop();
    await receiver?.close();
    await otlp?.close();
  });

  it('traces one job as one tree from the HTTP request to the last webhook attempt', async () => {
    receiver.failFirst(1, { status: 503 });
    const traceparent = `00-${'ab'.repeat(16)}-${'cd'.repeat(8)}-01`;
    const r = await cluster.api<{ id: string }>(
      'POST',
      '/v1/jobs',
      { type: 'noop', input: { durationMs: 100, progressSteps: 2 }, callbackUrl: `${receiver.url}/trace` },
      undefined,
      { traceparent },
    );
    expect(r.status).toBe(202);
    const id = r.body.id;
    await cluster.waitForStatus(id, 'completed');
    await receiver.waitForCount(
      (w) => (w.json as { type?: string })?.type === 'job.completed' && w.answered === 204,
      1,
      { timeoutMs: 20_000 },
    );

    const traceId = 'ab'.repeat(16);
    const spans = await otlp
      .waitForSpans(
        (all) => {
          const t = all.filter((s) => s.traceId === traceId);
          const services = new Set(t.map((s) => s.service));
          // Spans are exported when they end: wait until every parent has arrived (the tree is complete).
          const ids = new Set(t.map((s) => s.spanId));
          const orphans = t.filter(
            (s) => s.parentSpanId && !ids.has(s.parentSpanId) && s.parentSpanId !== 'cd'.repeat(8),
          );
          return (
            ['gateway', 'scheduler', 'gpu-worker', 'notifier'].every((x) => services.has(x)) &&
            t.filter((s) => s.name === 'webhook deliver').length >= 4 &&
            orphans.length === 0
          );
        },
        { timeoutMs: 30_000, what: 'spans of all four services' },
      )
      .then((all) => all.filter((s) => s.traceId === traceId));

    const byId = new Map(spans.map((s) => [s.spanId, s]));
    // One tree: every span's parent is in the trace, except the root whose parent is the client's span.
    const roots = spans.filter((s) => !s.parentSpanId || !byId.has(s.parentSpanId));
    expect(roots.map((s) => `${s.service}:${s.name}`)).toEqual(['gateway:POST /v1/jobs']);
    expect(roots[0]!.parentSpanId).toBe('cd'.repeat(8));
    expect(roots[0]!.kind).toBe(SERVER);

    const ancestry = (s: ReceivedSpan): ReceivedSpan[] => {
      const out: ReceivedSpan[] = [];
      let cur: ReceivedSpan | undefined = s;
      while (cur?.parentSpanId && byId.has(cur.parentSpanId)) {
        cur = byId.get(cur.parentSpanId)!;
        out.push(cur);
      }
      return out;
    };
    const find = (service: string, pred: (s: ReceivedSpan) => boolean) =>
      spans.filter((s) => s.service === service && pred(s));

    const queuedPublish = find('gateway', (s) => s.name === 'job.queued publish');
    expect(queuedPublish).toHaveLength(1);
    expect(queuedPublish[0]!.kind).toBe(PRODUCER);
    expect(queuedPublish[0]!.attributes['messaging.system']).toBe('nats');
    expect(queuedPublish[0]!.attributes['gantry.job.id']).toBe(id);

    const dispatch = find('scheduler', (s) => s.name === 'job dispatch');
    expect(dispatch).toHaveLength(1);
    expect(dispatch[0]!.kind).toBe(PRODUCER);
    expect(dispatch[0]!.attributes['messaging.destination.name']).toMatch(/^gantry\.v1\.dispatch\./);

    const run = find('gpu-worker', (s) => s.name === 'job run');
    expect(run).toHaveLength(1);
    expect(ancestry(run[0]!).map((s) => s.name)).toContain('job dispatch');
    const workerConsume = find('gpu-worker', (s) => s.kind === CONSUMER);
    expect(workerConsume.length).toBeGreaterThanOrEqual(1);
    expect(find('gpu-worker', (s) => s.name === 'job.completed publish')).toHaveLength(1);

    const attempts = find('notifier', (s) => s.name === 'webhook deliver');
    expect(attempts.every((s) => s.kind === CLIENT)).toBe(true);
    const failed = attempts.filter((s) => s.status.code === STATUS_ERROR);
    expect(failed).toHaveLength(1);
    expect(failed[0]!.attributes['http.response.status_code']).toBe(503);
    expect(attempts.filter((s) => s.status.code !== STATUS_ERROR).length).toBeGreaterThanOrEqual(3);
    for (const a of attempts) expect(ancestry(a).at(-1)?.name).toBe('POST /v1/jobs');
    expect(find('notifier', (s) => s.kind === CONSUMER).length).toBeGreaterThanOrEqual(4);

    // Logs join up: every worker line about this job carries its id, the service name and the job's trace id.
    const lines = cluster.of('gpu-worker').flatMap((w) => w.lines.filter((l) => l['jobId'] === id));
    expect(lines.map((l) => l.msg)).toEqual(expect.arrayContaining(['attempt started', 'attempt finished']));
    for (const l of lines) {
      expect(l['service']).toBe('gpu-worker');
      expect(l['traceId']).toBe(traceId);
      expect(l['spanId']).toMatch(/^[0-9a-f]{16}$/);
    }
  });

  it('gives a transcode child spans for its download, its process and its upload', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gantry-obs-'));
    const made = spawnSync('ffmpeg', [
      '-hide_banner',
      '-loglevel',
      'error',
      '-y',
      '-f',
      'lavfi',
      '-i',
      'testsrc=duration=1:size=64x48:rate=10',
      '-pix_fmt',
      'yuv420p',
      join(dir, 'in.mp4'),
    ]);
    expect(made.status).toBe(0);
    const video = readFileSync(join(dir, 'in.mp4'));
    const server: Server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'video/mp4' }).end(video));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/in.mp4`;
      const id = await cluster.submit({
        type: 'ffmpeg',
        input: {
          args: ['-i', 'in.mp4', '-vf', 'scale=32:-2', 'out.mp4'],
          inputs: { 'in.mp4': url },
          outputs: ['out.mp4'],
        },
      });
      await cluster.waitForStatus(id, 'completed');
      const spans = await otlp.waitForSpans(
        (all) => {
          const run = all.find((s) => s.name === 'job run' && s.attributes['gantry.job.id'] === id);
          return (
            !!run &&
            ['job download', 'job process', 'job upload'].every((n) =>
              all.some((s) => s.name === n && s.parentSpanId === run.spanId),
            )
          );
        },
        { timeoutMs: 30_000, what: 'the transcode spans' },
      );
      const run = spans.find((s) => s.name === 'job run' && s.attributes['gantry.job.id'] === id)!;
      const children = spans.filter((s) => s.parentSpanId === run.spanId);
      expect(children.find((s) => s.name === 'job process')!.attributes['process.exit.code']).toBe(0);
      expect(Number(children.find((s) => s.name === 'job download')!.attributes['gantry.bytes'])).toBe(video.length);
      expect(Number(children.find((s) => s.name === 'job upload')!.attributes['gantry.bytes'])).toBeGreaterThan(0);
      // The whole transcode is still one trace with the submit.
      expect(spans.some((s) => s.traceId === run.traceId && s.name === 'POST /v1/jobs')).toBe(true);
    } finally {
      server.close();
    }
  });

  it("gives each job of a pipeline its own trace, linked to its parents' traces; its release and a cascade are in it", async () => {
    const scrape = async (url: string) => (await fetch(url)).text();
    const schedulerMetrics = () => {
      const p = cluster.of('scheduler')[0]!;
      const line = p.lines.find((l) => typeof l['url'] === 'string' && String(l['msg']).includes('ops endpoint'));
      return scrape(`${String(line!['url'])}/metrics`);
    };
    const counters = async () => {
      const t = await schedulerMetrics();
      return {
        released: metricValue(t, 'gantry_jobs_released_total', { pool: 'default' }),
        failed: metricValue(t, 'gantry_jobs_dependency_failed_total', { pool: 'default' }),
      };
    };
    const before = await counters();
    const clientTrace = 'ef'.repeat(16);
    const batch = await cluster.api<{ jobs: { id: string }[] }>(
      'POST',
      '/v1/batches',
      {
        jobs: [
          { ref: 'a', type: 'noop', input: { durationMs: 50 } },
          { ref: 'b', type: 'noop', input: { durationMs: 150 } },
          { type: 'noop', input: { durationMs: 10 }, dependsOn: ['ref:a', 'ref:b'] },
        ],
      },
      undefined,
      { traceparent: `00-${clientTrace}-${'12'.repeat(8)}-01` },
    );
    expect(batch.status).toBe(202);
    const [a, b, c] = batch.body.jobs.map((j) => j.id) as [string, string, string];
    await cluster.waitForStatus(c, 'completed', { timeoutMs: 60_000 });
    const view = (id: string) => cluster.job<{ traceId?: string; finishedAt?: string }>(id);
    const [va, vb, vc] = [await view(a), await view(b), await view(c)];
    const [ta, tb, tc] = [va.traceId!, vb.traceId!, vc.traceId!];
    // One trace per job: three traces, none of them the request's.
    expect(new Set([ta, tb, tc, clientTrace]).size).toBe(4);

    const inTrace = (all: ReceivedSpan[], traceId: string, name: string) =>
      all.filter((x) => x.traceId === traceId && x.name === name);
    const spans = await otlp.waitForSpans(
      (all) =>
        ['job.submit', 'job.release', 'job.queued publish', 'job run'].every((n) => inTrace(all, tc, n).length > 0) &&
        [ta, tb].every((t) => inTrace(all, t, 'job.submit').length > 0),
      { timeoutMs: 30_000, what: "the child's and its parents' spans" },
    );
    const linked = (x: ReceivedSpan, kind: string) => x.links.filter((l) => l.attributes['gantry.link.kind'] === kind);

    // The child's root: a `job.submit` span of its own trace, linked to the batch request and to both parents' traces.
    const submit = inTrace(spans, tc, 'job.submit');
    expect(submit).toHaveLength(1);
    expect(submit[0]!.service).toBe('gateway');
    expect(submit[0]!.parentSpanId).toBeFalsy();
    expect(submit[0]!.attributes['gantry.job.id']).toBe(c);
    expect(linked(submit[0]!, 'request').map((l) => l.traceId)).toEqual([clientTrace]);
    const parentLinks = linked(submit[0]!, 'parent');
    expect(parentLinks.map((l) => l.traceId).sort()).toEqual([ta, tb].sort());
    expect(parentLinks.map((l) => l.attributes['gantry.job.id']).sort()).toEqual([a, b].sort());
    // The parents' roots are likewise their own, linked to the request only.
    for (const t of [ta, tb]) {
      const root = inTrace(spans, t, 'job.submit')[0]!;
      expect(root.parentSpanId).toBeFalsy();
      expect(linked(root, 'request').map((l) => l.traceId)).toEqual([clientTrace]);
      expect(linked(root, 'parent')).toEqual([]);
    }

    // The release, by the scheduler, in the child's trace, linked to both parents' traces; the one whose completion
    // released it (the later to finish) marked.
    const release = inTrace(spans, tc, 'job.release');
    expect(release).toHaveLength(1);
    expect(release[0]!.service).toBe('scheduler');
    expect(release[0]!.parentSpanId).toBe(submit[0]!.spanId);
    const releaseLinks = release[0]!.links;
    expect(releaseLinks.map((l) => l.traceId).sort()).toEqual([ta, tb].sort());
    const releasedBy = linked(release[0]!, 'released_by');
    expect(releasedBy).toHaveLength(1);
    if (Date.parse(va.finishedAt!) !== Date.parse(vb.finishedAt!)) {
      const later = Date.parse(va.finishedAt!) > Date.parse(vb.finishedAt!) ? a : b;
      expect(releasedBy[0]!.attributes['gantry.job.id']).toBe(later);
    }
    // The release's revision is published inside it; the child's run is in its trace too.
    const queued = inTrace(spans, tc, 'job.queued publish');
    expect(queued.some((x) => x.service === 'scheduler' && x.parentSpanId === release[0]!.spanId)).toBe(true);
    expect(inTrace(spans, tc, 'job run')[0]!.attributes['gantry.job.id']).toBe(c);

    // A cascade: a single job whose parent fails ends DEPENDENCY_FAILED; the decision is in its own trace, linked to
    // the parent's.
    const parent = await cluster.submit({ type: 'noop', input: { durationMs: 300, failTimes: 1 }, maxAttempts: 1 });
    const child = await cluster.submit({ type: 'noop', dependsOn: [parent] });
    await cluster.waitForStatus(child, 'cancelled', { timeoutMs: 60_000 });
    const [tp, tch] = [(await view(parent)).traceId!, (await view(child)).traceId!];
    expect(tp).not.toBe(tch);
    const cascade = await otlp
      .waitForSpans((all) => inTrace(all, tch, 'job.dependency_failed').length > 0, {
        timeoutMs: 30_000,
        what: 'the cascade span',
      })
      .then((all) => inTrace(all, tch, 'job.dependency_failed'));
    expect(cascade).toHaveLength(1);
    expect(cascade[0]!.attributes['gantry.dependency.failed_parent']).toBe(parent);
    expect(linked(cascade[0]!, 'failed_by').map((l) => [l.traceId, l.attributes['gantry.job.id']])).toEqual([
      [tp, parent],
    ]);
    // A single job with parents: its `job.submit` continues the request's trace (its own) and links to the parent's.
    const childSubmit = inTrace(otlp.spans, tch, 'job.submit');
    expect(childSubmit).toHaveLength(1);
    expect(inTrace(otlp.spans, tch, 'POST /v1/jobs').map((x) => x.spanId)).toEqual([childSubmit[0]!.parentSpanId]);
    expect(linked(childSubmit[0]!, 'parent').map((l) => l.traceId)).toEqual([tp]);

    // And the scheduler counted both decisions.
    await waitFor(
      async () => {
        const now = await counters();
        return now.released >= before.released + 1 && now.failed >= before.failed + 1;
      },
      { what: 'gantry_jobs_released_total and gantry_jobs_dependency_failed_total moving', timeoutMs: 20_000 },
    );
  }, 120_000);

  it('exposes metrics on every service that move as jobs run', async () => {
    const scrape = async (url: string) => (await fetch(url)).text();
    const opsUrl = (name: string) => {
      const p = cluster.of(name as 'scheduler')[0]!;
      const line = p.lines.find((l) => typeof l['url'] === 'string' && String(l['msg']).includes('ops endpoint'));
      return `${String(line!['url'])}/metrics`;
    };
    const before = {
      http: metricValue(await scrape(`${cluster.gatewayUrl}/metrics`), 'gantry_http_requests_total', {
        route: '/v1/jobs',
        method: 'POST',
      }),
      dispatched: metricValue(await scrape(opsUrl('scheduler')), 'gantry_dispatches_total'),
      attempts: metricValue(await scrape(opsUrl('gpu-worker')), 'gantry_worker_attempts_total', { outcome: 'ok' }),
      webhooks: metricValue(await scrape(opsUrl('notifier')), 'gantry_webhook_attempts_total', { outcome: 'success' }),
    };
    const id = await cluster.submit({
      type: 'noop',
      input: { durationMs: 50 },
      callbackUrl: `${receiver.url}/metrics`,
    });
    await cluster.waitForStatus(id, 'completed');
    await waitFor(
      async () => {
        const now = {
          http: metricValue(await scrape(`${cluster.gatewayUrl}/metrics`), 'gantry_http_requests_total', {
            route: '/v1/jobs',
            method: 'POST',
          }),
          dispatched: metricValue(await scrape(opsUrl('scheduler')), 'gantry_dispatches_total'),
          attempts: metricValue(await scrape(opsUrl('gpu-worker')), 'gantry_worker_attempts_total', { outcome: 'ok' }),
          webhooks: metricValue(await scrape(opsUrl('notifier')), 'gantry_webhook_attempts_total', {
            outcome: 'success',
          }),
        };
        return (
          now.http > before.http &&
          now.dispatched > before.dispatched &&
          now.attempts > before.attempts &&
          now.webhooks > before.webhooks
        );
      },
      { what: 'metrics moving on all four services', timeoutMs: 20_000 },
    );
    const sched = await scrape(opsUrl('scheduler'));
    for (const name of [
      'gantry_tokens_in_use',
      'gantry_dispatch_latency_seconds_bucket',
      'gantry_worker_slots',
      'gantry_gpu_memory_reserved_mb',
    ]) {
      expect(sched).toContain(name);
    }
    // Queue depth per priority and pool; wait and run time histograms by type (and outcome); retries.
    expect(sched).toMatch(/gantry_queue_depth\{[^}]*pool="default"[^}]*priority="urgent"/);
    const runs = (t: string) => metricValue(t, 'gantry_job_run_seconds_count', { type: 'noop', outcome: 'completed' });
    const waits = (t: string) => metricValue(t, 'gantry_job_wait_seconds_count', { type: 'noop' });
    const retries = (t: string) => metricValue(t, 'gantry_job_retries_total');
    const before2 = { runs: runs(sched), waits: waits(sched), retries: retries(sched) };
    const flaky = await cluster.submit({ type: 'noop', input: { failTimes: 1 }, maxAttempts: 2 });
    await cluster.waitForStatus(flaky, 'completed');
    await waitFor(
      async () => {
        const t = await scrape(opsUrl('scheduler'));
        return runs(t) > before2.runs && waits(t) >= before2.waits + 2 && retries(t) > before2.retries;
      },
      { what: 'run/wait histograms and the retry counter moving', timeoutMs: 20_000 },
    );
  });
});
