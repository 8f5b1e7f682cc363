/**
 * The firing of one cron due time against a real nats-server (the jobs stream and the schedules bucket), with the
 * instant given explicitly (the clock is a port): missed due times collapse into the latest; two schedulers handling
 * the same due time at once create one job; a predecessor that died between the job and the record is finished, not
 * repeated; overlap skip, pause, delete and the submit bounds create nothing and record the due time (or not).
 */
import {
  BUCKETS,
  CHANNELS,
  bucketDeclarations,
  isNoCallbackJobId,
  newId,
  newJob,
  scheduleJobId,
  scheduleKey,
  streamDeclarations,
  systemClock,
  type ScheduleRecord,
} from '@gantry/contracts';
import { NatsHandle, decodePayload, provision } from '@gantry/jetstream';
import { JobStore } from '@gantry/job-store';
import { NatsServer } from '@gantry/testing';
import { createLogger } from '@gantry/telemetry';
import type { KV } from '@nats-io/kv';
import { ScheduleTimer, type ScheduleSkip } from '../src/schedules/schedule-timer';

const logger = createLogger('schedule-timer-test', 'silent');
const at = (iso: string) => new Date(iso);

describe('ScheduleTimer (real nats-server)', () => {
  let server: NatsServer;
  let nats: NatsHandle;
  let jobs: JobStore;
  let kv: KV;
  let refusal: ScheduleSkip | undefined;
  let n = 0;

  beforeAll(async () => {
    server = await NatsServer.start();
    nats = await NatsHandle.connect({ servers: [server.url], name: 'schedule-timer-test', logger });
    await provision(nats, { streams: [streamDeclarations().jobs], buckets: [bucketDeclarations().schedules] }, logger);
    jobs = new JobStore(nats, systemClock);
    kv = await nats.kvm.open(BUCKETS.schedules);
  });

  afterAll(async () => {
    await nats?.drain();
    await server?.dispose();
  });

  beforeEach(() => {
    refusal = undefined;
  });

  const timer = () => new ScheduleTimer(nats, jobs, { refusal: () => refusal }, undefined, systemClock, logger);

  /** A schedule every 2 s whose next due time is `nextRunAt`. */
  const schedule = async (nextRunAt: string, patch: Partial<ScheduleRecord> = {}) => {
    const id = patch.id ?? `SCHED${String(++n).padStart(4, '0')}`;
    const r: ScheduleRecord = {
      v: 1,
      id,
      tenant: 'ta',
      name: `s${n}`,
      cron: '*/2 * * * * *',
      timezone: 'UTC',
      job: { type: 'noop' },
      spec: {
        tenant: 'ta',
        type: 'noop',
        input: {},
        priority: 'normal',
        pool: 'default',
        timeoutSeconds: 60,
        maxAttempts: 3,
        retryDelaysMs: [1000],
        metadata: {},
      },
      overlap: 'allow',
      paused: false,
      nextRunAt,
      lastDueAt: null,
      lastJobId: null,
      createdAt: nextRunAt,
      updatedAt: nextRunAt,
      ...patch,
    };
    const key = scheduleKey(r.tenant, id);
    await kv.create(key, JSON.stringify(r));
    return { r, key };
  };

  const read = async (key: string): Promise<ScheduleRecord> => {
    const e = await kv.get(key);
    return decodePayload(CHANNELS.schedules, e!.value);
  };

  const jobOf = (id: string, dueIso: string) => jobs.get(scheduleJobId(id, Date.parse(dueIso)), { consistent: true });

  it('collapses due times missed while no scheduler ran into ONE job, the latest', async () => {
    const { r, key } = await schedule('2026-12-02T10:00:02.000Z');
    expect(await timer().handle(key, at('2026-12-02T10:00:11.300Z'))).toBe('fired');
    const job = await jobOf(r.id, '2026-12-02T10:00:10.000Z');
    expect(job?.record).toMatchObject({
      scheduleId: r.id,
      runAt: '2026-12-02T10:00:10.000Z',
      tenant: 'ta',
      status: 'queued',
    });
    for (const missed of ['02', '04', '06', '08'])
      expect(await jobOf(r.id, `2026-12-02T10:00:${missed}.000Z`)).toBeUndefined();
    expect(await read(key)).toMatchObject({
      lastDueAt: '2026-12-02T10:00:10.000Z',
      lastJobId: job!.record.id,
      nextRunAt: '2026-12-02T10:00:12.000Z',
    });
    // Not due yet: nothing.
    expect(await timer().handle(key, at('2026-12-02T10:00:11.900Z'))).toBe('not_due');
  });

  it('two schedulers handling the same due time at once create one job', async () => {
    const { r, key } = await schedule('2026-12-02T11:00:00.000Z');
    const now = at('2026-12-02T11:00:00.010Z');
    const outcomes = await Promise.all([timer().handle(key, now), timer().handle(key, now), timer().handle(key, now)]);
    expect(outcomes.filter((o) => o === 'fired')).toHaveLength(1);
    expect(outcomes.every((o) => o === 'fired' || o === 'exists' || o === 'handled')).toBe(true);
    const job = await jobOf(r.id, '2026-12-02T11:00:00.000Z');
    const history = await jobs.history(job!.record.id);
    expect(history.filter((h) => h.record.sequence === 1)).toHaveLength(1);
    expect(await read(key)).toMatchObject({
      lastDueAt: '2026-12-02T11:00:00.000Z',
      nextRunAt: '2026-12-02T11:00:02.000Z',
    });
  });

  it('finishes what a predecessor left (job created, due time not recorded) without a second job', async () => {
    const { r, key } = await schedule('2026-12-02T12:00:00.000Z');
    const jobId = scheduleJobId(r.id, Date.parse('2026-12-02T12:00:00.000Z'));
    const first = await jobs.create(
      newJob({ ...r.spec, id: jobId, runAt: '2026-12-02T12:00:00.000Z', scheduleId: r.id }, at('2026-12-02T12:00:00Z')),
    );
    expect(await timer().handle(key, at('2026-12-02T12:00:01.000Z'))).toBe('exists');
    const after = await jobs.get(jobId, { consistent: true });
    expect(after!.revision).toBe(first.revision);
    expect(await read(key)).toMatchObject({ lastDueAt: '2026-12-02T12:00:00.000Z', lastJobId: jobId });
    // A due time already recorded is never handled again (even if its job were gone): a stale nextRunAt only moves.
    const e = await kv.get(key);
    await kv.update(key, JSON.stringify({ ...(await read(key)), nextRunAt: '2026-12-02T12:00:00.000Z' }), e!.revision);
    expect(await timer().handle(key, at('2026-12-02T12:00:01.500Z'))).toBe('handled');
    expect((await jobs.get(jobId, { consistent: true }))!.revision).toBe(first.revision);
    expect(await read(key)).toMatchObject({
      lastDueAt: '2026-12-02T12:00:00.000Z',
      nextRunAt: '2026-12-02T12:00:02.000Z',
    });
  });

  it('with overlap skip, records the due time without a job while the previous job is unfinished', async () => {
    const unfinished = await jobs.create(
      newJob({ ...(await schedule('2026-12-02T00:00:00Z')).r.spec, id: 'prevjob1' }, new Date()),
    );
    const { r, key } = await schedule('2026-12-02T13:00:00.000Z', { overlap: 'skip', lastJobId: unfinished.record.id });
    expect(await timer().handle(key, at('2026-12-02T13:00:00.500Z'))).toBe('overlap');
    expect(await jobOf(r.id, '2026-12-02T13:00:00.000Z')).toBeUndefined();
    expect(await read(key)).toMatchObject({
      lastDueAt: '2026-12-02T13:00:00.000Z',
      lastJobId: 'prevjob1',
      nextRunAt: '2026-12-02T13:00:02.000Z',
    });
    // With `allow` it would have fired: the same record with overlap allow does.
    const allowed = await schedule('2026-12-02T13:00:00.000Z', { overlap: 'allow', lastJobId: 'prevjob1' });
    expect(await timer().handle(allowed.key, at('2026-12-02T13:00:00.500Z'))).toBe('fired');
  });

  it("names a callback-less schedule's jobs in the no-callback form, and finds a due time's job under the plain form", async () => {
    const due = '2026-12-02T15:00:00.000Z';
    const quiet = await schedule(due, { id: newId() });
    expect(await timer().handle(quiet.key, at('2026-12-02T15:00:00.100Z'))).toBe('fired');
    const quietId = `${quiet.r.id.toLowerCase()}_${Date.parse(due)}`;
    expect(isNoCallbackJobId(quietId)).toBe(true);
    expect((await jobs.get(quietId, { consistent: true }))?.record).toMatchObject({
      scheduleId: quiet.r.id,
      runAt: due,
    });
    expect(await jobs.get(`${quiet.r.id}_${Date.parse(due)}`, { consistent: true })).toBeUndefined();
    expect((await read(quiet.key)).lastJobId).toBe(quietId);
    // Handled again (a second leader): the same job, none other.
    await kv.put(quiet.key, JSON.stringify({ ...(await read(quiet.key)), lastDueAt: null, nextRunAt: due }));
    expect(await timer().handle(quiet.key, at('2026-12-02T15:00:00.200Z'))).toBe('exists');

    // With a callback: the plain form (the notifier reads it).
    const loud = await schedule(due, { id: newId() });
    const withCallback = { ...loud.r, spec: { ...loud.r.spec, callbackUrl: 'https://hooks.example.com/x' } };
    await kv.put(loud.key, JSON.stringify(withCallback));
    expect(await timer().handle(loud.key, at('2026-12-02T15:00:00.100Z'))).toBe('fired');
    const loudJob = await jobs.get(`${loud.r.id}_${Date.parse(due)}`, { consistent: true });
    expect(loudJob?.record.callbackUrl).toBe('https://hooks.example.com/x');
    expect(isNoCallbackJobId(loudJob!.record.id)).toBe(false);

    // A due time whose job an earlier release created under the plain form (a rolling upgrade): no second job.
    const legacy = await schedule(due, { id: newId() });
    const plainId = scheduleJobId(legacy.r.id, Date.parse(due));
    await jobs.create(newJob({ ...legacy.r.spec, id: plainId, runAt: due, scheduleId: legacy.r.id }, at(due)));
    expect(await timer().handle(legacy.key, at('2026-12-02T15:00:00.100Z'))).toBe('exists');
    expect(await jobs.get(`${legacy.r.id.toLowerCase()}_${Date.parse(due)}`, { consistent: true })).toBeUndefined();
    expect((await read(legacy.key)).lastJobId).toBe(plainId);
  });

  it('skips a due time the submit bounds refuse, and does nothing for paused or deleted schedules', async () => {
    const bounded = await schedule('2026-12-02T14:00:00.000Z');
    refusal = 'tenant_queue_full';
    expect(await timer().handle(bounded.key, at('2026-12-02T14:00:00.100Z'))).toBe('tenant_queue_full');
    expect(await jobOf(bounded.r.id, '2026-12-02T14:00:00.000Z')).toBeUndefined();
    expect((await read(bounded.key)).lastDueAt).toBe('2026-12-02T14:00:00.000Z');

    refusal = undefined;
    const paused = await schedule('2026-12-02T14:00:00.000Z', { paused: true });
    expect(await timer().handle(paused.key, at('2026-12-02T14:00:00.100Z'))).toBe('gone');
    expect(await jobOf(paused.r.id, '2026-12-02T14:00:00.000Z')).toBeUndefined();

    const deleted = await schedule('2026-12-02T14:00:00.000Z');
    await kv.delete(deleted.key);
    expect(await timer().handle(deleted.key, at('2026-12-02T14:00:00.100Z'))).toBe('gone');
    expect(await jobOf(deleted.r.id, '2026-12-02T14:00:00.000Z')).toBeUndefined();
  });
});
