/**
 * Issue 17, cron schedules (real processes: two schedulers, a worker, a notifier, a gateway, nats-server).
 * - Failover: a 6-field schedule every 2 s; the leading scheduler is killed with SIGKILL mid-run. Asserted: every job
 *   of the schedule has the id `<schedule id>_<due ms>` (lower case: its job has no callback), a distinct `runAt` on the 2 s grid, one first revision, and
 *   `scheduleId`; between the first and the last job, consecutive due times are 2 s apart except for AT MOST ONE gap,
 *   which spans the kill (the due times missed during the takeover collapse into the one job that ends the gap).
 * - Overlap skip: a 5 s job every 2 s runs one at a time (due times that find it unfinished create nothing).
 * - Pause/resume and delete: no job while paused or after delete, proven against a control schedule that keeps
 *   firing meanwhile (no fixed sleeps).
 * - The API: every 400 (cron, timezone, job, refused job fields), 404 across tenants (tenant B really tries to read,
 *   pause, resume and delete tenant A's schedule and changes nothing), the per-tenant cap (429), DELETE 204.
 */
import { isNoCallbackJobId } from '@gantry/contracts';
import { GantryCluster, OtlpReceiver, waitFor } from '@gantry/testing';
import { ADMIN, SCHEDULER_E2E_ENV, StreamReader, TENANT_KEYS, leaderOf } from './support/scheduler-support';

const CAP = 4;

interface ScheduleView {
  id: string;
  name: string;
  cron: string;
  timezone: string;
  job: Record<string, unknown>;
  overlap: string;
  paused: boolean;
  nextRunAt: string | null;
  lastJobId: string | null;
}

interface JobView {
  id: string;
  status: string;
  scheduleId?: string;
  runAt?: string;
  tenant: string;
  startedAt?: string;
  finishedAt?: string;
}

interface Problem {
  status: number;
  errors?: { field: string; message: string }[];
}

describe('cron schedules (real processes)', () => {
  let cluster: GantryCluster;
  let reader: StreamReader;
  let otlp: OtlpReceiver;

  beforeAll(async () => {
    otlp = await OtlpReceiver.start();
    cluster = await GantryCluster.start({
      schedulers: 2,
      workers: 1,
      env: { ...SCHEDULER_E2E_ENV, WORKER_SLOTS: '4', MAX_CONCURRENT_JOBS: '8' },
      serviceEnv: {
        gateway: { MAX_SCHEDULES_PER_TENANT: String(CAP) },
        scheduler: otlp.env('scheduler'),
        'gpu-worker': otlp.env('gpu-worker'),
      },
    });
    reader = await StreamReader.connect(cluster);
  }, 180_000);

  afterAll(async () => {
    await reader?.close();
    await cluster?.stop();
    await otlp?.close();
  });

  const create = async (body: Record<string, unknown>, key = ADMIN): Promise<ScheduleView> => {
    const r = await cluster.api<ScheduleView>('POST', '/v1/schedules', body, key);
    if (r.status !== 201) throw new Error(`create answered ${r.status}: ${JSON.stringify(r.body)}`);
    expect(r.headers.get('location')).toBe(`/v1/schedules/${r.body.id}`);
    return r.body;
  };

  /** Every job of a schedule, from the listing (which reads its own writes), oldest due time first. */
  const jobsOf = async (scheduleId: string, key = ADMIN): Promise<JobView[]> => {
    const out: JobView[] = [];
    let cursor: string | null = null;
    do {
      const q: string = `/v1/jobs?limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const r = await cluster.api<{ items: JobView[]; nextCursor: string | null }>('GET', q, undefined, key);
      expect(r.status).toBe(200);
      out.push(...r.body.items.filter((j) => j.scheduleId === scheduleId));
      cursor = r.body.nextCursor;
    } while (cursor);
    return out.sort((a, b) => Date.parse(a.runAt!) - Date.parse(b.runAt!));
  };

  const waitForJobs = (scheduleId: string, n: number, pred: (j: JobView) => boolean = () => true, key = ADMIN) =>
    waitFor(
      async () => {
        const jobs = (await jobsOf(scheduleId, key)).filter(pred);
        return jobs.length >= n ? jobs : undefined;
      },
      { what: `${n} jobs of schedule ${scheduleId}`, timeoutMs: 90_000, intervalMs: 250 },
    );

  /** Each job of a schedule: deterministic id, runAt on the grid, one first revision, the schedule's id. */
  const expectWellFormed = async (s: ScheduleView, jobs: JobView[], periodMs: number) => {
    const runAts = jobs.map((j) => Date.parse(j.runAt!));
    expect(new Set(jobs.map((j) => j.id)).size).toBe(jobs.length);
    expect(new Set(runAts).size).toBe(jobs.length);
    for (const j of jobs) {
      const due = Date.parse(j.runAt!);
      // The schedule's job has no callback: the no-callback form of the id (lower case), never read by the notifier.
      expect(j.id).toBe(`${s.id.toLowerCase()}_${due}`);
      expect(isNoCallbackJobId(j.id)).toBe(true);
      expect(due % periodMs).toBe(0);
      expect(j.scheduleId).toBe(s.id);
      const h = await reader.history(j.id);
      expect(h.filter((r) => r.record.sequence === 1)).toHaveLength(1);
    }
  };

  it('creates exactly one job per due time across a SIGKILL of the leading scheduler', async () => {
    const first = await leaderOf(cluster);
    const s = await create({
      name: 'every-2s',
      cron: '*/2 * * * * *',
      job: { type: 'noop', input: { durationMs: 50 } },
      overlap: 'allow',
    });
    expect(s).toMatchObject({ timezone: 'UTC', overlap: 'allow', paused: false, lastJobId: null });
    await waitForJobs(s.id, 3);
    const killedAt = Date.now();
    await first.kill('SIGKILL');
    await leaderOf(cluster, first);
    // Three due times after the kill handled by the new leader.
    await waitForJobs(s.id, 3, (j) => Date.parse(j.runAt!) > killedAt);
    const del = await cluster.api('DELETE', `/v1/schedules/${s.id}`);
    expect(del.status).toBe(204);
    const jobs = await jobsOf(s.id);
    await expectWellFormed(s, jobs, 2_000);
    const dues = jobs.map((j) => Date.parse(j.runAt!));
    const gaps: [number, number][] = [];
    for (let i = 1; i < dues.length; i++) if (dues[i]! - dues[i - 1]! !== 2_000) gaps.push([dues[i - 1]!, dues[i]!]);
    // At most one gap (the takeover), and it spans the kill: due times missed then collapsed into one job.
    expect(gaps.length).toBeLessThanOrEqual(1);
    for (const [from, to] of gaps) {
      expect(from).toBeLessThanOrEqual(killedAt);
      expect(to).toBeGreaterThan(killedAt);
    }
    // Every job ran (once: one first revision, checked above).
    for (const j of jobs) await cluster.waitForStatus(j.id, 'completed', { timeoutMs: 60_000 });
    // The restarted scheduler joins as a standby for the next tests.
    cluster.spawn('scheduler');
  }, 240_000);

  it('makes each created job the root of its own trace, carrying the schedule id and due time, linked to the request that created the schedule', async () => {
    const creator = 'a1'.repeat(16);
    const made = await cluster.api<ScheduleView>(
      'POST',
      '/v1/schedules',
      { name: 'traced', cron: '*/2 * * * * *', job: { type: 'noop' }, overlap: 'allow' },
      ADMIN,
      { traceparent: `00-${creator}-${'b2'.repeat(8)}-01` },
    );
    expect(made.status).toBe(201);
    const s = made.body;
    const jobs = await waitForJobs(s.id, 2);
    expect((await cluster.api('DELETE', `/v1/schedules/${s.id}`)).status).toBe(204);
    const traced: string[] = [];
    for (const j of jobs.slice(0, 2)) {
      await cluster.waitForStatus(j.id, 'completed', { timeoutMs: 60_000 });
      const view = await cluster.job<{ traceId?: string }>(j.id);
      expect(view.traceId).toMatch(/^[0-9a-f]{32}$/);
      const spans = await otlp.waitForSpans(
        (all) => all.some((x) => x.traceId === view.traceId && x.service === 'gpu-worker'),
        { timeoutMs: 30_000 },
      );
      const root = spans.find((x) => x.traceId === view.traceId && x.name === 'schedule.fire');
      expect(root).toBeDefined();
      expect(root!.parentSpanId).toBeFalsy();
      expect(root!.attributes).toMatchObject({
        'gantry.schedule.id': s.id,
        'gantry.schedule.due_at': j.runAt,
        'gantry.job.id': j.id,
      });
      // The fire span is the job's parent (one due time, one job, one trace) and links to the schedule's creation.
      expect(root!.links.map((l) => [l.traceId, l.attributes['gantry.link.kind']])).toEqual([[creator, 'schedule']]);
      traced.push(view.traceId!);
    }
    expect(new Set(traced).size).toBe(2);
  }, 120_000);

  it('with overlap skip, creates no job while the previous one is unfinished', async () => {
    const s = await create({
      name: 'long-job',
      cron: '*/2 * * * * *',
      job: { type: 'noop', input: { durationMs: 5_000 } },
    });
    expect(s.overlap).toBe('skip');
    const jobs = await waitForJobs(s.id, 3);
    expect((await cluster.api('DELETE', `/v1/schedules/${s.id}`)).status).toBe(204);
    const all = await jobsOf(s.id);
    await expectWellFormed(s, all, 2_000);
    for (const j of all) await cluster.waitForStatus(j.id, 'completed', { timeoutMs: 60_000 });
    const done = await Promise.all(all.map((j) => reader.record(j.id)));
    // One at a time: each job was created (its due time) after the previous one finished.
    for (let i = 1; i < done.length; i++) {
      expect(Date.parse(done[i]!.createdAt)).toBeGreaterThanOrEqual(Date.parse(done[i - 1]!.finishedAt!));
      expect(Date.parse(done[i]!.runAt!) - Date.parse(done[i - 1]!.runAt!)).toBeGreaterThanOrEqual(4_000);
    }
    expect(jobs.length).toBeGreaterThanOrEqual(3);
  }, 240_000);

  it('pauses (due times skipped), resumes from now, and stops for good once deleted', async () => {
    const control = await create({ name: 'control', cron: '*/2 * * * * *', job: { type: 'noop' }, overlap: 'allow' });
    const s = await create(
      { name: 'pausable', cron: '*/2 * * * * *', job: { type: 'noop' }, overlap: 'allow' },
      TENANT_KEYS.a,
    );
    await waitForJobs(s.id, 1, () => true, TENANT_KEYS.a);
    const paused = await cluster.api<ScheduleView>('POST', `/v1/schedules/${s.id}/pause`, undefined, TENANT_KEYS.a);
    expect(paused.status).toBe(200);
    expect(paused.body.paused).toBe(true);
    const pausedAt = Date.now();
    const before = (await jobsOf(s.id, TENANT_KEYS.a)).length;
    // The control schedule fires three more times: the leader was handling due times all along.
    await waitForJobs(control.id, 3, (j) => Date.parse(j.runAt!) > pausedAt + 1_000);
    // A job whose due time came just before the pause may have been created as it landed: allow that one only.
    const during = await jobsOf(s.id, TENANT_KEYS.a);
    expect(during.filter((j) => Date.parse(j.runAt!) > pausedAt + 1_000)).toHaveLength(0);
    expect(during.length).toBeLessThanOrEqual(before + 1);

    const resumedAt = Date.now();
    const resumed = await cluster.api<ScheduleView>('POST', `/v1/schedules/${s.id}/resume`, {}, TENANT_KEYS.a);
    expect(resumed.status).toBe(200);
    expect(resumed.body.paused).toBe(false);
    expect(Date.parse(resumed.body.nextRunAt!)).toBeGreaterThan(resumedAt - 1_000);
    const after = await waitForJobs(s.id, 1, (j) => Date.parse(j.runAt!) >= resumedAt - 1_000, TENANT_KEYS.a);
    expect(after.length).toBeGreaterThanOrEqual(1);
    const all = await jobsOf(s.id, TENANT_KEYS.a);
    // The due times while paused created nothing (beyond the one that may have been in flight at the pause).
    expect(
      all.filter((j) => Date.parse(j.runAt!) > pausedAt + 1_000 && Date.parse(j.runAt!) < resumedAt - 1_000),
    ).toHaveLength(0);
    await expectWellFormed(s, all, 2_000);
    const view = await cluster.api<ScheduleView>('GET', `/v1/schedules/${s.id}`, undefined, TENANT_KEYS.a);
    expect(view.body.lastJobId).not.toBeNull();

    expect((await cluster.api('DELETE', `/v1/schedules/${s.id}`, undefined, TENANT_KEYS.a)).status).toBe(204);
    const deletedAt = Date.now();
    expect((await cluster.api('GET', `/v1/schedules/${s.id}`, undefined, TENANT_KEYS.a)).status).toBe(404);
    await waitForJobs(control.id, 3, (j) => Date.parse(j.runAt!) > deletedAt + 1_000);
    const afterDelete = await jobsOf(s.id, TENANT_KEYS.a);
    expect(afterDelete.filter((j) => Date.parse(j.runAt!) > deletedAt + 1_000)).toHaveLength(0);
    expect((await cluster.api('DELETE', `/v1/schedules/${control.id}`)).status).toBe(204);
  }, 240_000);

  it('collapses the due times missed while no scheduler ran into one job', async () => {
    const s = await create({ name: 'outage', cron: '*/2 * * * * *', job: { type: 'noop' }, overlap: 'allow' });
    await waitForJobs(s.id, 2);
    const downAt = Date.now();
    await Promise.all(cluster.of('scheduler').map((p) => p.kill('SIGKILL')));
    // What this test is about is the clock: wait (bounded) until at least three due times passed with no scheduler.
    await waitFor(async () => (Date.now() >= downAt + 6_500 ? true : undefined), {
      what: 'three due times without a scheduler',
      timeoutMs: 20_000,
      intervalMs: 100,
    });
    const upAt = Date.now();
    cluster.spawn('scheduler');
    cluster.spawn('scheduler');
    await leaderOf(cluster);
    await waitForJobs(s.id, 2, (j) => Date.parse(j.runAt!) > upAt);
    expect((await cluster.api('DELETE', `/v1/schedules/${s.id}`)).status).toBe(204);
    const jobs = await jobsOf(s.id);
    await expectWellFormed(s, jobs, 2_000);
    const dues = jobs.map((j) => Date.parse(j.runAt!));
    const gaps: [number, number][] = [];
    for (let i = 1; i < dues.length; i++) if (dues[i]! - dues[i - 1]! !== 2_000) gaps.push([dues[i - 1]!, dues[i]!]);
    // One gap, over the outage, of at least three periods: the missed due times made ONE job (the one ending the
    // gap, the latest due time when the new leader looked), not one each; then every 2 s again.
    expect(gaps).toHaveLength(1);
    const [from, to] = gaps[0]!;
    // (A due time falling in the instant between `downAt` and the kill may still have been fired.)
    expect(from).toBeLessThanOrEqual(downAt + 2_000);
    expect(to).toBeGreaterThanOrEqual(upAt - 2_000);
    expect(to - from).toBeGreaterThanOrEqual(6_000);
    expect(jobs.filter((j) => Date.parse(j.runAt!) > from && Date.parse(j.runAt!) < to)).toHaveLength(0);
  }, 240_000);

  it('refuses bad schedules with 400 naming the field, and creates nothing', async () => {
    const key = TENANT_KEYS.b;
    const listBefore = await cluster.api<{ items: ScheduleView[] }>('GET', '/v1/schedules', undefined, key);
    const bad = async (body: unknown, field: string) => {
      const r = await cluster.api<Problem>('POST', '/v1/schedules', body, key);
      expect(r.status).toBe(400);
      expect(r.headers.get('content-type')).toContain('application/problem+json');
      expect(r.body.errors?.map((e) => e.field)).toContain(field);
    };
    const job = { type: 'noop' };
    await bad({ name: 'x', cron: '61 * * * *', job }, 'cron');
    await bad({ name: 'x', cron: '* * * * * * *', job }, 'cron');
    await bad({ name: 'x', cron: 'every minute', job }, 'cron');
    await bad({ name: 'x', cron: '0 0 31 2 *', job }, 'cron');
    await bad({ name: 'x', cron: '* * * * *', timezone: 'Mars/Olympus', job }, 'timezone');
    await bad({ name: 'x', cron: '* * * * *', job: { type: 'no-such-type' } }, 'job.type');
    await bad({ name: 'x', cron: '* * * * *', job: { type: 'noop', priority: 'now' } }, 'job.priority');
    await bad({ name: 'x', cron: '* * * * *', job: { type: 'noop', runAt: new Date().toISOString() } }, 'job.runAt');
    await bad({ name: 'x', cron: '* * * * *', job: { type: 'noop', delaySeconds: 5 } }, 'job.delaySeconds');
    await bad({ name: 'x', cron: '* * * * *', job: { type: 'noop', dependsOn: ['a'] } }, 'job.dependsOn');
    await bad({ name: 'x', cron: '* * * * *' }, 'job');
    await bad({ name: '', cron: '* * * * *', job }, 'name');
    await bad({ name: 'x', cron: '* * * * *', job, overlap: 'sometimes' }, 'overlap');
    await bad({ name: 'x', cron: '* * * * *', job, extra: 1 }, 'extra');
    // Wrong JSON types in every field, and a body that is not an object.
    await bad({ name: 5, cron: '* * * * *', job }, 'name');
    await bad({ name: 'x', cron: ['*'], job }, 'cron');
    await bad({ name: 'x', cron: '* * * * *', timezone: 2, job }, 'timezone');
    await bad({ name: 'x', cron: '* * * * *', job: 'noop' }, 'job');
    await bad({ name: 'x', cron: '* * * * *', job, overlap: true }, 'overlap');
    await bad(
      { name: 'x', cron: '* * * * *', job: { type: 'noop', input: { durationMs: 'long' } } },
      'job.input.durationMs',
    );
    await bad([{ name: 'x' }], 'body');
    const listAfter = await cluster.api<{ items: ScheduleView[] }>('GET', '/v1/schedules', undefined, key);
    expect(listAfter.body.items).toHaveLength(listBefore.body.items.length);
  }, 60_000);

  it("hides a tenant's schedules from other tenants (404) and leaves them unchanged", async () => {
    const a = TENANT_KEYS.a;
    const b = TENANT_KEYS.b;
    const s = await create(
      {
        name: 'a-only',
        cron: '0 0 1 1 *',
        timezone: 'Europe/Paris',
        job: { type: 'noop', callbackToken: 'secret-token' },
      },
      a,
    );
    expect(s.job['callbackToken']).toBeUndefined();
    for (const [method, path] of [
      ['GET', `/v1/schedules/${s.id}`],
      ['POST', `/v1/schedules/${s.id}/pause`],
      ['POST', `/v1/schedules/${s.id}/resume`],
      ['DELETE', `/v1/schedules/${s.id}`],
    ] as const) {
      const r = await cluster.api<Problem>(method, path, undefined, b);
      expect(r.status).toBe(404);
    }
    const listB = await cluster.api<{ items: ScheduleView[] }>('GET', '/v1/schedules', undefined, b);
    expect(listB.body.items.map((x) => x.id)).not.toContain(s.id);
    const asA = await cluster.api<ScheduleView>('GET', `/v1/schedules/${s.id}`, undefined, a);
    expect(asA.status).toBe(200);
    expect(asA.body).toMatchObject({ id: s.id, paused: false, timezone: 'Europe/Paris' });
    // A client key cannot list another tenant; an admin key sees every tenant's.
    expect((await cluster.api('GET', '/v1/schedules?tenant=ta', undefined, b)).status).toBe(403);
    const admin = await cluster.api<{ items: ScheduleView[] }>('GET', '/v1/schedules');
    expect(admin.body.items.map((x) => x.id)).toContain(s.id);
    expect((await cluster.api('GET', `/v1/schedules/${s.id}`)).status).toBe(200);
    expect((await cluster.api('DELETE', `/v1/schedules/${s.id}`, undefined, a)).status).toBe(204);
    expect((await cluster.api('DELETE', `/v1/schedules/${s.id}`, undefined, a)).status).toBe(404);
  }, 60_000);

  it('caps the schedules of a tenant (429) and pages the list', async () => {
    const key = TENANT_KEYS.c;
    const made: string[] = [];
    for (let i = 0; i < CAP; i++)
      made.push((await create({ name: `n${i}`, cron: '0 0 1 1 *', job: { type: 'noop' } }, key)).id);
    const over = await cluster.api<Problem>(
      'POST',
      '/v1/schedules',
      { name: 'over', cron: '0 0 1 1 *', job: { type: 'noop' } },
      key,
    );
    expect(over.status).toBe(429);
    const p1 = await cluster.api<{ items: ScheduleView[]; nextCursor: string | null }>(
      'GET',
      '/v1/schedules?limit=3',
      undefined,
      key,
    );
    expect(p1.body.items.map((x) => x.id)).toEqual(made.slice(0, 3));
    const p2 = await cluster.api<{ items: ScheduleView[]; nextCursor: string | null }>(
      'GET',
      `/v1/schedules?limit=3&cursor=${p1.body.nextCursor}`,
      undefined,
      key,
    );
    expect(p2.body.items.map((x) => x.id)).toEqual(made.slice(3));
    expect(p2.body.nextCursor).toBeNull();
    // A deleted one frees its place.
    expect((await cluster.api('DELETE', `/v1/schedules/${made[0]}`, undefined, key)).status).toBe(204);
    await create({ name: 'again', cron: '0 0 1 1 *', job: { type: 'noop' } }, key);
  }, 60_000);
});
