/**
 * Issue 16, lever 2 (docs/architecture.md, "Started revisions"): an attempt that ends before
 * WORKER_STARTED_REVISION_DELAY_MS writes ONE revision after its dispatch — its outcome, which records the start — and
 * clients still get `job.started` before `job.completed`, by webhook and by SSE, with the sequence numbers and
 * webhook ids the two revisions would have had. A longer attempt still writes `running` (seen by GET while it runs),
 * and a job cancelled while its attempt runs unrecorded stays cancelled and its process is killed.
 *
 * The worker runs with a 3 s delay here (so that the cancel below can land inside it); the rest of the e2e suite
 * runs with the default (250 ms).
 */
import { STREAMS, SUBJECTS } from '@gantry/contracts';
import { NatsHandle } from '@gantry/jetstream';
import { createLogger } from '@gantry/telemetry';
import {
  CLIENT_KEY,
  GantryCluster,
  WebhookReceiver,
  assertWholeHistory,
  waitFor,
  webhookType,
  within,
} from '@gantry/testing';

const DELAY_MS = 3_000;

interface View {
  id: string;
  status: string;
  sequence: number;
  attempts: number;
  startedAt?: string;
  finishedAt?: string;
  workerId?: string;
}

interface Body {
  type: string;
  sequence: number;
  generation: number;
  data: View;
}

/** The SSE messages of a stream read to its end: `id`, `event` and the parsed body of each. */
function sseMessages(text: string): { id: number; event: string; body: Body }[] {
  return text
    .split('\n\n')
    .map((block) => ({
      id: /^id: (\d+)$/m.exec(block)?.[1],
      event: /^event: (.+)$/m.exec(block)?.[1],
      data: /^data: (.+)$/m.exec(block)?.[1],
    }))
    .filter((m) => m.id && m.event && m.data)
    .map((m) => ({ id: Number(m.id), event: m.event!, body: JSON.parse(m.data!) as Body }));
}

describe('started revisions folded into short attempts (real processes)', () => {
  let cluster: GantryCluster;
  let receiver: WebhookReceiver;
  let client: NatsHandle;

  /** How many revisions the job's subject holds in the jobs stream. */
  const revisions = async (id: string) =>
    (await client.jsm.streams.info(STREAMS.jobs, { subjects_filter: SUBJECTS.job(id) })).state.subjects?.[
      SUBJECTS.job(id)
    ] ?? 0;
  const sse = (id: string) =>
    fetch(`${cluster.gatewayUrl}/v1/jobs/${id}/events`, { headers: { authorization: `Bearer ${CLIENT_KEY}` } });
  const runningOnWorker = async (id: string) => {
    const r = await cluster.api<{ runningJobs: string[] }[]>('GET', '/v1/workers');
    return r.body.some((w) => w.runningJobs.includes(id));
  };

  beforeAll(async () => {
    receiver = await WebhookReceiver.start();
    cluster = await GantryCluster.start({
      serviceEnv: {
        // A lease of 12 s allows a delay of up to 3 s (a quarter of it); the scheduler keeps the fast timings.
        'gpu-worker': { WORKER_STARTED_REVISION_DELAY_MS: String(DELAY_MS), WORKER_LOST_AFTER_MS: '20000' },
      },
    });
    client = await NatsHandle.connect({
      servers: [cluster.natsUrl],
      name: 'started-revision-test',
      logger: createLogger('t', 'silent'),
    });
  }, 180_000);

  afterAll(async () => {
    await client?.drain();
    await cluster?.stop();
    await receiver?.close();
  });

  it('a 10 ms job writes one revision after its dispatch, and still delivers started then completed', async () => {
    const callbackUrl = `${receiver.url}/hooks/short`;
    const id = await cluster.submit(
      { type: 'noop', input: { durationMs: 10, result: { ok: 1 } }, callbackUrl },
      CLIENT_KEY,
    );
    // Opened at once: the stream replays what is stored and follows live until the job ends.
    const live = await sse(id);
    expect(live.status).toBe(200);
    const done = (await cluster.waitForStatus(id, 'completed')) as unknown as View;
    expect(done.attempts).toBe(1);
    expect(done.sequence).toBe(3);
    expect(Date.parse(done.finishedAt!)).toBeGreaterThanOrEqual(Date.parse(done.startedAt!));

    // The stream: job.queued (1) and job.completed (3) — nothing between them.
    expect(await revisions(id)).toBe(2);
    const raw = await client.jsm.streams.getMessage(STREAMS.jobs, { last_by_subj: SUBJECTS.job(id) });
    const stored = raw!.json<{ type: string; sequence: number; started?: { sequence: number; workerId: string } }>();
    expect(stored).toMatchObject({
      type: 'job.completed',
      sequence: 3,
      started: { sequence: 2, workerId: done.workerId },
    });

    // Webhooks: three, numbered 1, 2, 3, with distinct deterministic ids; started names the worker and no outcome.
    const hooks = await receiver.waitForCount((w) => w.path === '/hooks/short', 3, { timeoutMs: 20_000 });
    const bodies = hooks.map((w) => w.json as Body).sort((a, b) => a.sequence - b.sequence);
    expect(bodies.map((b) => [b.type, b.sequence])).toEqual([
      ['job.queued', 1],
      ['job.started', 2],
      ['job.completed', 3],
    ]);
    expect(new Set(hooks.map((w) => String(w.headers['webhook-id'])))).toEqual(
      new Set([1, 2, 3].map((n) => `msg_${id}_1_${n}`)),
    );
    expect(bodies[1]!.data).toMatchObject({ status: 'running', workerId: done.workerId, startedAt: done.startedAt });
    expect(bodies[1]!.data.finishedAt).toBeUndefined();
    // The started webhook never comes after the completed one (the intake enqueues them in order).
    const arrival = hooks.map((w) => webhookType(w));
    expect(arrival.indexOf('job.started')).toBeLessThan(arrival.indexOf('job.completed'));

    // SSE, live and replayed: the same three events in order, ids = sequences.
    for (const res of [live, await sse(id)]) {
      const msgs = sseMessages(await within(res.text(), 30_000, 'the event stream to end'));
      expect(msgs.map((m) => [m.id, m.event])).toEqual([
        [1, 'job.queued'],
        [2, 'job.started'],
        [3, 'job.completed'],
      ]);
      expect(msgs[1]!.body.data).toMatchObject({ status: 'running', startedAt: done.startedAt });
    }
    // Resuming after the started event sends only the outcome.
    const resumed = await fetch(`${cluster.gatewayUrl}/v1/jobs/${id}/events`, {
      headers: { authorization: `Bearer ${CLIENT_KEY}`, 'last-event-id': '2' },
    });
    const rest = sseMessages(await within(resumed.text(), 30_000, 'the resumed stream to end'));
    expect(rest.map((m) => m.event)).toEqual(['job.completed']);
  });

  it('a long job still writes running, visible while it runs', async () => {
    const id = await cluster.submit({ type: 'noop', input: { durationMs: DELAY_MS + 4_000 } }, CLIENT_KEY);
    const running = (await cluster.waitForStatus(id, 'running', { timeoutMs: 30_000 })) as unknown as View;
    expect(running.sequence).toBe(2);
    expect(running.startedAt).toEqual(expect.any(String));
    expect(await revisions(id)).toBe(2);
    const done = (await cluster.waitForStatus(id, 'completed', { timeoutMs: 30_000 })) as unknown as View;
    // startedAt is when the process started, not when the revision was written.
    expect(done.startedAt).toBe(running.startedAt);
    expect(await revisions(id)).toBe(3);
  });

  it('a job cancelled while its attempt runs unrecorded ends cancelled, and its process is killed', async () => {
    const callbackUrl = `${receiver.url}/hooks/cancel`;
    const id = await cluster.submit({ type: 'noop', input: { durationMs: 30_000 }, callbackUrl }, CLIENT_KEY);
    // Running on the worker (its heartbeat lists it) while the record still says queued.
    await waitFor(async () => (await runningOnWorker(id)) || undefined, { what: 'the attempt on its worker' });
    expect((await cluster.job<View>(id)).status).toBe('queued');
    const cancel = await cluster.api<View>('POST', `/v1/jobs/${id}/cancel`, undefined, CLIENT_KEY);
    expect(cancel.status).toBe(200);
    expect(cancel.body.status).toBe('cancelled');
    // Killed: gone from the worker long before its 30 s were up (at its next ownership check or the delay's end).
    await waitFor(async () => !(await runningOnWorker(id)) || undefined, {
      what: 'the attempt killed',
      timeoutMs: DELAY_MS + 10_000,
    });
    // Nothing after the cancel: no running revision, no outcome.
    expect(await revisions(id)).toBe(2);
    expect((await cluster.job<View>(id)).status).toBe('cancelled');
    const hooks = await receiver.waitForCount((w) => w.path === '/hooks/cancel', 2, { timeoutMs: 20_000 });
    expect(hooks.map((w) => webhookType(w)).sort()).toEqual(['job.cancelled', 'job.queued']);
  });

  it('every history is a path the state machine allows', async () => {
    await assertWholeHistory(cluster.natsUrl);
  });
});
