/**
 * Runs one dispatched attempt from start to ack:
 *   1. compare-and-set the record `queued → running` naming this worker and attempt (a stale or duplicate dispatch
 *      loses here and is dropped, the scheduler told at once);
 *   2. run the executor in a private scratch directory under a timeout covering the whole attempt;
 *   3. compare-and-set the outcome — only while the record still names this attempt, so a worker that lost its
 *      lease (a zombie) can never complete or fail an attempt it no longer owns;
 *   4. ack the dispatch message, after the work is done.
 * An attempt is aborted on cancel (request or control message), timeout, lost ownership, a heartbeat lease this worker
 * cannot renew (it kills its own work), or the end of the shutdown grace period (the job is handed back).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  SUBJECTS,
  TransitionRefused,
  cancelAttempt,
  completeAttempt,
  failAttempt,
  handBack,
  jobError,
  reportProgress,
  startAttempt,
  type AttemptOwner,
  type Clock,
  type DispatchMessage,
  type DispatchReleased,
  type GpuInfo,
  type JobError,
  type JobRecord,
  type StoredJob,
  type Transition,
} from '@gantry/contracts';
import { encodeJson, type JetStreamContext, type NatsHandle } from '@gantry/jetstream';
import { JobNotFoundError, type JobStore } from '@gantry/job-store';
import { ATTR, inSpan, type Logger } from '@gantry/telemetry';
import { JobFailure, type ExecutionResult } from '../executors/executor';
import type { ExecutorRegistry } from '../executors/executor-registry';
import type { WorkerMetrics } from './worker-metrics';

export type AbortReason = 'cancel' | 'timeout' | 'lost' | 'fenced' | 'shutdown';

export class AttemptAborted extends Error {
  override readonly name = 'AttemptAborted';
  constructor(readonly reason: AbortReason) {
    super(`attempt aborted: ${reason}`);
  }
}

export class RunningAttempt {
  readonly controller = new AbortController();
  reason: AbortReason | undefined;

  constructor(
    readonly owner: AttemptOwner,
    readonly jobId: string,
    public record: JobRecord,
  ) {}

  abort(reason: AbortReason): void {
    if (this.reason) return;
    this.reason = reason;
    this.controller.abort(new AttemptAborted(reason));
  }
}

export interface RunnerDeps {
  workerId: string;
  nats: NatsHandle;
  jobs: JobStore;
  executors: ExecutorRegistry;
  clock: Clock;
  gpus: () => GpuInfo[];
  scratchRoot: string;
  progressIntervalMs: number;
  metrics: WorkerMetrics;
  logger: Logger;
}

type Outcome = { kind: 'ok'; result: ExecutionResult } | { kind: 'fail'; error: JobError } | { kind: AbortReason };

export class AttemptRunner {
  readonly running = new Map<string, RunningAttempt>();
  readonly inflight = new Map<string, { jobId: string; attempt: number }>();

  constructor(private readonly d: RunnerDeps) {}

  private released(m: DispatchMessage, reason: string): void {
    const notice: DispatchReleased = {
      v: 1,
      jobId: m.jobId,
      generation: m.generation,
      attempt: m.attempt,
      workerId: this.d.workerId,
      reason,
    };
    this.d.nats.nc.publish(SUBJECTS.dispatchReleased, encodeJson(notice));
  }

  /** Aborts every running attempt (shutdown grace over, or the lease is gone). */
  abortAll(reason: AbortReason): void {
    for (const a of this.running.values()) a.abort(reason);
  }

  abortJob(jobId: string, reason: AbortReason, generation?: number): boolean {
    const a = this.running.get(jobId);
    if (!a || (generation !== undefined && a.owner.generation !== generation)) return false;
    a.abort(reason);
    return true;
  }

  async handle(m: DispatchMessage, ctx: JetStreamContext): Promise<void> {
    const key = `${m.jobId}.${m.generation}.${m.attempt}`;
    if (m.workerId !== this.d.workerId) {
      this.d.logger.warn(
        { jobId: m.jobId, addressedTo: m.workerId },
        'dispatch addressed to another worker; dropping it',
      );
      await ctx.ackAck();
      return;
    }
    this.inflight.set(key, { jobId: m.jobId, attempt: m.attempt });
    try {
      await this.run(m, ctx);
    } finally {
      this.inflight.delete(key);
    }
  }

  private async run(m: DispatchMessage, ctx: JetStreamContext): Promise<void> {
    const owner: AttemptOwner = { workerId: this.d.workerId, generation: m.generation, attempt: m.attempt };
    const gpus = this.d.gpus();
    const assigned = m.gpuIndices.map((i) => gpus.find((g) => g.index === i)).filter((g): g is GpuInfo => !!g);
    let started: StoredJob;
    try {
      started = await this.d.jobs.transition(m.jobId, (cur) =>
        startAttempt(
          cur.record,
          owner,
          { gpus: assigned.map((g) => g.uuid), gpuIndices: m.gpuIndices },
          this.d.clock.now(),
        ),
      );
    } catch (err) {
      if (err instanceof TransitionRefused || err instanceof JobNotFoundError) {
        this.d.logger.info({ jobId: m.jobId, attempt: m.attempt, reason: err.message }, 'stale dispatch dropped');
        this.released(m, err.message);
        await ctx.ackAck();
        return;
      }
      throw err; // transient (NATS): nak with backoff, the dispatch stays ours
    }

    const record = started.record;
    const attempt = new RunningAttempt(owner, m.jobId, record);
    this.running.set(m.jobId, attempt);
    const executor = this.d.executors.get(record.type);
    const startedAt = Date.now();
    const outcome = await inSpan(
      'job run',
      {
        attributes: {
          [ATTR.jobId]: record.id,
          [ATTR.attempt]: m.attempt,
          [ATTR.jobType]: record.type,
          [ATTR.workerId]: this.d.workerId,
        },
      },
      async (span): Promise<Outcome> => {
        const timer = setTimeout(() => attempt.abort('timeout'), record.timeoutSeconds * 1000);
        let scratch: string | undefined;
        const progress = this.progressReporter(attempt);
        try {
          if (!executor) throw new JobFailure('INVALID_INPUT', `this worker cannot run job type ${record.type}`, false);
          scratch = await mkdtemp(join(this.d.scratchRoot, `${record.id}-${m.attempt}-`));
          const env: Record<string, string> = {};
          if (m.gpuIndices.length > 0)
            env['CUDA_VISIBLE_DEVICES'] =
              assigned.length === m.gpuIndices.length ? assigned.map((g) => g.uuid).join(',') : m.gpuIndices.join(',');
          else if (record.gpu?.count === 0) env['CUDA_VISIBLE_DEVICES'] = '';
          const result = await executor.run({
            record,
            attempt: m.attempt,
            scratchDir: scratch,
            env,
            signal: attempt.controller.signal,
            progress: progress.report,
            logger: this.d.logger.child({ jobId: record.id, attempt: m.attempt }),
          });
          if (attempt.reason) return { kind: attempt.reason };
          return { kind: 'ok', result };
        } catch (err) {
          if (attempt.reason) return { kind: attempt.reason };
          if (err instanceof JobFailure) {
            span.setAttribute('gantry.error.code', err.code);
            return { kind: 'fail', error: jobError(err.code, err.message, err.retryable, err.detail) };
          }
          this.d.logger.error({ err, jobId: record.id }, 'executor crashed');
          return { kind: 'fail', error: jobError('INTERNAL', err instanceof Error ? err.message : String(err), true) };
        } finally {
          clearTimeout(timer);
          await progress.settle();
          if (scratch) await rm(scratch, { recursive: true, force: true }).catch(() => undefined);
        }
      },
    );
    this.running.delete(m.jobId);
    this.d.metrics.attemptFinished(record.type, outcome.kind, (Date.now() - startedAt) / 1000);
    await this.finish(m, attempt, outcome, ctx);
  }

  private async finish(
    m: DispatchMessage,
    attempt: RunningAttempt,
    outcome: Outcome,
    ctx: JetStreamContext,
  ): Promise<void> {
    const now = () => this.d.clock.now();
    const owner = attempt.owner;
    let decide: ((cur: StoredJob) => Transition) | undefined;
    switch (outcome.kind) {
      case 'ok':
        decide = (cur) => completeAttempt(cur.record, owner, outcome.result, now());
        break;
      case 'fail':
        decide = (cur) => failAttempt(cur.record, owner, outcome.error, now());
        break;
      case 'timeout':
        decide = (cur) =>
          failAttempt(
            cur.record,
            owner,
            jobError('TIMEOUT', `attempt exceeded ${cur.record.timeoutSeconds} s`, true),
            now(),
          );
        break;
      case 'cancel':
        decide = (cur) => cancelAttempt(cur.record, owner, now());
        break;
      case 'shutdown':
        decide = (cur) => handBack(cur.record, owner, now());
        break;
      case 'lost':
      case 'fenced':
        decide = undefined;
        break;
    }
    if (decide) {
      try {
        await this.d.jobs.transition(m.jobId, decide);
      } catch (err) {
        if (!(err instanceof TransitionRefused)) throw err; // NATS trouble: nak, retry the outcome later
        this.d.logger.warn(
          { jobId: m.jobId, attempt: m.attempt, reason: err.message },
          'attempt no longer ours; outcome dropped',
        );
      }
    }
    if (outcome.kind === 'fenced') {
      // Cut off from NATS: the scheduler will declare this attempt lost; acking may not even reach the broker.
      ctx.ack();
      return;
    }
    await ctx.ackAck();
  }

  /** Throttled progress revisions; each one also re-checks that the attempt is still ours and not being cancelled. */
  private progressReporter(attempt: RunningAttempt) {
    let pending: { percent: number; stage?: string } | undefined;
    let lastWrite = 0;
    let writing: Promise<void> = Promise.resolve();
    let timer: NodeJS.Timeout | undefined;
    const write = () => {
      timer = undefined;
      const p = pending;
      pending = undefined;
      if (!p || attempt.reason) return;
      lastWrite = Date.now();
      writing = writing.then(async () => {
        try {
          const s = await this.d.jobs.transition(attempt.jobId, (cur) =>
            reportProgress(cur.record, attempt.owner, p, this.d.clock.now()),
          );
          attempt.record = s.record;
          if (s.record.cancelRequestedAt) attempt.abort('cancel');
        } catch (err) {
          if (err instanceof TransitionRefused) {
            if (err.reason === 'NOT_OWNER') attempt.abort('lost');
            return;
          }
          this.d.logger.warn({ err, jobId: attempt.jobId }, 'progress not recorded');
        }
      });
    };
    return {
      report: (percent: number, stage?: string) => {
        pending = { percent: Math.max(0, Math.min(100, Math.round(percent * 10) / 10)), ...(stage ? { stage } : {}) };
        const wait = this.d.progressIntervalMs - (Date.now() - lastWrite);
        if (wait <= 0) write();
        else timer ??= setTimeout(write, wait);
      },
      settle: async () => {
        if (timer) clearTimeout(timer);
        await writing;
      },
    };
  }

  /** Re-reads the records of running attempts: cancelled or no longer ours → abort. Called on every heartbeat. */
  async checkOwnership(): Promise<void> {
    const attempts = [...this.running.values()];
    if (attempts.length === 0) return;
    const records = await this.d.jobs.getMany(
      attempts.map((a) => a.jobId),
      { consistent: true },
    );
    for (const a of attempts) {
      const r = records.get(a.jobId)?.record;
      if (!r) continue;
      if (
        r.status !== 'running' ||
        r.workerId !== a.owner.workerId ||
        r.attempts !== a.owner.attempt ||
        r.generation !== a.owner.generation
      ) {
        a.abort('lost');
      } else if (r.cancelRequestedAt) {
        a.abort('cancel');
      }
    }
  }
}
