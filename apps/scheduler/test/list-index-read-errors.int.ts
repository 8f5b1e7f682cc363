/**
 * The listing writer when a page read fails (real nats-server; the read error injected through the NatsHandle, a port
 * we own): a failed read is not "no page". Before v1.1 the writer started an empty page and its flush overwrote the
 * real one, dropping the entries already listed.
 */
import {
  STREAMS,
  SUBJECTS,
  bucketDeclarations,
  newJob,
  streamDeclarations,
  systemClock,
  type ListPage,
  type StoredJob,
} from '@gantry/contracts';
import { decodeJson, type NatsHandle } from '@gantry/jetstream';
import { JobStore } from '@gantry/job-store';
import { Deferred, waitFor, noopSpec } from '@gantry/testing';
import { createLogger } from '@gantry/telemetry';
import { listBucket, ListIndexWriter } from '../src/listing/list-index-writer';
import { realNats } from './real-nats';

const logger = createLogger('list-index-read-errors-test', 'silent');

describe('listing writer with failing reads (real nats-server)', () => {
  const real = realNats('list-read-errors', logger, {
    streams: [streamDeclarations().jobs, streamDeclarations().list],
    buckets: [bucketDeclarations().config],
  });

  /** A handle whose next `failures` listing reads fail like a timeout. */
  function flaky(failures: { left: number }): NatsHandle {
    const { nats } = real;
    const direct = new Proxy(nats.jsm.direct, {
      get(target, prop, receiver) {
        if (prop !== 'getMessage') return Reflect.get(target, prop, receiver) as unknown;
        const real = target.getMessage.bind(target);
        return (stream: string, q: Parameters<typeof real>[1]) => {
          if (stream === STREAMS.list && failures.left > 0) {
            failures.left--;
            return Promise.reject(new Error('TIMEOUT'));
          }
          return real(stream, q);
        };
      },
    });
    const jsm = new Proxy(nats.jsm, {
      get: (target, prop, receiver) => (prop === 'direct' ? direct : (Reflect.get(target, prop, receiver) as unknown)),
    });
    return Object.assign(Object.create(nats) as NatsHandle, { jsm });
  }

  function feed() {
    let fn: ((s: StoredJob) => void) | undefined;
    return {
      lastApplied: 0,
      subscribe(f: (s: StoredJob) => void) {
        fn = f;
        return () => (fn = undefined);
      },
      push(s: StoredJob) {
        fn?.(s);
      },
    };
  }

  const submit = (jobs: JobStore, id: string, tenant = 'acme') =>
    jobs.create(newJob(noopSpec(id, { tenant }), new Date()));

  it('retries a failed page read instead of overwriting the page: no listed job is lost', async () => {
    const { nats } = real;
    const jobs = new JobStore(nats, systemClock);
    const first = await submit(jobs, 'first');

    // One leader lists the first job and flushes.
    const f1 = feed();
    const w1 = new ListIndexWriter(nats, logger, f1);
    await w1.start();
    f1.push(first);
    await w1.flush();
    await w1.stop();

    // The next leader (cold caches) lists the second job while its first reads of the page fail.
    const second = await submit(jobs, 'second');
    const failures = { left: 3 };
    const f2 = feed();
    f2.lastApplied = first.revision;
    const w2 = new ListIndexWriter(flaky(failures), logger, f2);
    await w2.start();
    f2.push(second);
    await waitFor(() => failures.left === 0, { what: 'the injected read failures' });
    const page = await waitFor(
      async () => {
        await w2.flush();
        const msg = await nats.jsm.direct.getMessage(STREAMS.list, {
          last_by_subj: SUBJECTS.listPage('acme', listBucket(second.record.createSeq!)),
        });
        const p = msg ? decodeJson<ListPage>(msg.data) : undefined;
        return p && p.entries.some((e) => e[1] === 'second') ? p : undefined;
      },
      { what: 'the second job listed', timeoutMs: 20_000, intervalMs: 100 },
    );
    expect(page.entries.map((e) => e[1]).sort()).toEqual(['first', 'second']);
    await w2.stop();
  });

  /** A handle whose next listing write fails once `failing.release` resolves (like a timeout). */
  function failingWrites(failing: { on: boolean; failed: number; release: Promise<void> }): NatsHandle {
    const { nats } = real;
    const js = new Proxy(nats.js, {
      get(target, prop, receiver) {
        if (prop !== 'publish') return Reflect.get(target, prop, receiver) as unknown;
        const real = target.publish.bind(target);
        return async (subject: string, ...rest: unknown[]) => {
          if (failing.on && subject.startsWith('gantry.v1.list.')) {
            // One write of the flush fails: the whole flush is retried.
            failing.on = false;
            await failing.release;
            failing.failed++;
            throw new Error('TIMEOUT');
          }
          return real(subject, ...(rest as [Parameters<typeof real>[1]]));
        };
      },
    });
    return Object.assign(Object.create(nats) as NatsHandle, { js });
  }

  it('keeps the pages of a failed flush for the next one, however many tenants pass meanwhile (no page lost)', async () => {
    const { nats } = real;
    // Before issue 15's fix: a page being written was no longer dirty, so the page cache (64 pages) could evict it
    // while its write was in flight; when the write failed the page was marked dirty again without being held, and
    // every later flush threw on it — the listing stopped for good (checkpoint frozen, GET /v1/jobs read-your-writes
    // timing out). Seen with 1,000 tenants under load.
    const jobs = new JobStore(nats, systemClock);
    const release = new Deferred();
    const failing = { on: true, failed: 0, release: release.promise };
    const f = feed();
    f.lastApplied = (await nats.jsm.streams.info(STREAMS.jobs)).state.last_seq;
    const w = new ListIndexWriter(failingWrites(failing), logger, f);
    await w.start();
    const early = await Promise.all(Array.from({ length: 10 }, (_, i) => submit(jobs, `early-${i}`, `early${i}`)));
    for (const s of early) f.push(s);
    await waitFor(() => w.appliedSeq >= early.at(-1)!.revision, { what: 'the early jobs applied' });
    // A flush of the 10 early pages starts, and fails only after 100 more tenants' pages passed through the cache
    // (more than it holds).
    const failed = w.flush();
    const late: StoredJob[] = [];
    for (let i = 0; i < 100; i++) late.push(await submit(jobs, `late-${i}`, `late${i}`));
    for (const s of late) f.push(s);
    await waitFor(() => w.appliedSeq >= late.at(-1)!.revision, { what: 'the late jobs applied', timeoutMs: 30_000 });
    release.resolve();
    await failed;
    expect(failing.failed).toBe(1);
    await waitFor(
      async () => {
        await w.flush();
        for (const s of [...early, ...late]) {
          const msg = await nats.jsm.direct.getMessage(STREAMS.list, {
            last_by_subj: SUBJECTS.listPage(s.record.tenant, listBucket(s.record.createSeq!)),
          });
          const p = msg ? decodeJson<ListPage>(msg.data) : undefined;
          if (!p?.entries.some((e) => e[1] === s.record.id)) return `${s.record.id} not listed`;
        }
        return true;
      },
      { what: 'every job listed after the failed flush', timeoutMs: 30_000, intervalMs: 200 },
    );
    // And the writer still works: a flush succeeds and checkpoints everything. Until issue 16, with more pages dirty or
    // being written than the cache holds, a page taken in was evicted at once while its key was marked dirty; every
    // flush after that failed on it (the pages above were written only piecemeal, before the failing one).
    const last = late.at(-1)!.revision;
    expect(await w.syncTo(last, 10_000)).toBeGreaterThanOrEqual(last);
    await w.stop();
  });
});
