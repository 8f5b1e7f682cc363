/**
 * `GET /v1/queue/events` (real NATS, real sockets; the test plays the leading scheduler on NATS: it answers the queue
 * RPC and publishes the statistics broadcast): the first event is the queue as `GET /v1/queue` answers it; a broadcast
 * whose totals changed reaches every open stream through ONE read from the leader, whatever the number of streams;
 * broadcasts that change nothing cost no read and send nothing; a stream is never sent its first state again; no
 * leader → 503 problem; the streams share the gateway's event-stream slots (429 per key) and give them back when they
 * end.
 */
import { SCHEDULER_RPC, SUBJECTS, type QueueState, type QueueStatsBroadcast } from '@gantry/contracts';
import { encodeJson, replyOk } from '@gantry/jetstream';
import { waitFor, within } from '@gantry/testing';
import type { Subscription } from '@nats-io/nats-core';
import { QueueEventsService } from '../src/events/queue-events.service';
import { SseSlots } from '../src/events/sse-slots';
import { ADMIN, CLIENT, OTHER, expectProblem, startStack, type Client } from './harness';

const PER_KEY = 2;

function queueState(over: Partial<QueueState> = {}): QueueState {
  return {
    paused: false,
    draining: false,
    depth: { urgent: 0, high: 0, normal: 0, low: 0, total: 0 },
    running: 0,
    retrying: 0,
    maxConcurrentJobs: 4,
    availableTokens: 4,
    maxQueueSize: 1000,
    workers: 1,
    scheduled: 0,
    waiting: 0,
    pools: [{ pool: 'default', depth: { urgent: 0, high: 0, normal: 0, low: 0, total: 0 }, scheduled: 0 }],
    ...over,
  };
}

interface QueueStream {
  status: number;
  /** Queue states received so far, in order. */
  states: QueueState[];
  /** The answer's body when it was not a stream. */
  text: string;
  headers: Headers;
  abort(): void;
  done: Promise<void>;
}

async function openQueueStream(base: string, key: string): Promise<QueueStream> {
  const ac = new AbortController();
  const res = await fetch(`${base}/v1/queue/events`, {
    headers: { authorization: `Bearer ${key}`, accept: 'text/event-stream' },
    signal: ac.signal,
  });
  const states: QueueState[] = [];
  if (res.status !== 200) {
    return {
      status: res.status,
      states,
      text: await res.text(),
      headers: res.headers,
      abort: () => undefined,
      done: Promise.resolve(),
    };
  }
  const done = (async () => {
    let buf = '';
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buf += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const lines = block.split('\n');
          if (!lines.includes('event: queue')) continue;
          const data = lines.find((l) => l.startsWith('data: '));
          if (data) states.push(JSON.parse(data.slice('data: '.length)) as QueueState);
        }
      }
    } catch (err) {
      if (!ac.signal.aborted) throw err;
    }
  })();
  return { status: 200, states, text: '', headers: res.headers, abort: () => ac.abort(), done };
}

describe('GET /v1/queue/events (real NATS; the test plays the leader)', () => {
  let s: Awaited<ReturnType<typeof startStack>>;
  let api: Client;
  let current = queueState();
  let reads = 0;
  let leader: Subscription | undefined;

  function playLeader(): void {
    leader = s.handle.nc.subscribe(SCHEDULER_RPC.queue.subject, {
      callback: (_err, m) => {
        reads++;
        replyOk(m, current);
      },
    });
  }

  async function broadcast(state: QueueState): Promise<void> {
    const { pools: _pools, ...totals } = state;
    const msg: QueueStatsBroadcast = {
      v: 1,
      epoch: 1,
      at: new Date().toISOString(),
      ...totals,
      tenants: {},
      appliedSeq: 0,
    };
    s.handle.nc.publish(SUBJECTS.queueStats, encodeJson(msg));
    await s.handle.nc.flush();
  }

  beforeAll(async () => {
    s = await startStack({
      SSE_MAX_STREAMS_PER_KEY: String(PER_KEY),
      SSE_KEEPALIVE_MS: '200',
      RPC_TIMEOUT_MS: '300',
      QUEUE_EVENTS_MIN_INTERVAL_MS: '20',
      QUEUE_EVENTS_REFRESH_MS: '300000',
    });
    api = s.api;
  });
  afterAll(async () => {
    leader?.unsubscribe();
    await s?.stop();
  });

  it('503 problem when no scheduler answers, and the slot is given back', async () => {
    const r = await openQueueStream(s.gateway.url, CLIENT);
    expect(r.status).toBe(503);
    expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(r.headers.get('retry-after')).toBeTruthy();
    await waitFor(() => s.gateway.app.get(SseSlots).open === 0, { what: 'the slot given back' });
  });

  it('first event = GET /v1/queue; a change reaches every stream through one read; repeats cost nothing', async () => {
    playLeader();
    const viaGet = await api.json<QueueState>('GET', '/v1/queue');
    expect(viaGet.status).toBe(200);
    const streams = [
      await openQueueStream(s.gateway.url, ADMIN),
      await openQueueStream(s.gateway.url, CLIENT),
      await openQueueStream(s.gateway.url, OTHER),
    ];
    for (const st of streams) {
      expect(st.status).toBe(200);
      expect(st.headers.get('content-type')).toMatch(/^text\/event-stream/);
      await waitFor(() => st.states.length >= 1, { what: 'the first queue event' });
      expect(st.states[0]).toEqual(viaGet.body);
    }

    // A pause and new work, as the leader broadcasts it: every stream gets the new state, read once for all of them.
    const before = reads;
    current = queueState({
      paused: true,
      depth: { urgent: 1, high: 0, normal: 5, low: 0, total: 6 },
      pools: [{ pool: 'default', depth: { urgent: 1, high: 0, normal: 5, low: 0, total: 6 }, scheduled: 0 }],
    });
    await broadcast(current);
    for (const st of streams) {
      await waitFor(() => st.states.length >= 2, { what: 'the paused state on every stream' });
      expect(st.states[1]).toEqual(current);
    }
    expect(reads - before).toBe(1);

    // Broadcasts with the same totals (the leader sends one about twice a second) read nothing and send nothing; the
    // next real change is the next event on every stream.
    for (let i = 0; i < 5; i++) await broadcast(current);
    const resumed = queueState({ depth: current.depth, pools: current.pools, running: 2, availableTokens: 2 });
    current = resumed;
    await broadcast(resumed);
    for (const st of streams) {
      await waitFor(() => st.states.length >= 3, { what: 'the resumed state on every stream' });
      expect(st.states).toHaveLength(3);
      expect(st.states[2]).toEqual(resumed);
    }
    expect(reads - before).toBe(2);

    for (const st of streams) st.abort();
    await Promise.all(streams.map((st) => within(st.done, 10_000, 'the stream to end')));
    await waitFor(() => s.gateway.app.get(QueueEventsService).open === 0, { what: 'the streams closed' });
    await waitFor(() => s.gateway.app.get(SseSlots).open === 0, { what: 'the slots given back' });
  });

  it('shares the per-key slots with job event streams: 429 past SSE_MAX_STREAMS_PER_KEY, other keys unaffected', async () => {
    const held = [await openQueueStream(s.gateway.url, CLIENT), await openQueueStream(s.gateway.url, CLIENT)];
    for (const st of held) expect(st.status).toBe(200);
    const refused = await openQueueStream(s.gateway.url, CLIENT);
    expect(refused.status).toBe(429);
    expectProblem(
      { status: refused.status, headers: refused.headers, body: JSON.parse(refused.text), text: refused.text },
      429,
    );
    // A job event stream of the same key is refused too: one pool of slots per key.
    const submitted = await api.as(CLIENT).json<{ id: string }>('POST', '/v1/jobs', { type: 'noop' });
    expect(submitted.status).toBe(202);
    const job = await api.as(CLIENT).raw('GET', `/v1/jobs/${submitted.body.id}/events`);
    expect(job.status).toBe(429);
    const other = await openQueueStream(s.gateway.url, OTHER);
    expect(other.status).toBe(200);
    for (const st of [...held, other]) st.abort();
    await waitFor(() => s.gateway.app.get(SseSlots).open === 0, { what: 'the slots given back' });
    // And once given back, the key opens a stream again.
    const again = await openQueueStream(s.gateway.url, CLIENT);
    expect(again.status).toBe(200);
    again.abort();
    await waitFor(() => s.gateway.app.get(SseSlots).open === 0, { what: 'the slot given back' });
  });

  it('does not repeat a stream its first state: the first broadcast after it opens reads the same state, sends nothing', async () => {
    // No stream open: the gateway follows nothing, so the next broadcast is the first one it compares (read once).
    await waitFor(() => s.gateway.app.get(QueueEventsService).open === 0, { what: 'no stream open' });
    const st = await openQueueStream(s.gateway.url, ADMIN);
    expect(st.status).toBe(200);
    await waitFor(() => st.states.length >= 1, { what: 'the first queue event' });
    expect(st.states[0]).toEqual(current);
    const before = reads;
    await broadcast(current);
    await waitFor(() => reads > before, { what: 'the read the first broadcast makes' });
    // The next change is the stream's second event (a repeat of the first state would be there instead).
    current = queueState({ ...current, running: 3, availableTokens: 1 });
    await broadcast(current);
    await waitFor(() => st.states.length >= 2, { what: 'the next state' });
    expect(st.states[1]).toEqual(current);
    st.abort();
    await within(st.done, 10_000, 'the stream to end');
    await waitFor(() => s.gateway.app.get(SseSlots).open === 0, { what: 'the slot given back' });
  });
});
