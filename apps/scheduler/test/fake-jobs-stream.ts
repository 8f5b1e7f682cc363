/**
 * Builders for unit tests of the scheduler's pure parts: job revisions as the jobs stream would hold them, made with
 * the real state machine of `@gantry/contracts` (no broker). Not part of the app's runtime.
 */
import {
  adminRetry,
  completeAttempt,
  enqueueDue,
  failAttempt,
  handBack,
  jobError,
  newJob,
  normalizeRecord,
  reprioritize,
  requeueAfterDelay,
  startAndEnd,
  startAttempt,
  toEvent,
  type GpuRequest,
  type JobRecord,
  type Priority,
  type StoredJob,
  type Transition,
} from '@gantry/contracts';

/** A fake jobs stream: every stored transition gets the next sequence, like a publish ack. */
export class FakeJobsStream {
  seq = 0;
  now = Date.parse('2030-01-01T00:00:00.000Z');
  private readonly last = new Map<string, StoredJob>();

  store(t: Transition): StoredJob {
    this.seq++;
    const at = new Date(this.now);
    const event = toEvent(t, at);
    const record = normalizeRecord(event.job, this.seq);
    const s: StoredJob = { record, revision: this.seq, event: { ...event, job: record } };
    this.last.set(record.id, s);
    return s;
  }

  get(id: string): JobRecord {
    const s = this.last.get(id);
    if (!s) throw new Error(`no job ${id}`);
    return s.record;
  }

  private at(): Date {
    return new Date(this.now);
  }

  submit(
    id: string,
    o: {
      priority?: Priority;
      tenant?: string;
      pool?: string;
      gpu?: GpuRequest;
      maxAttempts?: number;
      /** Epoch ms: the job is `scheduled` until then when it is after `now`. */
      runAt?: number;
    } = {},
  ): StoredJob {
    return this.store(
      newJob(
        {
          id,
          tenant: o.tenant ?? 'default',
          type: 'noop',
          input: {},
          priority: o.priority ?? 'normal',
          pool: o.pool ?? 'default',
          timeoutSeconds: 60,
          maxAttempts: o.maxAttempts ?? 3,
          retryDelaysMs: [1_000, 5_000],
          ...(o.gpu ? { gpu: o.gpu } : {}),
          ...(o.runAt !== undefined ? { runAt: new Date(o.runAt).toISOString() } : {}),
          metadata: {},
        },
        this.at(),
      ),
    );
  }

  /** A scheduled job whose runAt has come enters the queue. */
  due(id: string): StoredJob {
    return this.store(enqueueDue(this.get(id), this.at()));
  }

  start(id: string, workerId: string, gpuIndices: number[] = []): StoredJob {
    const r = this.get(id);
    return this.store(
      startAttempt(
        r,
        { workerId, generation: r.generation, attempt: r.attempts + 1 },
        { gpus: gpuIndices.map((i) => `GPU-${i}`), gpuIndices },
        this.at(),
      ),
    );
  }

  /**
   * An attempt recorded by its outcome alone (the worker wrote no running revision): started `runMs` before now,
   * completed (or failed, retryably or not) now.
   */
  startAndEnd(
    id: string,
    workerId: string,
    o: { gpuIndices?: number[]; runMs?: number; outcome?: 'complete' | 'fail' | 'fail-final' } = {},
  ): StoredJob {
    const r = this.get(id);
    const owner = { workerId, generation: r.generation, attempt: r.attempts + 1 };
    const gpuIndices = o.gpuIndices ?? [];
    return this.store(
      startAndEnd(
        r,
        owner,
        { gpus: gpuIndices.map((i) => `GPU-${i}`), gpuIndices },
        new Date(this.now - (o.runMs ?? 0)),
        (s) =>
          (o.outcome ?? 'complete') === 'complete'
            ? completeAttempt(s, owner, { result: { ok: true } }, this.at())
            : failAttempt(s, owner, jobError('JOB_FAILED', 'failed on purpose', o.outcome === 'fail'), this.at()),
      ),
    );
  }

  private owner(id: string) {
    const r = this.get(id);
    return { workerId: r.workerId!, generation: r.generation, attempt: r.attempts };
  }

  complete(id: string): StoredJob {
    return this.store(completeAttempt(this.get(id), this.owner(id), { result: { ok: true } }, this.at()));
  }

  fail(id: string, retryable = true): StoredJob {
    return this.store(
      failAttempt(this.get(id), this.owner(id), jobError('JOB_FAILED', 'failed on purpose', retryable), this.at()),
    );
  }

  handBack(id: string): StoredJob {
    return this.store(handBack(this.get(id), this.owner(id), this.at()));
  }

  requeue(id: string): StoredJob {
    return this.store(requeueAfterDelay(this.get(id), this.at()));
  }

  reprioritize(id: string, p: Priority): StoredJob {
    return this.store(reprioritize(this.get(id), p, this.at()));
  }

  adminRetry(id: string): StoredJob {
    return this.store(adminRetry(this.get(id), this.at()));
  }
}
