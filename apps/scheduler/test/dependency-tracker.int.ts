/**
 * The dependency tracker against a real nats-server, with the scheduler's real projection and state: 10,000 children
 * of one parent are released in bounded time when it completes (each exactly once, FIFO keys in acceptance order, the
 * figure logged); and a tracker that starts leading after the parent ended (a takeover: the parent is not in the queue
 * model, its state is read from the job store) releases or fails the children it finds waiting. Each decision counts
 * in `gantry_jobs_released_total` / `gantry_jobs_dependency_failed_total` by the child's pool.
 */
import {
  adminRetry,
  completeAttempt,
  failAttempt,
  jobError,
  newJob,
  requeueAfterDelay,
  startAttempt,
  streamDeclarations,
  systemClock,
  type NewJobSpec,
} from '@gantry/contracts';
import { NatsHandle, mapBounded, provision } from '@gantry/jetstream';
import { JobStore } from '@gantry/job-store';
import { NatsServer, waitFor, noopSpec } from '@gantry/testing';
import { createLogger, Registry } from '@gantry/telemetry';
import { DependencyMetrics, DependencyTracker, type StepReport } from '../src/dependencies/dependency-tracker';
import { SchedulerState } from '../src/domain/scheduler-state';
import { JobProjection } from '../src/projection/job-projection';

const logger = createLogger('dependency-tracker-test', 'silent');

const spec = (id: string, over: Partial<NewJobSpec> = {}): NewJobSpec =>
  noopSpec(id, { tenant: 'acme', retryDelaysMs: [0], ...over });

describe('dependency tracker (real nats-server, real projection)', () => {
  let server: NatsServer;
  let nats: NatsHandle;
  let jobs: JobStore;
  const stops: (() => Promise<void> | void)[] = [];
  const trackers: DependencyTracker[] = [];

  beforeAll(async () => {
    server = await NatsServer.start();
    nats = await NatsHandle.connect({ servers: [server.url], name: 'dependency-tracker-test', logger });
    await provision(nats, { streams: [streamDeclarations().jobs], buckets: [] }, logger);
    jobs = new JobStore(nats, systemClock);
  });
  afterAll(async () => {
    for (const s of stops.reverse()) await s();
    await nats?.drain().catch(() => undefined);
    await server?.dispose();
  });

  /** A scheduler replica's state, projection and tracker; `lead()` makes it the leader. */
  async function replica(steps: StepReport[] = []) {
    const state = new SchedulerState(10, undefined);
    const registry = new Registry();
    const tracker = new DependencyTracker(jobs, state, systemClock, logger, {
      onStep: (s) => steps.push(s),
      metrics: new DependencyMetrics(registry),
    });
    state.wire({ onDependencies: (ids) => tracker.mark(ids) });
    trackers.push(tracker);
    const projection = new JobProjection(nats, state, logger);
    await projection.start();
    await projection.whenCaughtUp();
    stops.push(async () => {
      tracker.deactivate();
      await projection.stop();
    });
    /** A counter's value for one pool, as Prometheus would scrape it (0 when never incremented). */
    const counter = async (name: string, pool: string) =>
      (await registry.getSingleMetric(name)!.get()).values.find((v) => v.labels['pool'] === pool)?.value ?? 0;
    return { state, tracker, projection, counter };
  }

  const run = async (id: string, outcome: 'completed' | 'failed') => {
    const owner = { workerId: 'w1', generation: 1, attempt: 1 };
    await jobs.transition(id, (c) => startAttempt(c.record, owner, { gpus: [], gpuIndices: [] }, systemClock.now()));
    return jobs.transition(id, (c) =>
      outcome === 'completed'
        ? completeAttempt(c.record, owner, {}, systemClock.now())
        : failAttempt(c.record, owner, jobError('EXIT_CODE', 'exit 1', false), systemClock.now()),
    );
  };

  it('releases 10,000 children of one parent in bounded time, once each, in acceptance order', async () => {
    const N = 10_000;
    const steps: StepReport[] = [];
    const { state, tracker, counter } = await replica(steps);
    tracker.activate();
    await jobs.create(newJob(spec('big-parent'), systemClock.now()));
    const ids = Array.from({ length: N }, (_, i) => `big-child-${String(i).padStart(5, '0')}`);
    await mapBounded(ids, 64, (id) => jobs.create(newJob(spec(id, { dependsOn: ['big-parent'] }), systemClock.now())));
    await waitFor(async () => (state.dependencies.size === N ? true : undefined), {
      what: 'every child waiting in the index',
      timeoutMs: 120_000,
    });
    await tracker.idle();
    expect(state.waitingDepths().get('default')).toBe(N);
    // TENANT_MAX_QUEUED_JOBS counts the waiting children (and the queued parent).
    expect(state.tenantDepths()['acme']).toBe(N + 1);

    const done = await run('big-parent', 'completed');
    const parentDone = Date.now();
    await waitFor(async () => (state.dependencies.size === 0 ? true : undefined), {
      what: 'every child released',
      timeoutMs: 120_000,
      intervalMs: 50,
    });
    const ms = Date.now() - parentDone;
    process.stderr.write(
      `[figure] ${N} children of one parent released in ${ms} ms after it completed ` +
        `(${steps.filter((s) => s.released > 0).length} steps)\n`,
    );
    expect(ms).toBeLessThan(90_000);
    const records = await jobs.getMany(ids, { concurrency: 64 });
    const all = [...records.values()];
    expect(all.every((s) => s.record.status === 'queued' && s.record.sequence === 2)).toBe(true);
    expect(all.every((s) => s.revision > done.revision)).toBe(true);
    const byAcceptance = all.sort((x, y) => x.record.createSeq! - y.record.createSeq!).map((s) => s.record.queueSeq!);
    expect([...byAcceptance].sort((x, y) => x - y)).toEqual(byAcceptance);
    expect(state.index.size).toBe(N);
    expect(steps.reduce((n, s) => n + s.released, 0)).toBe(N);
    expect(await counter('gantry_jobs_released_total', 'default')).toBe(N);
    expect(await counter('gantry_jobs_dependency_failed_total', 'default')).toBe(0);
    // This replica stops leading: the next test's replica takes over.
    tracker.deactivate();
  }, 300_000);

  it('on takeover reads parents that ended before it led from the job store: releases or fails their children', async () => {
    // No replica leads.
    for (const t of trackers) t.deactivate();
    await jobs.create(newJob(spec('t-ok'), systemClock.now()));
    await jobs.create(newJob(spec('t-bad'), systemClock.now()));
    await jobs.create(newJob(spec('t-c1', { dependsOn: ['t-ok'] }), systemClock.now()));
    await jobs.create(newJob(spec('t-c2', { dependsOn: ['t-ok', 't-bad'], pool: 'gpu' }), systemClock.now()));
    await jobs.create(newJob(spec('t-c3', { dependsOn: ['t-c2'], pool: 'gpu' }), systemClock.now()));
    await run('t-ok', 'completed');
    await run('t-bad', 'failed');
    const status = async (id: string) => (await jobs.get(id, { consistent: true }))!.record;
    // Nobody leads: they wait.
    for (const id of ['t-c1', 't-c2', 't-c3']) expect((await status(id)).status).toBe('waiting');

    // A fresh replica: the parents' revisions precede the children's, so it knows no parent state; then it leads.
    const { tracker, counter } = await replica();
    tracker.activate();
    await waitFor(async () => ((await status('t-c3')).status === 'cancelled' ? true : undefined), {
      what: 'the cascade to the grandchild',
      timeoutMs: 30_000,
    });
    expect(await status('t-c1')).toMatchObject({ status: 'queued' });
    expect(await status('t-c2')).toMatchObject({ status: 'cancelled', error: { code: 'DEPENDENCY_FAILED' } });
    expect((await status('t-c2')).error!.message).toContain('t-bad');
    expect((await status('t-c3')).error!.message).toContain('t-c2');
    for (const id of ['t-c1', 't-c2', 't-c3']) expect(await jobs.history(id)).toHaveLength(2);
    // Counted by the child's pool: one release, a cascade of two.
    await tracker.idle();
    expect(await counter('gantry_jobs_released_total', 'default')).toBe(1);
    expect(await counter('gantry_jobs_released_total', 'gpu')).toBe(0);
    expect(await counter('gantry_jobs_dependency_failed_total', 'gpu')).toBe(2);
    expect(await counter('gantry_jobs_dependency_failed_total', 'default')).toBe(0);
  }, 120_000);

  it('keeps children waiting while a parent retries; a parent retried by an admin does not revive ended children, an admin-retried child is re-evaluated', async () => {
    for (const t of trackers) t.deactivate();
    const { tracker } = await replica();
    tracker.activate();
    const status = async (id: string) => (await jobs.get(id, { consistent: true }))!.record;
    const until = (id: string, st: string) =>
      waitFor(async () => ((await status(id)).status === st ? true : undefined), {
        what: `${id} ${st}`,
        timeoutMs: 30_000,
      });

    // The scheduler's own retry policy: `retrying` is not an end.
    await jobs.create(newJob(spec('r-parent', { maxAttempts: 2, retryDelaysMs: [10] }), systemClock.now()));
    await jobs.create(newJob(spec('r-child', { dependsOn: ['r-parent'] }), systemClock.now()));
    const owner1 = { workerId: 'w1', generation: 1, attempt: 1 };
    await jobs.transition('r-parent', (c) =>
      startAttempt(c.record, owner1, { gpus: [], gpuIndices: [] }, systemClock.now()),
    );
    await jobs.transition('r-parent', (c) =>
      failAttempt(c.record, owner1, jobError('EXIT_CODE', 'exit 1', true), systemClock.now()),
    );
    expect((await status('r-parent')).status).toBe('retrying');
    await tracker.idle();
    expect((await status('r-child')).status).toBe('waiting');
    await jobs.transition('r-parent', (c) => requeueAfterDelay(c.record, new Date(Date.now() + 1_000)));
    const owner2 = { workerId: 'w1', generation: 1, attempt: 2 };
    await jobs.transition('r-parent', (c) =>
      startAttempt(c.record, owner2, { gpus: [], gpuIndices: [] }, systemClock.now()),
    );
    await jobs.transition('r-parent', (c) => completeAttempt(c.record, owner2, {}, systemClock.now()));
    await until('r-child', 'queued');

    // A parent that failed, then was retried by an admin and completed: its ended child stays ended …
    await jobs.create(newJob(spec('a-parent'), systemClock.now()));
    await jobs.create(newJob(spec('a-child', { dependsOn: ['a-parent'] }), systemClock.now()));
    await run('a-parent', 'failed');
    await until('a-child', 'cancelled');
    await jobs.transition('a-parent', (c) => adminRetry(c.record, systemClock.now()));
    const owner = { workerId: 'w1', generation: 2, attempt: 1 };
    await jobs.transition('a-parent', (c) =>
      startAttempt(c.record, owner, { gpus: [], gpuIndices: [] }, systemClock.now()),
    );
    await jobs.transition('a-parent', (c) => completeAttempt(c.record, owner, {}, systemClock.now()));
    await tracker.idle();
    expect(await status('a-child')).toMatchObject({ status: 'cancelled', generation: 1 });
    // … until it is retried itself: back to waiting, released against the parent's current state.
    await jobs.transition('a-child', (c) => adminRetry(c.record, systemClock.now()));
    await until('a-child', 'queued');
    expect((await jobs.history('a-child')).map((h) => h.event.type)).toEqual([
      'job.waiting',
      'job.cancelled',
      'job.waiting',
      'job.queued',
    ]);
  }, 120_000);
});
