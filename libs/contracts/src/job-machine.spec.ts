import {
  TransitionRefused,
  adminRetry,
  cancelAttempt,
  completeAttempt,
  dependencyFailed,
  enqueueDue,
  failAttempt,
  handBack,
  jobError,
  releaseWaiting,
  newJob,
  reportProgress,
  reprioritize,
  requestCancel,
  requeueAfterDelay,
  startAttempt,
  stripUndefined,
  toEvent,
  workerLost,
  type AttemptOwner,
  type NewJobSpec,
} from './job-machine';
import { setFlagsFromString } from 'node:v8';
import { normalizeRecord, type JobRecord } from './job';
import { toJobView } from './job-view';

const t0 = new Date('2026-01-01T00:00:00.000Z');
const at = (ms: number) => new Date(t0.getTime() + ms);

function spec(over: Partial<NewJobSpec> = {}): NewJobSpec {
  return {
    id: 'job1',
    tenant: 'default',
    type: 'noop',
    input: {},
    priority: 'normal',
    pool: 'default',
    timeoutSeconds: 60,
    maxAttempts: 3,
    retryDelaysMs: [1_000, 5_000],
    metadata: {},
    ...over,
  };
}

function queued(over: Partial<NewJobSpec> = {}): JobRecord {
  return normalizeRecord(newJob(spec(over), t0).record, 10);
}

const owner = (attempt = 1, workerId = 'w1', generation = 1): AttemptOwner => ({ workerId, attempt, generation });
const refusal = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    if (err instanceof TransitionRefused) return err.reason;
    throw err;
  }
  return 'accepted';
};

describe('job state machine', () => {
  it('creates queued, generation 1, sequence 1, with the aging clock at acceptance', () => {
    const t = newJob(spec(), t0);
    expect(t.type).toBe('job.queued');
    expect(t.record).toMatchObject({
      status: 'queued',
      generation: 1,
      attempts: 0,
      sequence: 1,
      enqueuedAt: t0.toISOString(),
    });
    expect(t.record.createSeq).toBeUndefined();
  });

  it('creates a record with fast properties, dependsOn only when waiting, the JSON as before', () => {
    // V8's own check: a record that had a property deleted is a dictionary-mode object, slow to read and to encode
    // for every later use (the gateway encodes each new record at least twice).
    setFlagsFromString('--allow-natives-syntax');
    const hasFastProperties = new Function('o', 'return %HasFastProperties(o)') as (o: object) => boolean;
    const plain = newJob(spec(), t0).record;
    expect(hasFastProperties(plain)).toBe(true);
    expect('dependsOn' in plain).toBe(false);
    expect(Object.values(plain)).not.toContain(undefined);
    const empty = newJob(spec({ dependsOn: [] }), t0).record;
    expect('dependsOn' in empty).toBe(false);
    const parents = ['p1', 'p2'];
    const waiting = newJob(spec({ dependsOn: parents, runAt: undefined }), t0);
    expect(waiting.type).toBe('job.waiting');
    expect(waiting.record.dependsOn).toEqual(parents);
    expect(waiting.record.dependsOn).not.toBe(parents);
    expect('runAt' in waiting.record).toBe(false);
    // Field order as before: the spec's fields (dependsOn in its place), then the state.
    expect(Object.keys(waiting.record)).toEqual([
      ...Object.keys(spec({ dependsOn: parents })),
      'status',
      'generation',
      'attempts',
      'sequence',
      'enqueuedAt',
      'createdAt',
      'updatedAt',
    ]);
  });

  it('normalizes createSeq and queueSeq from the first revision and keeps them afterwards', () => {
    const r = queued();
    expect(r.createSeq).toBe(10);
    expect(r.queueSeq).toBe(10);
    const started = startAttempt(r, owner(), { gpus: [], gpuIndices: [] }, at(1)).record;
    expect(normalizeRecord(started, 99).queueSeq).toBe(10);
  });

  it('starts only the attempt that was dispatched', () => {
    const r = queued();
    expect(refusal(() => startAttempt(r, owner(2), { gpus: [], gpuIndices: [] }, at(1)))).toBe('CONFLICT');
    expect(refusal(() => startAttempt(r, owner(1, 'w1', 2), { gpus: [], gpuIndices: [] }, at(1)))).toBe('CONFLICT');
    const s = startAttempt(r, owner(1), { gpus: ['GPU-a'], gpuIndices: [0] }, at(1));
    expect(s.type).toBe('job.started');
    expect(s.record).toMatchObject({ status: 'running', attempts: 1, workerId: 'w1', gpus: ['GPU-a'], sequence: 2 });
    // A second start of the same attempt (a duplicate dispatch) is refused.
    expect(refusal(() => startAttempt(s.record, owner(1, 'w2'), { gpus: [], gpuIndices: [] }, at(2)))).toBe('CONFLICT');
  });

  it('lets only the owner of the running attempt move it', () => {
    const running = startAttempt(queued(), owner(1), { gpus: [], gpuIndices: [] }, at(1)).record;
    expect(refusal(() => completeAttempt(running, owner(1, 'w2'), {}, at(2)))).toBe('NOT_OWNER');
    expect(refusal(() => failAttempt(running, owner(2), jobError('EXIT_CODE', 'x', true), at(2)))).toBe('NOT_OWNER');
    expect(refusal(() => reportProgress(running, owner(1, 'zombie'), { percent: 10 }, at(2)))).toBe('NOT_OWNER');
    const done = completeAttempt(running, owner(1), { result: { ok: true } }, at(5));
    expect(done.record).toMatchObject({ status: 'completed', result: { ok: true }, finishedAt: at(5).toISOString() });
    expect(done.record.progress).toEqual({ percent: 100, stage: 'done' });
    expect(refusal(() => completeAttempt(done.record, owner(1), {}, at(6)))).toBe('NOT_OWNER');
  });

  it('retries retryable failures with the policy delay until attempts run out, then fails', () => {
    let r = queued();
    r = startAttempt(r, owner(1), { gpus: [], gpuIndices: [] }, at(0)).record;
    const f1 = failAttempt(r, owner(1), jobError('EXIT_CODE', 'boom', true), at(100));
    expect(f1.type).toBe('job.retrying');
    expect(f1.record.retryAt).toBe(at(1_100).toISOString());
    expect(f1.record.workerId).toBeUndefined();
    expect(refusal(() => requeueAfterDelay(f1.record, at(1_000)))).toBe('NOT_DUE');
    r = requeueAfterDelay(f1.record, at(1_100)).record;
    expect(r.status).toBe('queued');
    expect(r.queueSeq).toBe(10); // keeps its place
    r = startAttempt(r, owner(2), { gpus: [], gpuIndices: [] }, at(1_200)).record;
    const f2 = failAttempt(r, owner(2), jobError('TIMEOUT', 'slow', true), at(1_300));
    expect(f2.record.retryAt).toBe(at(6_300).toISOString()); // second delay
    r = startAttempt(
      requeueAfterDelay(f2.record, at(7_000)).record,
      owner(3),
      { gpus: [], gpuIndices: [] },
      at(7_000),
    ).record;
    const f3 = failAttempt(r, owner(3), jobError('EXIT_CODE', 'again', true), at(8_000));
    expect(f3.type).toBe('job.failed');
    expect(f3.record).toMatchObject({ status: 'failed', attempts: 3, error: { code: 'EXIT_CODE' } });
  });

  it('raises the GPU memory request of a job whose attempt died of GPU_OOM, keeping the declared one', () => {
    const oom = jobError('GPU_OOM', 'CUDA out of memory', true);
    const running = startAttempt(
      queued({ gpu: { count: 1, memoryMb: 20_000 } }),
      owner(1),
      { gpus: ['GPU-a'], gpuIndices: [0] },
      at(0),
    ).record;
    const f1 = failAttempt(running, owner(1), oom, at(1), 30_000);
    expect(f1.type).toBe('job.retrying');
    expect(f1.record.gpu).toEqual({ count: 1, memoryMb: 30_000, declaredMemoryMb: 20_000 });
    // A second raise keeps what was declared at submit.
    const again = startAttempt(
      requeueAfterDelay(f1.record, at(5_000)).record,
      owner(2),
      { gpus: [], gpuIndices: [] },
      at(5_000),
    );
    const f2 = failAttempt(again.record, owner(2), oom, at(5_001), 45_000);
    expect(f2.record.gpu).toEqual({ count: 1, memoryMb: 45_000, declaredMemoryMb: 20_000 });
    // Never lowered; a job that declared no gpu gets one GPU with the raised memory (0 declared).
    expect(failAttempt(running, owner(1), oom, at(1), 10_000).record.gpu).toEqual({ count: 1, memoryMb: 20_000 });
    const bare = startAttempt(queued(), owner(1), { gpus: ['GPU-a'], gpuIndices: [0] }, at(0)).record;
    expect(failAttempt(bare, owner(1), oom, at(1), 81_559).record.gpu).toEqual({
      count: 1,
      memoryMb: 81_559,
      declaredMemoryMb: 0,
    });
    // A cancel requested meanwhile wins, and changes no request.
    const cancelling = requestCancel(running, at(1)).record;
    const c = failAttempt(cancelling, owner(1), oom, at(2), 30_000);
    expect(c.type).toBe('job.cancelled');
    expect(c.record.gpu).toEqual({ count: 1, memoryMb: 20_000 });
  });

  it('fails at once on a non-retryable error', () => {
    const running = startAttempt(queued(), owner(1), { gpus: [], gpuIndices: [] }, at(0)).record;
    const f = failAttempt(running, owner(1), jobError('INVALID_INPUT', 'bad', false), at(1));
    expect(f.type).toBe('job.failed');
    expect(f.record.attempts).toBe(1);
  });

  it('counts a lost worker as an attempt (retryable) and refuses other workers', () => {
    const running = startAttempt(queued({ maxAttempts: 1 }), owner(1), { gpus: [], gpuIndices: [] }, at(0)).record;
    expect(refusal(() => workerLost(running, 'w2', at(1)))).toBe('CONFLICT');
    const lost = workerLost(running, 'w1', at(1));
    expect(lost.type).toBe('job.failed'); // maxAttempts 1: the lost attempt was the last
    expect(lost.record.error?.code).toBe('WORKER_LOST');
    const running2 = startAttempt(queued(), owner(1), { gpus: [], gpuIndices: [] }, at(0)).record;
    expect(workerLost(running2, 'w1', at(1)).type).toBe('job.retrying');
  });

  it('cancels queued and retrying jobs at once, marks running ones, refuses terminal ones', () => {
    expect(requestCancel(queued(), at(1)).record.status).toBe('cancelled');
    const running = startAttempt(queued(), owner(1), { gpus: [], gpuIndices: [] }, at(0)).record;
    const marked = requestCancel(running, at(1));
    expect(marked.type).toBe('job.cancel_requested');
    expect(marked.record.status).toBe('running');
    expect(refusal(() => requestCancel(marked.record, at(2)))).toBe('UNCHANGED');
    const killed = cancelAttempt(marked.record, owner(1), at(3));
    expect(killed.record).toMatchObject({ status: 'cancelled', error: { code: 'CANCELLED' } });
    expect(refusal(() => requestCancel(killed.record, at(4)))).toBe('CONFLICT');
    // A failure reported after a cancel was requested ends the job cancelled, not retrying.
    expect(failAttempt(marked.record, owner(1), jobError('SIGNAL', 'killed', true), at(3)).record.status).toBe(
      'cancelled',
    );
  });

  it('hands a running attempt back without counting it', () => {
    const running = startAttempt(queued(), owner(1), { gpus: [], gpuIndices: [] }, at(0)).record;
    const back = handBack(running, owner(1), at(1));
    expect(back.type).toBe('job.queued');
    expect(back.record).toMatchObject({ status: 'queued', attempts: 0, queueSeq: 10 });
    expect(back.record.workerId).toBeUndefined();
  });

  it('retries a failed job as a new generation at the tail of the queue', () => {
    const running = startAttempt(queued(), owner(1), { gpus: [], gpuIndices: [] }, at(0)).record;
    const failed = failAttempt(running, owner(1), jobError('INVALID_INPUT', 'x', false), at(1)).record;
    const again = adminRetry(failed, at(2));
    expect(again.record).toMatchObject({ status: 'queued', generation: 2, attempts: 0 });
    expect(again.record.queueSeq).toBeUndefined(); // the revision's own sequence becomes its place
    expect(again.record.error).toBeUndefined();
    expect(refusal(() => adminRetry(queued(), at(3)))).toBe('CONFLICT');
    const completed = completeAttempt(
      startAttempt(queued(), owner(1), { gpus: [], gpuIndices: [] }, at(0)).record,
      owner(1),
      {},
      at(1),
    ).record;
    expect(refusal(() => adminRetry(completed, at(2)))).toBe('CONFLICT');
  });

  it('reprioritizes waiting jobs only, remembering the old level', () => {
    const r = reprioritize(queued(), 'urgent', at(1));
    expect(r.type).toBe('job.priority_changed');
    expect(r.change).toEqual({ fromPriority: 'normal' });
    expect(r.record.queueSeq).toBe(10);
    expect(refusal(() => reprioritize(r.record, 'urgent', at(2)))).toBe('UNCHANGED');
    const running = startAttempt(queued(), owner(1), { gpus: [], gpuIndices: [] }, at(0)).record;
    expect(refusal(() => reprioritize(running, 'low', at(1)))).toBe('CONFLICT');
  });

  it('numbers every revision and wraps it into an event', () => {
    const running = startAttempt(queued(), owner(1), { gpus: [], gpuIndices: [] }, at(0));
    const p1 = reportProgress(running.record, owner(1), { percent: 50, stage: 'x' }, at(1));
    expect(p1.record.sequence).toBe(3);
    expect(refusal(() => reportProgress(p1.record, owner(1), { percent: 50, stage: 'x' }, at(2)))).toBe('UNCHANGED');
    const e = toEvent(p1, at(1));
    expect(e).toMatchObject({ type: 'job.progress', sequence: 3, generation: 1, timestamp: at(1).toISOString() });
  });

  describe('delayed jobs (runAt)', () => {
    const runAt = at(60_000).toISOString();
    const scheduled = () => normalizeRecord(newJob(spec({ runAt }), t0).record, 10);

    it('creates scheduled when runAt is to come, queued (runAt kept) when it has passed or is now', () => {
      const t = newJob(spec({ runAt }), t0);
      expect(t.type).toBe('job.scheduled');
      expect(t.record).toMatchObject({ status: 'scheduled', runAt, generation: 1, sequence: 1 });
      for (const past of [t0.toISOString(), at(-1).toISOString(), at(-86_400_000).toISOString()]) {
        const q = newJob(spec({ runAt: past }), t0);
        expect(q.type).toBe('job.queued');
        expect(q.record).toMatchObject({ status: 'queued', runAt: past });
      }
      // One millisecond ahead is still ahead.
      expect(newJob(spec({ runAt: at(1).toISOString() }), t0).record.status).toBe('scheduled');
    });

    it('enters the queue only once due, taking its FIFO place then and the aging clock from runAt', () => {
      const r = scheduled();
      expect(refusal(() => enqueueDue(r, at(59_999)))).toBe('NOT_DUE');
      const q = enqueueDue(r, at(60_005));
      expect(q.type).toBe('job.queued');
      expect(q.record).toMatchObject({ status: 'queued', sequence: 2, enqueuedAt: runAt, runAt, createSeq: 10 });
      // The FIFO key is the stream sequence of this revision, not of the acceptance.
      expect(q.record.queueSeq).toBeUndefined();
      expect(normalizeRecord(q.record, 42)).toMatchObject({ createSeq: 10, queueSeq: 42 });
      expect(refusal(() => enqueueDue(normalizeRecord(q.record, 42), at(60_010)))).toBe('CONFLICT');
    });

    it('cancels a scheduled job at once; it can never be released afterwards', () => {
      const c = requestCancel(scheduled(), at(1));
      expect(c.type).toBe('job.cancelled');
      expect(c.record).toMatchObject({ status: 'cancelled', error: { code: 'CANCELLED' } });
      expect(refusal(() => enqueueDue(c.record, at(120_000)))).toBe('CONFLICT');
      expect(refusal(() => requestCancel(c.record, at(2)))).toBe('CONFLICT');
    });

    it('reprioritizes a scheduled job, which stays scheduled', () => {
      const p = reprioritize(scheduled(), 'urgent', at(1));
      expect(p.record).toMatchObject({ status: 'scheduled', priority: 'urgent', runAt });
      expect(enqueueDue(p.record, at(60_000)).record.priority).toBe('urgent');
    });

    it('is never started, completed or failed while scheduled', () => {
      const r = scheduled();
      expect(refusal(() => startAttempt(r, owner(1), { gpus: [], gpuIndices: [] }, at(70_000)))).toBe('CONFLICT');
      expect(refusal(() => completeAttempt(r, owner(1), {}, at(70_000)))).toBe('NOT_OWNER');
      expect(refusal(() => requeueAfterDelay(r, at(70_000)))).toBe('CONFLICT');
      expect(refusal(() => adminRetry(r, at(70_000)))).toBe('CONFLICT');
    });

    it('an admin retry of a cancelled delayed job queues it at once (a new generation)', () => {
      const c = requestCancel(scheduled(), at(1)).record;
      const again = adminRetry(c, at(2));
      expect(again.record).toMatchObject({ status: 'queued', generation: 2, runAt });
    });
  });

  describe('dependencies (dependsOn)', () => {
    const waiting = (over: Partial<NewJobSpec> = {}) =>
      normalizeRecord(newJob(spec({ dependsOn: ['p1', 'p2'], ...over }), t0).record, 10);

    it('creates waiting (job.waiting) whenever dependsOn names parents, even with a runAt; an empty list is dropped', () => {
      const t = newJob(spec({ dependsOn: ['p1'], runAt: at(60_000).toISOString() }), t0);
      expect(t.type).toBe('job.waiting');
      expect(t.record).toMatchObject({ status: 'waiting', dependsOn: ['p1'], generation: 1, sequence: 1 });
      const plain = newJob(spec({ dependsOn: [] }), t0);
      expect(plain.type).toBe('job.queued');
      expect('dependsOn' in plain.record).toBe(false);
      expect(toJobView(t.record, t0).dependsOn).toEqual(['p1']);
      expect(toJobView(plain.record, t0).dependsOn).toBeUndefined();
    });

    it('releases into the queue, taking its FIFO place and aging clock at release', () => {
      const q = releaseWaiting(waiting(), at(5_000));
      expect(q.type).toBe('job.queued');
      expect(q.record).toMatchObject({
        status: 'queued',
        sequence: 2,
        enqueuedAt: at(5_000).toISOString(),
        createSeq: 10,
      });
      expect(q.record.queueSeq).toBeUndefined();
      expect(refusal(() => releaseWaiting(normalizeRecord(q.record, 20), at(6_000)))).toBe('CONFLICT');
    });

    it('releases to scheduled while its runAt is to come, then queues when due', () => {
      const runAt = at(60_000).toISOString();
      const s = releaseWaiting(waiting({ runAt }), at(5_000));
      expect(s.type).toBe('job.scheduled');
      expect(s.record).toMatchObject({ status: 'scheduled', runAt });
      expect(enqueueDue(s.record, at(60_000)).record.status).toBe('queued');
      // A runAt that passed while waiting: queued at release.
      expect(releaseWaiting(waiting({ runAt }), at(61_000)).type).toBe('job.queued');
    });

    it('ends cancelled DEPENDENCY_FAILED naming the parent; only from waiting, only for its own parents', () => {
      const c = dependencyFailed(waiting(), at(1), 'p2', 'failed');
      expect(c.type).toBe('job.cancelled');
      expect(c.record).toMatchObject({
        status: 'cancelled',
        finishedAt: at(1).toISOString(),
        error: { code: 'DEPENDENCY_FAILED', retryable: false },
      });
      expect(c.record.error?.message).toContain('p2');
      expect(refusal(() => dependencyFailed(c.record, at(2), 'p1', 'cancelled'))).toBe('CONFLICT');
      expect(refusal(() => dependencyFailed(waiting(), at(2), 'other', 'failed'))).toBe('CONFLICT');
      expect(refusal(() => releaseWaiting(c.record, at(2)))).toBe('CONFLICT');
    });

    it('cancels and reprioritizes a waiting job; it never starts while waiting', () => {
      const c = requestCancel(waiting(), at(1));
      expect(c.record).toMatchObject({ status: 'cancelled', error: { code: 'CANCELLED' } });
      const p = reprioritize(waiting(), 'urgent', at(1));
      expect(p.record).toMatchObject({ status: 'waiting', priority: 'urgent' });
      expect(releaseWaiting(p.record, at(2)).record.priority).toBe('urgent');
      expect(refusal(() => startAttempt(waiting(), owner(1), { gpus: [], gpuIndices: [] }, at(1)))).toBe('CONFLICT');
      expect(refusal(() => enqueueDue(waiting(), at(1)))).toBe('CONFLICT');
      expect(refusal(() => adminRetry(waiting(), at(1)))).toBe('CONFLICT');
    });

    it('an admin retry of a job with dependsOn goes back to waiting (a new generation, re-evaluated)', () => {
      const c = dependencyFailed(waiting(), at(1), 'p1', 'failed').record;
      const again = adminRetry(c, at(2));
      expect(again.type).toBe('job.waiting');
      expect(again.record).toMatchObject({ status: 'waiting', generation: 2, attempts: 0, dependsOn: ['p1', 'p2'] });
      expect(again.record.error).toBeUndefined();
      expect(again.record.finishedAt).toBeUndefined();
    });
  });
});

describe('stripUndefined', () => {
  it('copies the defined fields in order and leaves its argument alone (no delete: no dictionary-mode record)', () => {
    const o: Record<string, unknown> = { a: 1, b: undefined, c: null, d: 'x', e: undefined };
    const r = stripUndefined(o);
    expect(Object.keys(r)).toEqual(['a', 'c', 'd']);
    expect(r).toEqual({ a: 1, c: null, d: 'x' });
    expect(Object.keys(o)).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(r).not.toBe(o);
  });
});
