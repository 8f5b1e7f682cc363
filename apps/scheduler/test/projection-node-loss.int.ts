/**
 * Issue #19: the scheduler's projection after the loss of the NATS node that holds the (R1) jobs stream, on a real
 * 3-node cluster. The node is killed (`kill -9`) while revisions keep being written, and restarted; then the
 * projection must apply what is written after the node's return promptly (it used to trickle about one revision per
 * 30 s pull expiry, and every takeover then stepped down with ProjectionBehindError), every revision exactly once and
 * in order, and a leader takeover must succeed. The same after the whole cluster is restarted at once.
 * Figures are printed as `[reliability] …` lines for docs/reliability.md.
 */
import {
  DEFAULT_TOPOLOGY,
  STREAMS,
  SUBJECTS,
  bucketDeclarations,
  newJob,
  streamDeclarations,
  systemClock,
} from '@gantry/contracts';
import { NatsHandle, provision } from '@gantry/jetstream';
import { JobStore } from '@gantry/job-store';
import { NatsCluster, waitFor, noopSpec } from '@gantry/testing';
import { createLogger } from '@gantry/telemetry';
import { SchedulerState } from '../src/domain/scheduler-state';
import { LeaderElection } from '../src/leader/leader-election';
import { JobProjection, type ProjectionRecreated } from '../src/projection/job-projection';

const logger = createLogger('projection-node-loss-test', process.env.GANTRY_TEST_LOG === 'debug' ? 'debug' : 'silent');
const LEASE_MS = 1_000;
/** Revisions written after the node's return. */
const AFTER_RETURN = 200;
/** How long the projection may take to apply them once written: well under the old ~30 s per revision. */
const CATCH_UP_MS = 20_000;

const report = (what: string, figures: Record<string, unknown>) =>
  process.stdout.write(`[reliability] ${what} ${JSON.stringify(figures)}\n`);

describe('scheduler projection after the loss of the node holding the jobs stream (real 3-node cluster)', () => {
  let cluster: NatsCluster;
  let writer: NatsHandle;
  let jobs: JobStore;
  const handles: NatsHandle[] = [];
  /** Run after each test, failed or not: the writer loop and the projection stopped. */
  const cleanups: (() => Promise<void>)[] = [];

  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  });

  beforeAll(async () => {
    cluster = await NatsCluster.start();
    writer = await NatsHandle.connect({ servers: cluster.urls, name: 'writer', logger });
    handles.push(writer);
    const topology = { ...DEFAULT_TOPOLOGY, leaderLeaseMs: LEASE_MS };
    const s = streamDeclarations(topology);
    // R1 (the default): JetStream places the jobs stream on one node of its choice.
    await provision(writer, { streams: [s.jobs], buckets: [bucketDeclarations(topology).leader] }, logger);
    jobs = new JobStore(writer, systemClock);
  }, 120_000);

  afterAll(async () => {
    for (const h of handles) await h.drain().catch(() => undefined);
    await cluster?.dispose();
  });

  let n = 0;
  const submit = () => jobs.create(newJob(noopSpec(`job-${++n}`), new Date()));

  /** Writes revisions until stopped; writes that fail (the stream's node away) are skipped. */
  function keepWriting(): { stop: () => Promise<void>; acked: () => number; failed: () => number } {
    let on = true;
    let acked = 0;
    let failed = 0;
    const loop = (async () => {
      while (on) {
        const ok = await submit().then(
          () => true,
          () => false,
        );
        if (ok) {
          acked++;
        } else {
          failed++;
          // A failed write (node away) waits a little before the next; acknowledged ones follow at once.
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    })();
    const stop = async () => {
      on = false;
      await loop;
    };
    cleanups.push(stop);
    return {
      stop,
      acked: () => acked,
      failed: () => failed,
    };
  }

  /** A live projection on a connection of its own (every node's URL, like a scheduler), and what it applied. */
  async function liveProjection(name: string) {
    const h = await NatsHandle.connect({ servers: cluster.urls, name, logger });
    handles.push(h);
    const state = new SchedulerState(4, undefined);
    const recreated: ProjectionRecreated[] = [];
    const projection = new JobProjection(h, state, logger, {}, {}, (r) => void recreated.push(r));
    const seen: number[] = [];
    projection.subscribe((s) => void seen.push(s.revision));
    cleanups.push(() => projection.stop());
    await projection.start();
    await projection.whenCaughtUp();
    return { h, state, projection, seen, recreated };
  }

  const lastSeq = async () => (await writer.jsm.streams.info(STREAMS.jobs)).state.last_seq;

  /** After a fault: 200 revisions written, applied promptly, once each, in order; then a takeover succeeds. */
  async function assertRecovers(
    p: Awaited<ReturnType<typeof liveProjection>>,
    w: ReturnType<typeof keepWriting>,
    what: string,
    returnedAt: number,
  ) {
    // Writes succeed again once the stream is back; count 200 acknowledged from then on.
    const before = w.acked();
    await waitFor(() => w.acked() >= before + AFTER_RETURN, {
      what: `${AFTER_RETURN} revisions written after the return`,
      timeoutMs: 180_000,
      intervalMs: 50,
    });
    await w.stop();
    const writtenAt = Date.now();
    const last = await lastSeq();
    await waitFor(() => p.projection.lastApplied >= last, {
      what: `the projection to apply the jobs stream up to ${last} (applied ${p.projection.lastApplied})`,
      timeoutMs: CATCH_UP_MS,
      intervalMs: 50,
    });
    const caughtUpMs = Date.now() - writtenAt;

    // Every revision once, in stream order, and the state holds every job written (all queued: nobody dispatches).
    for (let i = 1; i < p.seen.length; i++) expect(p.seen[i]!).toBeGreaterThan(p.seen[i - 1]!);
    const subjects = (await writer.jsm.streams.info(STREAMS.jobs, { subjects_filter: SUBJECTS.jobsAll })).state
      .num_subjects;
    expect(p.state.index.size).toBe(subjects);

    // A takeover now syncs and dispatches instead of stepping down.
    const deposed: string[] = [];
    let tookOver = false;
    const e = new LeaderElection(
      p.h,
      `after-${what}`,
      LEASE_MS,
      {
        onElected: async () => {
          await p.projection.sync(10_000);
          tookOver = true;
        },
        onDeposed: (reason) => void deposed.push(reason),
      },
      logger,
    );
    await e.start();
    await waitFor(() => tookOver || deposed.length > 0, { what: 'a takeover to finish', timeoutMs: 60_000 });
    await e.stop();
    expect(deposed).not.toContain('takeover failed');
    expect(tookOver).toBe(true);
    report(`projection after ${what}`, {
      revisionsAfterReturn: AFTER_RETURN,
      writtenAfterReturnMs: writtenAt - returnedAt,
      appliedAfterLastWriteMs: caughtUpMs,
      lastSeq: last,
      recreated: p.recreated,
    });
  }

  it(`the node holding the jobs stream killed and restarted: ${AFTER_RETURN} revisions written after its return are applied within ${CATCH_UP_MS / 1000} s and a takeover succeeds`, async () => {
    for (let i = 0; i < 20; i++) await submit();
    const p = await liveProjection('projection-node-loss');
    const holder = cluster.node((await cluster.streamLeader(STREAMS.jobs))!);
    const w = keepWriting();
    await waitFor(() => p.projection.lastApplied >= 40, { what: 'the projection to follow live writes' });
    await holder.server.kill();
    // Writes fail while the node is away (each a publish timeout): the node stays down for three of them, seconds in
    // which the projection's pulls and heartbeats go unanswered.
    const failed = w.failed();
    await waitFor(() => w.failed() > failed, { what: 'a write to fail while the node is away', timeoutMs: 60_000 });
    const acked = w.acked();
    await waitFor(() => w.failed() >= failed + 3, { what: 'writes to fail while the node is away', timeoutMs: 60_000 });
    expect(w.acked()).toBe(acked); // nothing is written while the stream's only node is away
    await holder.server.restart();
    const returnedAt = Date.now();
    await assertRecovers(p, w, 'the jobs stream node kill -9', returnedAt);
  }, 400_000);

  it(`the whole cluster killed and restarted at once: the projection catches up and a takeover succeeds`, async () => {
    const p = await liveProjection('projection-cluster-restart');
    const w = keepWriting();
    const from = p.projection.lastApplied;
    await waitFor(() => p.projection.lastApplied >= from + 20, { what: 'the projection to follow live writes' });
    await cluster.restartAll();
    const returnedAt = Date.now();
    await assertRecovers(p, w, 'a whole-cluster kill -9 and restart', returnedAt);
  }, 400_000);
});
