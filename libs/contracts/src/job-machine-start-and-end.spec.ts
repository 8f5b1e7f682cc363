import fc from 'fast-check';
import { check } from './guards';
import { expandEvent, normalizeRecord, webhookId, type GpuRequest, type JobRecord } from './job';
import {
  TransitionRefused,
  cancelAttempt,
  completeAttempt,
  failAttempt,
  handBack,
  jobError,
  newJob,
  reportProgress,
  requestCancel,
  reprioritize,
  startAndEnd,
  startAttempt,
  toEvent,
  type AttemptOwner,
  type Transition,
} from './job-machine';
import { jobEvent } from './payload-guards';

const t0 = new Date('2026-01-01T00:00:00.000Z');
const at = (ms: number) => new Date(t0.getTime() + ms);
const placement = { gpus: ['GPU-a'], gpuIndices: [0] };
const owner = (attempt = 1, workerId = 'w1', generation = 1): AttemptOwner => ({ workerId, attempt, generation });

function queued(over: { gpu?: GpuRequest; maxAttempts?: number } = {}): JobRecord {
  const t = newJob(
    {
      id: 'job1',
      tenant: 'default',
      type: 'noop',
      input: { x: 1 },
      priority: 'normal',
      pool: 'default',
      timeoutSeconds: 60,
      maxAttempts: over.maxAttempts ?? 3,
      retryDelaysMs: [1_000],
      metadata: {},
      ...(over.gpu ? { gpu: over.gpu } : {}),
    },
    t0,
  );
  return normalizeRecord(t.record, 10);
}

const refusal = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    if (err instanceof TransitionRefused) return err.reason;
    throw err;
  }
  return 'accepted';
};

/** The outcomes a worker records, as functions of the running record (the same ones the two-step path applies). */
type End = (running: JobRecord, now: Date) => Transition;
const ends: Record<string, End> = {
  complete: (r, now) => completeAttempt(r, owner(r.attempts), { result: { ok: 1 } }, now),
  completeWithOutputs: (r, now) =>
    completeAttempt(r, owner(r.attempts), { outputs: [{ name: 'o', url: 's3://b/k', sizeBytes: 3 }] }, now),
  failRetryable: (r, now) => failAttempt(r, owner(r.attempts), jobError('EXIT_CODE', 'boom', true, 'tail'), now),
  failFinal: (r, now) => failAttempt(r, owner(r.attempts), jobError('INVALID_INPUT', 'bad', false), now),
  timeout: (r, now) => failAttempt(r, owner(r.attempts), jobError('TIMEOUT', 'slow', true), now),
  gpuOom: (r, now) => failAttempt(r, owner(r.attempts), jobError('GPU_OOM', 'CUDA out of memory', true), now, 30_000),
  cancel: (r, now) => cancelAttempt(r, owner(r.attempts), now),
};

describe('startAndEnd: an attempt recorded in one revision, from queued straight to its outcome', () => {
  it('stores the outcome the two-step path would, two sequences on, and derives the started event it skipped', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...Object.keys(ends)),
        fc.option(fc.record({ count: fc.integer({ min: 0, max: 4 }), memoryMb: fc.integer({ min: 0, max: 20_000 }) }), {
          nil: undefined,
        }),
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 0, max: 5_000 }),
        fc.integer({ min: 0, max: 5_000 }),
        (endName, gpu, attempt, startMs, runMs) => {
          const end = ends[endName]!;
          // A queued record whose earlier attempts were retried (attempts = attempt - 1).
          const cur = { ...queued(gpu ? { gpu } : {}), attempts: attempt - 1, sequence: 3 + attempt };
          const startedAt = at(startMs);
          const endedAt = at(startMs + runMs);
          const twoStep = startAttempt(cur, owner(attempt), placement, startedAt);
          const outcome = end(twoStep.record, endedAt);
          const one = startAndEnd(cur, owner(attempt), placement, startedAt, (r) => end(r, endedAt));

          // The stored record is exactly the outcome of start-then-end; only the event carries more.
          expect(one.type).toBe(outcome.type);
          expect(one.record).toEqual(outcome.record);
          expect(one.record.sequence).toBe(cur.sequence + 2);
          expect(one.started).toMatchObject({ sequence: cur.sequence + 1, timestamp: startedAt.toISOString() });

          // Through the wire (JSON and the channel's guard) and back out as events: the started event is the one the
          // start revision would have been, then the outcome's own.
          const wire = check(jobEvent, JSON.parse(JSON.stringify(toEvent(one, endedAt))));
          const [started, own, ...rest] = expandEvent(wire);
          expect(rest).toEqual([]);
          expect(started).toEqual(JSON.parse(JSON.stringify(toEvent(twoStep, startedAt))));
          expect(own).toEqual(JSON.parse(JSON.stringify(toEvent(outcome, endedAt))));
          // Distinct, deterministic webhook ids, in order.
          expect(webhookId('job1', started!.generation, started!.sequence)).not.toBe(
            webhookId('job1', own!.generation, own!.sequence),
          );
          expect(started!.sequence).toBeLessThan(own!.sequence);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('is refused exactly when the start would be: a stale dispatch never records an outcome', () => {
    const cur = queued();
    const end = (r: JobRecord) => completeAttempt(r, owner(1), {}, at(5));
    // Cancelled while the attempt ran unrecorded: the outcome is discarded.
    const cancelled = requestCancel(cur, at(2)).record;
    expect(refusal(() => startAndEnd(cancelled, owner(1), placement, at(1), end))).toBe('CONFLICT');
    // Another worker's attempt was recorded meanwhile (the dispatch was given to another worker).
    const other = startAttempt(cur, owner(1, 'w2'), placement, at(2)).record;
    expect(refusal(() => startAndEnd(other, owner(1), placement, at(1), end))).toBe('CONFLICT');
    const otherDone = completeAttempt(other, owner(1, 'w2'), {}, at(3)).record;
    expect(refusal(() => startAndEnd(otherDone, owner(1), placement, at(1), end))).toBe('CONFLICT');
    // A later attempt, or another generation.
    expect(refusal(() => startAndEnd(cur, owner(2), placement, at(1), end))).toBe('CONFLICT');
    expect(refusal(() => startAndEnd(cur, owner(1, 'w1', 2), placement, at(1), end))).toBe('CONFLICT');
    // A priority change while dispatched does not stand in the way (the record is still queued for this attempt).
    const moved = reprioritize(cur, 'high', at(2)).record;
    const t = startAndEnd(moved, owner(1), placement, at(1), (r) => completeAttempt(r, owner(1), {}, at(5)));
    expect(t.record).toMatchObject({ status: 'completed', priority: 'high', sequence: moved.sequence + 2 });
  });

  it('ends nothing but an outcome of the attempt it started', () => {
    const cur = queued();
    // A hand-back is not an outcome (the worker writes nothing for an unrecorded attempt it gives back).
    expect(() => startAndEnd(cur, owner(1), placement, at(1), (r) => handBack(r, owner(1), at(2)))).toThrow(
      /not an outcome/,
    );
    expect(() =>
      startAndEnd(cur, owner(1), placement, at(1), (r) => reportProgress(r, owner(1), { percent: 5 }, at(2))),
    ).toThrow(/not an outcome/);
    // The end is applied as the owner of the attempt it started: another owner is refused.
    expect(
      refusal(() => startAndEnd(cur, owner(1), placement, at(1), (r) => completeAttempt(r, owner(1, 'w2'), {}, at(2)))),
    ).toBe('NOT_OWNER');
  });

  it('a GPU_OOM outcome keeps the start as it was: the derived event shows the request the attempt ran with', () => {
    for (const gpu of [undefined, { count: 1, memoryMb: 1_000 }]) {
      const cur = queued(gpu ? { gpu } : {});
      const t2 = startAndEnd(cur, owner(1), placement, at(1), (r) => ends['gpuOom']!(r, at(2)));
      expect(t2.record.gpu?.memoryMb).toBe(30_000);
      expect(t2.started?.gpu).toEqual(gpu ?? null);
      const [started] = expandEvent(toEvent(t2, at(2)));
      expect(started!.job.gpu).toEqual(gpu);
    }
  });
});

describe('the next revision is the spread of the record and the patch, without undefined fields, in the same order', () => {
  /** The definition the one-copy `next` replaced: the JSON (key order included) must be the same. */
  const reference = (cur: JobRecord, now: Date, patch: Partial<JobRecord>): string =>
    JSON.stringify(
      Object.fromEntries(
        Object.entries({ ...cur, ...patch, sequence: cur.sequence + 1, updatedAt: now.toISOString() }).filter(
          ([, v]) => v !== undefined,
        ),
      ),
    );

  it('for a start, a completion, then a retryable failure (fields set, replaced and removed), on records with and without optional fields', () => {
    fc.assert(
      fc.property(
        fc.record(
          {
            callbackUrl: fc.constant('https://example.test/hook'),
            gpu: fc.record({ count: fc.integer({ min: 0, max: 4 }), memoryMb: fc.integer({ min: 0, max: 20_000 }) }),
            progress: fc.record({ percent: fc.integer({ min: 0, max: 100 }) }),
            error: fc.constant(jobError('EXIT_CODE', 'earlier', true)),
            retryAt: fc.constant(at(5).toISOString()),
          },
          { requiredKeys: [] },
        ),
        fc.integer({ min: 0, max: 10_000 }),
        (extra, ms) => {
          const cur = { ...queued(), ...extra } as JobRecord;
          const now = at(ms);
          const started = startAttempt(cur, owner(1), placement, now).record;
          expect(JSON.stringify(started)).toBe(
            reference(cur, now, {
              status: 'running',
              attempts: 1,
              workerId: 'w1',
              gpus: placement.gpus,
              gpuIndices: placement.gpuIndices,
              startedAt: now.toISOString(),
              finishedAt: undefined,
              retryAt: undefined,
              progress: undefined,
              error: undefined,
              result: undefined,
              outputs: undefined,
            }),
          );
          const done = completeAttempt(started, owner(1), { result: { n: ms } }, at(ms + 500)).record;
          expect(JSON.stringify(done)).toBe(
            reference(started, at(ms + 500), {
              status: 'completed',
              finishedAt: at(ms + 500).toISOString(),
              progress: { percent: 100, stage: 'done' },
              result: { n: ms },
              outputs: undefined,
              error: undefined,
            }),
          );
          // No field is kept as undefined, whichever way the copy was made.
          for (const r of [started, done]) expect(Object.values(r).filter((v) => v === undefined)).toEqual([]);
          const error = jobError('EXIT_CODE', 'boom', true);
          const later = at(ms + 1_000);
          const retrying = failAttempt(started, owner(1), error, later).record;
          expect(Object.values(retrying).filter((v) => v === undefined)).toEqual([]);
          expect(JSON.stringify(retrying)).toBe(
            reference(started, later, {
              status: 'retrying',
              error,
              retryAt: at(ms + 2_000).toISOString(),
              workerId: undefined,
              gpus: undefined,
              gpuIndices: undefined,
            }),
          );
        },
      ),
    );
  });
});
