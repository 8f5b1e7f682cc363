/**
 * `GET /v1/jobs/{id}/events` (Server-Sent Events) against a real nats-server. The test plays the worker by writing
 * the job's transitions with the job store, exactly as a worker does, and reads the stream like a browser would.
 */
import { completeAttempt, reportProgress, startAttempt, systemClock, type AttemptOwner } from '@gantry/contracts';
import { JobStore } from '@gantry/job-store';
import { Deferred, within } from '@gantry/testing';
import { ADMIN, CLIENT, OTHER, expectProblem, startStack, type Client } from './harness';

interface SseEvent {
  id?: string;
  event?: string;
  data?: string;
}
interface Body {
  type: string;
  timestamp: string;
  sequence: number;
  generation: number;
  data: { id: string; status: string; progress?: { percent: number }; result?: unknown };
}

/** Opens an event stream; `events` resolves with every event once the server ends the stream. */
async function openStream(
  url: string,
  headers: Record<string, string>,
): Promise<{
  status: number;
  contentType: string | null;
  events: Promise<SseEvent[]>;
  first: Promise<void>;
  abort(): void;
}> {
  const ac = new AbortController();
  const res = await fetch(url, { headers, signal: ac.signal });
  const first = new Deferred<void>();
  const events = (async () => {
    const out: SseEvent[] = [];
    if (!res.body) return out;
    const decoder = new TextDecoder();
    let buf = '';
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buf += decoder.decode(chunk, { stream: true });
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const e: SseEvent = {};
          for (const line of block.split('\n')) {
            const m = /^(id|event|data): ?(.*)$/.exec(line);
            if (m) e[m[1] as keyof SseEvent] = m[2];
          }
          if (e.event) out.push(e);
          first.resolve();
        }
      }
    } catch (err) {
      if (!ac.signal.aborted) throw err;
    }
    return out;
  })();
  return {
    status: res.status,
    contentType: res.headers.get('content-type'),
    events,
    first: first.promise,
    abort: () => ac.abort(),
  };
}

describe('gateway job event streams (real NATS)', () => {
  let s: Awaited<ReturnType<typeof startStack>>;
  let api: Client;
  let store: JobStore;
  const auth = (key = CLIENT) => ({ authorization: `Bearer ${key}` });

  beforeAll(async () => {
    s = await startStack({ SSE_MAX_STREAMS: '3', SSE_KEEPALIVE_MS: '200' });
    api = s.api.as(CLIENT);
    store = new JobStore(s.handle, systemClock);
  });
  afterAll(async () => s?.stop());

  async function submit(): Promise<string> {
    const a = await api.json<{ id: string }>('POST', '/v1/jobs', { type: 'noop' });
    expect(a.status).toBe(202);
    return a.body.id;
  }

  /** Runs the job to completion the way a worker does. */
  async function runToCompletion(id: string): Promise<void> {
    const owner: AttemptOwner = { workerId: 'test-worker', generation: 1, attempt: 1 };
    const now = () => systemClock.now();
    await store.transition(id, (c) => startAttempt(c.record, owner, { gpus: [], gpuIndices: [] }, now()));
    await store.transition(id, (c) => reportProgress(c.record, owner, { percent: 50, stage: 'half' }, now()));
    // An internal revision between: never sent to clients.
    await store.transition(id, (c) => ({
      type: 'job.cancel_requested',
      record: { ...c.record, sequence: c.record.sequence + 1 },
    }));
    await store.transition(id, (c) =>
      completeAttempt(
        { ...c.record, cancelRequestedAt: undefined } as typeof c.record,
        owner,
        { result: { ok: 1 } },
        now(),
      ),
    );
  }

  it('streams the lifecycle live with the webhook type and body, skips internal revisions, and ends after the terminal one', async () => {
    const id = await submit();
    const st = await openStream(`${s.gateway.url}/v1/jobs/${id}/events`, auth());
    expect(st.status).toBe(200);
    expect(st.contentType).toMatch(/^text\/event-stream/);
    await within(st.first, 10_000, 'the first event');
    await runToCompletion(id);
    const events = await within(st.events, 10_000, 'the stream to end');
    expect(events.map((e) => e.event)).toEqual(['job.queued', 'job.started', 'job.progress', 'job.completed']);
    const bodies = events.map((e) => JSON.parse(e.data!) as Body);
    expect(events.map((e) => Number(e.id))).toEqual(bodies.map((b) => b.sequence));
    expect(bodies.map((b) => b.sequence)).toEqual([1, 2, 3, 5]);
    for (const [i, b] of bodies.entries()) {
      expect(b.type).toBe(events[i]!.event);
      expect(b.generation).toBe(1);
      expect(b.data.id).toBe(id);
      expect(Date.parse(b.timestamp)).not.toBeNaN();
    }
    expect(bodies[2]!.data.progress).toEqual({ percent: 50, stage: 'half' });
    expect(bodies[3]!.data).toMatchObject({ status: 'completed', result: { ok: 1 } });
  });

  it('replays the history of a finished job and ends; Last-Event-ID resumes after that sequence', async () => {
    const id = await submit();
    await runToCompletion(id);
    const all = await within((await openStream(`${s.gateway.url}/v1/jobs/${id}/events`, auth())).events, 10_000);
    expect(all.map((e) => e.event)).toEqual(['job.queued', 'job.started', 'job.progress', 'job.completed']);
    const rest = await within(
      (await openStream(`${s.gateway.url}/v1/jobs/${id}/events`, { ...auth(), 'last-event-id': '2' })).events,
      10_000,
    );
    expect(rest.map((e) => e.event)).toEqual(['job.progress', 'job.completed']);
  });

  it('goes on across an admin retry: a terminal event that is not the latest revision does not end the stream', async () => {
    const id = await submit();
    await api.json('POST', `/v1/jobs/${id}/cancel`);
    await api.json('POST', `/v1/jobs/${id}/retry`);
    const st = await openStream(`${s.gateway.url}/v1/jobs/${id}/events`, auth());
    await within(st.first, 10_000);
    await api.json('POST', `/v1/jobs/${id}/cancel`);
    const events = await within(st.events, 10_000);
    expect(events.map((e) => `${e.event}@${(JSON.parse(e.data!) as Body).generation}`)).toEqual([
      'job.queued@1',
      'job.cancelled@1',
      'job.queued@2',
      'job.cancelled@2',
    ]);
  });

  it('sends keepalive comments on a quiet stream and closes its consumer when the client goes away', async () => {
    const id = await submit();
    const res = await fetch(`${s.gateway.url}/v1/jobs/${id}/events`, { headers: auth() });
    const reader = res.body!.getReader();
    let text = '';
    while (!text.includes(': keepalive')) {
      const { value, done } = await within(reader.read(), 5_000, 'a keepalive');
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    expect(text).toContain(': keepalive');
    await reader.cancel();
    // The gateway notices, frees the stream (capacity is 3: three more fit).
    const more = await Promise.all([1, 2, 3].map(() => openStream(`${s.gateway.url}/v1/jobs/${id}/events`, auth())));
    await within(Promise.all(more.map((m) => m.first)), 10_000);
    expect(more.map((m) => m.status)).toEqual([200, 200, 200]);
    // … and a fourth is refused with a 503 while they are open.
    const refused = await api.raw('GET', `/v1/jobs/${id}/events`);
    expect(expectProblem(refused, 503).type).toBe('urn:gantry:problem:sse-capacity');
    expect(refused.headers.get('retry-after')).toBeTruthy();
    for (const m of more) m.abort();
    await Promise.all(more.map((m) => m.events));
  });

  it('404 for an unknown job or another tenant’s; 400 for a bad Last-Event-ID; admins see any', async () => {
    const id = await submit();
    expectProblem(await api.raw('GET', '/v1/jobs/01JNOSUCHJOB0000000000000/events'), 404);
    expectProblem(await api.as(OTHER).raw('GET', `/v1/jobs/${id}/events`), 404);
    expectProblem(await api.raw('GET', `/v1/jobs/${id}/events`, { headers: { 'last-event-id': 'abc' } }), 400);
    const admin = await openStream(`${s.gateway.url}/v1/jobs/${id}/events`, auth(ADMIN));
    expect(admin.status).toBe(200);
    await within(admin.first, 10_000);
    admin.abort();
    await admin.events;
  });
});
