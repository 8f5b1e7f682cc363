/**
 * Delayed jobs at the gateway (real NATS, real HTTP; no scheduler): `runAt` / `delaySeconds` validation with every bad
 * value a 400 problem naming the field that writes nothing (single and batch), MAX_DELAY_SECONDS checked at boot and
 * enforced, a future time accepted as `scheduled` with `runAt` echoed at millisecond precision, a past time (or 0)
 * queued at once, and a scheduled job cancelled or reprioritized like a queued one.
 */
import { ConfigError, loadConfig } from '@gantry/config';
import { STREAMS, type JobStatus } from '@gantry/contracts';
import { gatewaySpec } from '../src/config';
import { CLIENT, expectProblem, startStack, type Client } from './harness';

const MAX_DELAY = 3_600;

interface View {
  id: string;
  status: JobStatus;
  priority: string;
  runAt?: string;
  createdAt: string;
  error?: { code: string };
}

describe('delayed jobs: runAt / delaySeconds (real NATS)', () => {
  let s: Awaited<ReturnType<typeof startStack>>;
  let api: Client;
  const jobMessages = async () => (await s.handle.jsm.streams.info(STREAMS.jobs)).state.messages;

  beforeAll(async () => {
    s = await startStack({ MAX_DELAY_SECONDS: String(MAX_DELAY) });
    api = s.api.as(CLIENT);
  });
  afterAll(async () => s?.stop());

  it('refuses every bad timing with a 400 naming the field, writing nothing', async () => {
    const inAMinute = new Date(Date.now() + 60_000).toISOString();
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ runAt: inAMinute, delaySeconds: 10 }, 'runAt', /not both/],
      [{ runAt: 'tomorrow' }, 'runAt', /ISO-8601/],
      [{ runAt: '2030-01-01' }, 'runAt', /ISO-8601/],
      // No zone: it would be read in the gateway's own time zone.
      [{ runAt: '2030-01-01T10:00:00' }, 'runAt', /ISO-8601/],
      [{ runAt: '2030-02-30T10:00:00Z' }, 'runAt', /valid date-time/],
      [{ runAt: '2030-01-01T24:00:00Z' }, 'runAt', /valid date-time/],
      [{ runAt: '2030-01-01T10:00:61Z' }, 'runAt', /valid date-time/],
      [{ runAt: 1_900_000_000_000 }, 'runAt', /string/],
      [{ runAt: new Date(Date.now() + (MAX_DELAY + 120) * 1000).toISOString() }, 'runAt', /MAX_DELAY_SECONDS/],
      [{ delaySeconds: -1 }, 'delaySeconds', /less than 0/],
      [{ delaySeconds: 1.5 }, 'delaySeconds', /integer/],
      [{ delaySeconds: '10' }, 'delaySeconds', /integer/],
      [{ delaySeconds: MAX_DELAY + 1 }, 'delaySeconds', /MAX_DELAY_SECONDS/],
    ];
    const before = await jobMessages();
    for (const [timing, field, message] of cases) {
      const p = expectProblem(await api.json('POST', '/v1/jobs', { type: 'noop', ...timing }), 400);
      const e = p.errors?.filter((x) => x.field === field && message.test(x.message)) ?? [];
      if (e.length === 0)
        throw new Error(
          `${JSON.stringify(timing)}: no error on ${field} matching ${message}: ${JSON.stringify(p.errors)}`,
        );
    }
    expect(await jobMessages()).toBe(before);
  });

  it('refuses a whole batch when one job has a bad timing, naming its index', async () => {
    const before = await jobMessages();
    const p = expectProblem(
      await api.json('POST', '/v1/batches', {
        jobs: [{ type: 'noop', delaySeconds: 5 }, { type: 'noop', delaySeconds: MAX_DELAY + 1 }, { type: 'noop' }],
      }),
      400,
    );
    expect(p.errors?.map((e) => e.field)).toEqual(['jobs[1].delaySeconds']);
    expect(await jobMessages()).toBe(before);
  });

  it('accepts a future runAt as scheduled, echoing it in UTC at millisecond precision', async () => {
    const at = new Date(Date.now() + 600_000);
    // Given with a +02:00 offset and microseconds.
    const local = new Date(at.getTime() + 2 * 3_600_000).toISOString().replace(/\.(\d{3})Z$/, '.$1456+02:00');
    const a = await api.json<View>('POST', '/v1/jobs', { type: 'noop', runAt: local });
    expect(a.status).toBe(202);
    expect(a.body).toMatchObject({ status: 'scheduled', runAt: at.toISOString() });
    const g = await api.json<View>('GET', `/v1/jobs/${a.body.id}`);
    expect(g.body).toMatchObject({ status: 'scheduled', runAt: at.toISOString() });
    expect(g.body).not.toHaveProperty('queuePosition');
  });

  it('delaySeconds counts from acceptance; at the MAX_DELAY_SECONDS limit it is accepted', async () => {
    const t = Date.now();
    const a = await api.json<View>('POST', '/v1/jobs', { type: 'noop', delaySeconds: MAX_DELAY });
    expect(a.status).toBe(202);
    expect(a.body.status).toBe('scheduled');
    const runAt = Date.parse(a.body.runAt!);
    expect(runAt).toBeGreaterThanOrEqual(t + MAX_DELAY * 1000);
    expect(runAt).toBeLessThanOrEqual(Date.now() + MAX_DELAY * 1000);
  });

  it('queues at once a runAt in the past or delaySeconds 0, keeping runAt', async () => {
    const past = '2020-01-01T00:00:00.000Z';
    const a = await api.json<View>('POST', '/v1/jobs', { type: 'noop', runAt: past });
    expect(a.status).toBe(202);
    expect(a.body).toMatchObject({ status: 'queued', runAt: past });
    const z = await api.json<View>('POST', '/v1/jobs', { type: 'noop', delaySeconds: 0 });
    expect(z.status).toBe(202);
    expect(z.body.status).toBe('queued');
    expect(Date.parse(z.body.runAt!)).toBeLessThanOrEqual(Date.now());
  });

  it('cancels and reprioritizes a scheduled job; batches count scheduled and waiting', async () => {
    const b = await api.json<{ id: string; jobs: View[] }>('POST', '/v1/batches', {
      jobs: [{ type: 'noop', delaySeconds: 600 }, { type: 'noop', delaySeconds: 600 }, { type: 'noop' }],
    });
    expect(b.status).toBe(202);
    expect(b.body.jobs.map((j) => j.status)).toEqual(['scheduled', 'scheduled', 'queued']);
    const [first, second] = b.body.jobs;

    const p = await api.json<View>('PUT', `/v1/jobs/${first!.id}/priority`, { priority: 'urgent' });
    expect(p.status).toBe(200);
    expect(p.body).toMatchObject({ status: 'scheduled', priority: 'urgent', runAt: first!.runAt });

    const c = await api.json<View>('POST', `/v1/jobs/${second!.id}/cancel`);
    expect(c.status).toBe(200);
    expect(c.body).toMatchObject({ status: 'cancelled', error: { code: 'CANCELLED' } });
    expectProblem(await api.json('POST', `/v1/jobs/${second!.id}/cancel`), 409);

    const g = await api.json<{ counts: Record<string, number> }>('GET', `/v1/batches/${b.body.id}`);
    expect(g.body.counts).toEqual({
      scheduled: 1,
      waiting: 0,
      queued: 1,
      running: 0,
      retrying: 0,
      completed: 0,
      failed: 0,
      cancelled: 1,
    });
  });

  it('validates MAX_DELAY_SECONDS at boot', () => {
    for (const bad of ['0', '-5', 'soon', '1.5', String(400 * 86_400)]) {
      expect(() => loadConfig(gatewaySpec, { MAX_DELAY_SECONDS: bad })).toThrow(ConfigError);
    }
    expect(loadConfig(gatewaySpec, {}).MAX_DELAY_SECONDS).toBe(2_592_000);
  });
});
