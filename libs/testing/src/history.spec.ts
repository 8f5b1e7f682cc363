import {
  adminRetry,
  completeAttempt,
  dependencyFailed,
  enqueueDue,
  failAttempt,
  handBack,
  jobError,
  newJob,
  reportProgress,
  requeueAfterDelay,
  requestCancel,
  releaseWaiting,
  startAndEnd,
  startAttempt,
  toEvent,
  workerLost,
  type JobEvent,
  type JobRecord,
  type Transition,
} from '@gantry/contracts';
import { historyViolations, type HistoryEntry } from './history';
import { noopSpec } from './job-specs';

const ID = 'job_history_1';
const t0 = Date.parse('2026-01-01T00:00:00Z');

/** Builds a history by applying real state-machine transitions, one second apart. */
class Recorder {
  entries: HistoryEntry[] = [];
  private tick = 0;
  /** `runAt`: the job is submitted delayed (ms after t0). */
  constructor(runAt?: number, dependsOn?: string[]) {
    this.push(
      newJob(
        noopSpec(ID, {
          maxAttempts: 3,
          retryDelaysMs: [0],
          ...(runAt !== undefined ? { runAt: new Date(t0 + runAt).toISOString() } : {}),
          ...(dependsOn ? { dependsOn } : {}),
        }),
        this.now(),
      ),
    );
  }
  now(): Date {
    return new Date(t0 + 1000 * this.tick++);
  }
  get cur(): JobRecord {
    return this.entries.at(-1)!.event.job;
  }
  push(t: Transition): this {
    this.entries.push({ revision: this.entries.length + 1, event: toEvent(t, this.now()) });
    return this;
  }
  start(workerId: string): this {
    const c = this.cur;
    return this.push(
      startAttempt(
        c,
        { workerId, generation: c.generation, attempt: c.attempts + 1 },
        { gpus: [], gpuIndices: [] },
        this.now(),
      ),
    );
  }
  owner() {
    const c = this.cur;
    return { workerId: c.workerId!, generation: c.generation, attempt: c.attempts };
  }
}

const check = (entries: HistoryEntry[], requireTerminal = true) => historyViolations(ID, entries, { requireTerminal });

/** A deep copy whose event at `i` is replaced by what `f` makes of it. */
function tamper(entries: HistoryEntry[], i: number, f: (e: JobEvent) => JobEvent): HistoryEntry[] {
  const copy = structuredClone(entries);
  copy[i] = { ...copy[i]!, event: f(copy[i]!.event) };
  return copy;
}

describe('whole-history check', () => {
  it('accepts the paths the state machine allows: retries, a lost worker, a hand-back, a cancel and an admin retry', () => {
    const r = new Recorder().start('w1');
    r.push(reportProgress(r.cur, r.owner(), { percent: 10 }, r.now()));
    r.push(failAttempt(r.cur, r.owner(), jobError('EXIT_CODE', 'exit 1', true), r.now()));
    r.push(requeueAfterDelay(r.cur, r.now()));
    r.start('w2');
    r.push(workerLost(r.cur, 'w2', r.now()));
    r.push(requeueAfterDelay(r.cur, r.now()));
    r.start('w3');
    r.push(handBack(r.cur, r.owner(), r.now()));
    r.start('w1');
    r.push(completeAttempt(r.cur, r.owner(), { result: 1 }, r.now()));
    expect(check(r.entries)).toEqual([]);

    const c = new Recorder();
    c.push(requestCancel(c.cur, c.now()));
    c.push(adminRetry(c.cur, c.now()));
    c.start('w1');
    c.push(completeAttempt(c.cur, c.owner(), {}, c.now()));
    expect(check(c.entries)).toEqual([]);
  });

  it('checks an outcome that also records its start as the two events it stands for', () => {
    const r = new Recorder();
    const run = (
      workerId: string,
      end: (running: JobRecord, o: { workerId: string; generation: number; attempt: number }) => Transition,
    ) => {
      const c = r.cur;
      const o = { workerId, generation: c.generation, attempt: c.attempts + 1 };
      const startedAt = r.now();
      return r.push(startAndEnd(c, o, { gpus: [], gpuIndices: [] }, startedAt, (s) => end(s, o)));
    };
    run('w1', (s, o) => failAttempt(s, o, jobError('EXIT_CODE', 'exit 1', true), r.now()));
    r.push(requeueAfterDelay(r.cur, r.now()));
    run('w2', (s, o) => completeAttempt(s, o, {}, r.now()));
    expect(r.entries).toHaveLength(4);
    expect(check(r.entries)).toEqual([]);

    // Derived from a revision that was not queued for that attempt: the derived start is checked like a stored one.
    const fromRetrying = tamper(r.entries, 1, (e) => ({ ...e, started: { ...e.started!, workerId: '' } }));
    expect(check(fromRetrying).join()).toMatch(/started with no worker/);
    const twoStarts = structuredClone(r.entries);
    twoStarts.splice(2, 1); // the requeue gone: attempt 2 starts from retrying
    expect(check(twoStarts).join()).toMatch(/started from retrying, not queued/);
  });

  it('accepts a delayed job queued at its time, and refuses one queued early or scheduled twice', () => {
    const r = new Recorder(1_000);
    expect(r.cur.status).toBe('scheduled');
    r.push(enqueueDue(r.cur, r.now()));
    r.start('w1');
    r.push(completeAttempt(r.cur, r.owner(), {}, r.now()));
    expect(check(r.entries)).toEqual([]);

    const early = tamper(r.entries, 1, (e) => ({ ...e, timestamp: new Date(t0 + 500).toISOString() }));
    expect(check(early).join()).toMatch(/queued 500 ms before its runAt/);
    const twice = tamper(r.entries, 1, (e) => ({
      ...e,
      type: 'job.scheduled',
      job: { ...e.job, status: 'scheduled' },
    }));
    expect(check(twice).join()).toMatch(/job.scheduled after scheduled/);
  });

  it('refuses a second terminal event in one generation', () => {
    const r = new Recorder().start('w1');
    const owner = r.owner();
    const running = r.cur;
    r.push(completeAttempt(running, owner, {}, r.now()));
    // A zombie's write that (wrongly) won: a second outcome of the same attempt.
    const zombie = failAttempt(running, owner, jobError('TIMEOUT', 'late', false), r.now());
    zombie.record.sequence = r.cur.sequence + 1;
    r.push(zombie);
    const v = check(r.entries);
    expect(v.join('\n')).toMatch(/generation 1 ended 2 times/);
    expect(v.join('\n')).toMatch(/goes on after its terminal job\.completed/);
  });

  it('refuses overlapping attempts: a start while another attempt runs, and a stale attempt writing after the next began', () => {
    const r = new Recorder().start('w1');
    const first = r.owner();
    const running = r.cur;
    // A second start from the running record (as if two dispatches both won).
    const again = startAttempt(
      { ...running, status: 'queued' },
      { ...first, attempt: 2, workerId: 'w2' },
      { gpus: [], gpuIndices: [] },
      r.now(),
    );
    r.push(again);
    expect(check(r.entries, false).join('\n')).toMatch(/attempt 2 on w2 started while attempt 1 on w1 ran/);

    const s = new Recorder().start('w1');
    const stale = s.cur;
    s.push(workerLost(s.cur, 'w1', s.now()));
    s.push(requeueAfterDelay(s.cur, s.now()));
    s.start('w2');
    // The zombie (attempt 1 on w1) reports progress after attempt 2 began.
    const late = reportProgress(stale, { workerId: 'w1', generation: 1, attempt: 1 }, { percent: 50 }, s.now());
    late.record.sequence = s.cur.sequence + 1;
    s.push(late);
    expect(check(s.entries, false).join('\n')).toMatch(/from attempt 1 on w1 while attempt 2 on w2 runs/);
  });

  it('refuses an attempt whose start is stamped before the previous attempt ended', () => {
    const r = new Recorder().start('w1');
    r.push(workerLost(r.cur, 'w1', r.now()));
    r.push(requeueAfterDelay(r.cur, r.now()));
    r.start('w2');
    r.push(completeAttempt(r.cur, r.owner(), {}, r.now()));
    const lostAt = r.entries[2]!.event.timestamp;
    const bad = tamper(r.entries, 4, (e) => ({ ...e, timestamp: new Date(Date.parse(lostAt) - 500).toISOString() }));
    expect(check(bad).join('\n')).toMatch(/attempt 2 started before attempt 1 ended \(500 ms overlap\)/);
  });

  it('refuses sequence numbers reused or skipped, and revisions out of order', () => {
    const r = new Recorder().start('w1');
    r.push(completeAttempt(r.cur, r.owner(), {}, r.now()));
    const reused = tamper(r.entries, 2, (e) => ({ ...e, sequence: 2, job: { ...e.job, sequence: 2 } }));
    expect(check(reused).join('\n')).toMatch(/sequence 2 reused/);
    const skipped = tamper(r.entries, 2, (e) => ({ ...e, sequence: 5, job: { ...e.job, sequence: 5 } }));
    expect(check(skipped).join('\n')).toMatch(/sequence jumped from 2 to 5/);
    const mismatch = tamper(r.entries, 1, (e) => ({ ...e, sequence: 7 }));
    expect(check(mismatch).join('\n')).toMatch(/event sequence 7 ≠ record sequence 2/);
    const disorder = structuredClone(r.entries);
    disorder[2]!.revision = 1;
    expect(check(disorder).join('\n')).toMatch(/stream revision not after 2/);
  });

  it('refuses a generation that never ended, a lost job, and a generation change that is no admin retry', () => {
    const r = new Recorder().start('w1');
    expect(check(r.entries)).toEqual([expect.stringMatching(/generation 1 never ended/)]);
    expect(check(r.entries, false)).toEqual([]);
    expect(check([])).toEqual([expect.stringMatching(/no history at all \(lost\)/)]);
    const jumped = tamper(r.entries, 1, (e) => ({ ...e, generation: 2, job: { ...e.job, generation: 2 } }));
    expect(check(jumped, false).join('\n')).toMatch(/generation 1 → 2 other than by an admin retry/);
  });

  it('refuses attempts beyond maxAttempts and a status that does not match its event', () => {
    const r = new Recorder().start('w1');
    r.push(completeAttempt(r.cur, r.owner(), {}, r.now()));
    const over = tamper(r.entries, 1, (e) => ({ ...e, job: { ...e.job, attempts: 1, maxAttempts: 0 } }));
    expect(check(over).join('\n')).toMatch(/attempt 1 of at most 0/);
    const wrong = tamper(r.entries, 2, (e) => ({ ...e, job: { ...e.job, status: 'running' } }));
    expect(check(wrong, false).join('\n')).toMatch(/status running after a job\.completed/);
  });

  it('accepts waiting → queued / scheduled / cancelled paths and an admin retry back to waiting', () => {
    const r = new Recorder(undefined, ['p1']);
    expect(r.cur.status).toBe('waiting');
    r.push(releaseWaiting(r.cur, r.now()));
    r.start('w1');
    r.push(completeAttempt(r.cur, r.owner(), {}, r.now()));
    expect(check(r.entries)).toEqual([]);

    const d = new Recorder(60_000, ['p1']);
    d.push(releaseWaiting(d.cur, d.now()));
    expect(d.cur.status).toBe('scheduled');
    d.push(requestCancel(d.cur, d.now()));
    expect(check(d.entries)).toEqual([]);

    const f = new Recorder(undefined, ['p1']);
    f.push(dependencyFailed(f.cur, f.now(), 'p1', 'failed'));
    f.push(adminRetry(f.cur, f.now()));
    f.push(releaseWaiting(f.cur, f.now()));
    f.start('w1');
    f.push(completeAttempt(f.cur, f.owner(), {}, f.now()));
    expect(check(f.entries)).toEqual([]);

    const again = tamper(r.entries, 1, (e) => ({ ...e, type: 'job.waiting', job: { ...e.job, status: 'waiting' } }));
    expect(check(again).join()).toMatch(/job.waiting other than at submit/);
  });
});
