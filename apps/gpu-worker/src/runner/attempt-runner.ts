/**
 * Runs one dispatched attempt from start to ack:
 *   1. compare-and-set the record `queued → running` naming this worker and attempt (a stale or duplicate dispatch
 *      loses here and is dropped, the scheduler told at once). With a started-revision delay
 *      (WORKER_STARTED_REVISION_DELAY_MS > 0) the record is read and checked the same way, the attempt starts at once,
 *      and the `running` revision is written only if the attempt is still running when the delay is over (or reports
 *      progress first); an attempt that ends sooner records its start and its outcome in one revision
 *      (`startAndEnd`), from which the `job.started` event is derived (docs/architecture.md, "Started revisions");
 *   2. run the executor in a private scratch directory under a timeout covering the whole attempt (download, run,
 *      upload), with `CUDA_VISIBLE_DEVICES` naming exactly the GPUs the attempt was given;
 *   3. compare-and-set the outcome — only while the record still names this attempt, so a worker that lost its
 *      lease (a zombie) can never complete or fail an attempt it no longer owns; NATS trouble is retried here;
 *   4. when the generation ended `failed` and the job has an `upload.url`, PUT a JSON error document there;
 *   5. ack the dispatch message, after all of that — a batch message (several attempts, docs/architecture.md "Batched
 *      dispatch") once every attempt in it has settled, naked whole if any of them wants it back.
 * An attempt is aborted on cancel (request or control message), timeout, lost ownership, a heartbeat lease this worker
 * cannot renew (it kills its own work; the job's guard does so even if this process is frozen), or the end of the
 * shutdown grace period (the job is handed back).
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
  normalizeRecord,
  reportProgress,
  startAndEnd,
  startAttempt,
  type AttemptOwner,
  type Clock,
  dispatchAttempts,
  type DispatchMessage,
  type DispatchPayload,
  type DispatchReleased,
  type GpuInfo,
  type JobError,
  type JobRecord,
  type StoredJob,
  type Transition,
} from '@gantry/contracts';
import { Backoff, encodeJson, sleep, type JetStreamContext, type NatsHandle } from '@gantry/jetstream';
import { JobNotFoundError, type JobStore } from '@gantry/job-store';
import { ATTR, activeIds, contextFromTraceparent, inContext, inSpan, type Logger } from '@gantry/telemetry';
import { JobFailure, type ExecutionResult, type Lease } from '../executors/executor';
import { GPU_OOM_CANDIDATES, isGpuOomText, raisedGpuMemoryMb } from '../gpu/gpu-oom';
import type { ExecutorRegistry } from '../executors/executor-registry';
import { putToUrl, type TransferSettings } from '../executors/transfers';
import { AttemptSandbox, type DiskLimits, type Sandbox, type SandboxSlot } from '../sandbox/sandbox';
import type { ParentOutputResolver } from './parent-outputs';
import type { S3InputPolicy } from './s3-input-policy';
import type { WorkerMetrics } from './worker-metrics';

/**
 * Why an attempt was stopped. `fenced`: this worker's lease lapsed although nothing failed to reach the broker (the
 * process itself stalled: a freeze, a long pause) — costs the attempt. `unreachable`: the lease lapsed because the
 * heartbeats failed (the broker did not answer, or answered with an error) — handed back, not charged (issue #19).
 */
export type AbortReason = 'cancel' | 'timeout' | 'lost' | 'fenced' | 'unreachable' | 'shutdown';

export class AttemptAborted extends Error {
  override readonly name = 'AttemptAborted';
  readonly code = 'ATTEMPT_ABORTED';
  constructor(readonly reason: AbortReason) {
    super(`attempt aborted: ${reason}`);
  }
}

/**
 * The record the leader read just before dispatching, as a compare-and-set hint (a wrong guess costs one failed
 * publish and a read; a right one saves the read).
 */
function dispatchHint(m: DispatchMessage): { current?: StoredJob } {
  if (!m.record || !m.revision || m.record.id !== m.jobId) return {};
  const record = normalizeRecord(m.record, m.revision);
  return {
    current: {
      record,
      revision: m.revision,
      event: {
        type: 'job.queued',
        timestamp: record.updatedAt,
        sequence: record.sequence,
        generation: record.generation,
        job: record,
      },
    },
  };
}

/**
 * How one attempt asks for its dispatch message to be settled. A message carrying several attempts is settled once
 * all of them have: naked if any asked for that, else acked (confirmed unless one asked for a plain ack).
 */
export interface AttemptSettlement {
  ackAck(): Promise<boolean>;
  ack(): void;
  nak(delayMs?: number): void;
}

/** One attempt's wish for its message, recorded; the first wish stands (as on a message). */
class AttemptVerdict implements AttemptSettlement {
  kind: 'none' | 'ack' | 'ackAck' | 'nak' = 'none';
  delayMs: number | undefined;
  /** A transient error the attempt threw (the transport naks with backoff). */
  error: unknown;
  failed = false;
  /** Another delivery of the same message is handling this attempt: this one says nothing about it. */
  duplicate = false;

  ackAck(): Promise<boolean> {
    if (this.kind === 'none') this.kind = 'ackAck';
    return Promise.resolve(true);
  }
  ack(): void {
    if (this.kind === 'none') this.kind = 'ack';
  }
  nak(delayMs?: number): void {
    if (this.kind !== 'none') return;
    this.kind = 'nak';
    this.delayMs = delayMs;
  }
}

/** How long an attempt settled in a message that was given back is remembered (its redelivery skips it). */
const SETTLED_MEMORY_MS = 3_600_000;

const attemptKey = (m: DispatchMessage) => `${m.jobId}.${m.generation}.${m.attempt}`;

/** Bounds how many attempts run at once on this worker (its slots), whatever the number of messages carrying them. */
class SlotGate {
  private used = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly slots: number) {}

  /** Resolves true when the attempt had to wait for a slot (another attempt's release handed it on). */
  acquire(): Promise<boolean> {
    if (this.used < this.slots) {
      this.used++;
      return Promise.resolve(false);
    }
    return new Promise((resolve) => this.waiting.push(() => resolve(true)));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next)
      next(); // the slot passes straight on
    else this.used--;
  }

  get queued(): number {
    return this.waiting.length;
  }
}

/** The start of an attempt whose `running` revision is not written yet (WORKER_STARTED_REVISION_DELAY_MS). */
export interface PendingStart {
  startedAt: Date;
  placement: { gpus: string[]; gpuIndices: number[] };
}

export class RunningAttempt {
  readonly controller = new AbortController();
  /** The last revision this worker wrote (or, before the start is written, read) for the attempt: the CAS hint. */
  stored: StoredJob | undefined;
  reason: AbortReason | undefined;
  /** Set while the attempt's start is not recorded: the outcome then records both (`startAndEnd`). */
  pending: PendingStart | undefined;
  /** The write of the `running` revision, once begun (the delay ran out, or progress was reported). */
  startWrite: Promise<void> | undefined;
  /** The job process is over: a start write still failing gives up, the outcome records the start. */
  ended = false;

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

/** Renewals of the worker's lease, fanned out to the guards of running job processes. */
export class LeaseTicker implements Lease {
  private readonly listeners = new Set<() => void>();
  private cause: () => 'fenced' | 'unreachable' = () => 'fenced';
  constructor(readonly deadlineMs: number) {}

  onRenew(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Called after every successful heartbeat. */
  renewed(): void {
    for (const fn of this.listeners) fn();
  }

  /** Who says why the lease lapses (the heartbeat loop: it knows whether it stalled or the broker did not answer). */
  explainLapse(fn: () => 'fenced' | 'unreachable'): void {
    this.cause = fn;
  }

  /** Why the lease, if it lapsed now, lapsed: `unreachable` (the broker) or `fenced` (this process stalled). */
  get lapseCause(): 'fenced' | 'unreachable' {
    return this.cause();
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
  /** The worker's lease as job processes see it (absent: job processes only die with the worker). */
  lease?: LeaseTicker;
  /** For the error document PUT to `upload.url`. */
  transfers: TransferSettings;
  /** How long to keep retrying an outcome write that fails for NATS reasons before giving the message back. */
  outcomeRetryMs?: number;
  /**
   * How long an attempt runs before its `running` revision is written (0 or absent: written before the job starts).
   * An attempt over sooner writes only its outcome, which records the start too.
   */
  startedRevisionDelayMs?: number;
  /**
   * With a started-revision delay: read the record from the stream leader before every start, as the start's check
   * (true), or check the record the dispatch carries and let the first write's compare-and-set catch a record that
   * moved since the scheduler read it (false, the default; docs/architecture.md, "Trusted dispatch records").
   */
  readBeforeStart?: boolean;
  /** Which s3:// inputs a job may read (absent: any). */
  s3Inputs?: S3InputPolicy;
  /** Resolves parent outputs named as inputs (`job:<parent id>/<name>`; absent: refused). */
  parentOutputs?: ParentOutputResolver;
  /** Told how each attempt ended, with the GPUs it ran on (GPU health counts failures at start). */
  attemptEnded?: (e: AttemptEnded) => void;
  /** The peak GPU memory measured for a running attempt so far (MiB), read when it dies of `GPU_OOM`. */
  gpuPeakMb?: (jobId: string) => number | undefined;
  /** The OS sandbox every job process runs in, and the attempts' disk caps (absent: bare processes, no caps). */
  sandbox?: { sandbox: Sandbox; limits: DiskLimits };
  /**
   * Most attempts run at once (the worker's slots; absent: no bound here). The dispatch consumer's MaxAckPending counts
   * messages, and one message may carry several attempts: this is the bound that holds per attempt.
   */
  slots?: number;
}

export interface AttemptEnded {
  jobId: string;
  gpus: string[];
  outcome: Outcome['kind'];
  code?: string;
  runMs: number;
  /** Its job type, and the memory request raised after it died of `GPU_OOM` (learned for the type). */
  type: string;
  gpuOomRaisedMb?: number;
}

export type Outcome =
  | { kind: 'ok'; result: ExecutionResult }
  | { kind: 'fail'; error: JobError; gpuMemoryMb?: number }
  | { kind: AbortReason };

/** The error document PUT to a job's `upload.url` when its generation ends `failed`. */
export interface UploadErrorDocument {
  id: string;
  status: 'failed';
  attempts: number;
  finishedAt: string | undefined;
  error: { code: string; message: string; detail?: string };
}

/**
 * `CUDA_VISIBLE_DEVICES` for an attempt: the UUIDs of its GPUs (stable whatever the device order), or empty — no GPU
 * visible — for an attempt given none (CPU-only work, or a CPU-only worker).
 */
export function cudaVisibleDevices(gpuIndices: readonly number[], gpus: readonly GpuInfo[]): string {
  const assigned = gpuIndices.map((i) => gpus.find((g) => g.index === i));
  if (assigned.every((g): g is GpuInfo => !!g)) return assigned.map((g) => g.uuid).join(',');
  return gpuIndices.join(',');
}

export class AttemptRunner {
  readonly running = new Map<string, RunningAttempt>();
  readonly inflight = new Map<string, { jobId: string; attempt: number }>();
  private readonly gate: SlotGate | undefined;
  /**
   * Attempts this worker settled (ran, dropped or handed back) in a message that went back to the broker because
   * another attempt in it asked for that: on the message's redelivery they are skipped, not looked at again (a
   * handed-back attempt's record says queued for it once more, and the scheduler has re-dispatched it). Keyed
   * `jobId.generation.attempt`, each kept for {@link SETTLED_MEMORY_MS}.
   */
  private readonly settledBefore = new Map<string, number>();
  /** Set by `abortAll('shutdown')`: attempts still waiting for a slot are handed back instead of started. */
  private stopping = false;

  constructor(private readonly d: RunnerDeps) {
    this.gate = d.slots !== undefined ? new SlotGate(Math.max(1, d.slots)) : undefined;
  }

  /**
   * Whether starts use the record a dispatch carries: without a started-revision delay as the start's compare-and-set
   * hint; with one as the record the start is checked against, unless `readBeforeStart` asks for a read from the stream
   * leader before every start. A worker that never looks at the hint says so in its heartbeat (`dispatchRecordHint`)
   * and the scheduler leaves the record out of its dispatches.
   */
  get usesDispatchRecordHint(): boolean {
    return (this.d.startedRevisionDelayMs ?? 0) <= 0 || this.d.readBeforeStart !== true;
  }

  /** Attempts received and waiting for a free slot (0 unless the worker was handed more than its slots). */
  get waitingForSlot(): number {
    return this.gate?.queued ?? 0;
  }

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
    if (reason === 'shutdown') this.stopping = true;
    for (const a of this.running.values()) a.abort(reason);
  }

  abortJob(jobId: string, reason: AbortReason, generation?: number): boolean {
    const a = this.running.get(jobId);
    if (!a || (generation !== undefined && a.owner.generation !== generation)) return false;
    a.abort(reason);
    return true;
  }

  /**
   * Handles one dispatch message: its attempts (one, or a batch) run side by side under the slot bound, and the
   * message is settled once every one of them has — acked only after all of their work is done.
   */
  async handle(p: DispatchPayload, ctx: JetStreamContext): Promise<void> {
    if (p.workerId !== this.d.workerId) {
      const attempts = dispatchAttempts(p);
      this.d.logger.warn(
        { jobId: attempts[0]?.jobId, attempts: attempts.length, addressedTo: p.workerId },
        'dispatch addressed to another worker; dropping it',
      );
      await ctx.ackAck();
      return;
    }
    const batch = 'attempts' in p;
    const attempts = dispatchAttempts(p);
    // A message delivered again (naked, or its AckWait ran out) may carry records that are no longer current, even
    // records of attempts this process recorded: its starts read the record first.
    const firstDelivery = ctx.deliveryCount === 1;
    const verdicts = await Promise.all(attempts.map((m) => this.handleAttempt(m, batch, firstDelivery)));
    const failed = verdicts.find((v) => v.failed);
    if (failed || verdicts.some((v) => v.kind === 'nak')) {
      // The message goes back; its attempts settled here must not be taken up again when it returns.
      const now = this.d.clock.now().getTime();
      for (const [key, until] of this.settledBefore) if (until <= now) this.settledBefore.delete(key);
      attempts.forEach((m, i) => {
        const v = verdicts[i]!;
        if (!v.failed && !v.duplicate && v.kind !== 'nak')
          this.settledBefore.set(attemptKey(m), now + SETTLED_MEMORY_MS);
      });
    }
    // NATS trouble before an attempt could start: the transport naks with backoff; the attempts of the message settled
    // here are skipped when it comes back (above), or — after a restart — refused by the start check.
    if (failed) throw failed.error;
    const naks = verdicts.filter((v) => v.kind === 'nak');
    if (naks.length > 0) {
      ctx.nak(Math.max(...naks.map((v) => v.delayMs ?? 0)) || undefined);
      return;
    }
    // Every attempt is being handled by another delivery of this message (its AckWait ran out): as before batches,
    // this delivery is acked by the transport and the first one keeps running its attempts.
    if (verdicts.every((v) => v.duplicate)) return;
    if (verdicts.some((v) => v.kind === 'ack')) {
      ctx.ack();
      return;
    }
    await ctx.ackAck();
  }

  private async handleAttempt(m: DispatchMessage, batch: boolean, firstDelivery: boolean): Promise<AttemptVerdict> {
    const verdict = new AttemptVerdict();
    const key = attemptKey(m);
    const settledUntil = this.settledBefore.get(key);
    if (settledUntil !== undefined && settledUntil > this.d.clock.now().getTime()) {
      this.d.logger.info({ jobId: m.jobId, attempt: m.attempt }, 'attempt already settled in an earlier delivery');
      await verdict.ackAck();
      return verdict;
    }
    if (this.inflight.has(key)) {
      // The same attempt again while its first delivery is still being handled (its AckWait ran out, e.g. the event
      // loop stalled): never run an attempt twice.
      this.d.logger.warn({ jobId: m.jobId, attempt: m.attempt }, 'duplicate delivery of a running attempt ignored');
      verdict.duplicate = true;
      return verdict;
    }
    this.inflight.set(key, { jobId: m.jobId, attempt: m.attempt });
    let gated = false;
    let waited = false;
    try {
      if (this.gate) {
        waited = await this.gate.acquire();
        gated = true;
      }
      if (this.stopping) {
        // The grace period ended before this attempt got a slot: hand it back unstarted (its record is still queued).
        this.released(m, 'handed back before it started: the worker is stopping');
        await verdict.ackAck();
        return verdict;
      }
      // A record carried is trusted only as delivered: not after a wait for a slot (it may be old by then).
      await this.run(m, verdict, batch, firstDelivery && !waited);
    } catch (err) {
      verdict.failed = true;
      verdict.error = err;
    } finally {
      if (gated) this.gate?.release();
      this.inflight.delete(key);
    }
    return verdict;
  }

  private async run(m: DispatchMessage, ctx: AttemptSettlement, batch = false, trustRecord = false): Promise<void> {
    const owner: AttemptOwner = { workerId: this.d.workerId, generation: m.generation, attempt: m.attempt };
    const gpus = this.d.gpus();
    const assigned = m.gpuIndices.map((i) => gpus.find((g) => g.index === i)).filter((g): g is GpuInfo => !!g);
    const placement = { gpus: assigned.map((g) => g.uuid), gpuIndices: m.gpuIndices };
    const delayMs = this.d.startedRevisionDelayMs ?? 0;
    /** The record the job runs with, and the revision to try the next compare-and-set on. */
    let record: JobRecord;
    let stored: StoredJob;
    let pending: PendingStart | undefined;
    try {
      if (delayMs > 0) {
        // The same check as the start's compare-and-set: a stale dispatch (cancelled, another attempt, another worker,
        // another generation) is refused here. On the record the dispatch carries, as the scheduler read it just
        // before dispatching (a record that moved since is caught by the first write's compare-and-set, by the
        // delay's end at the latest: "Trusted dispatch records"); else, or when that record is refused, on the record
        // as it is now, read from the stream leader (which also finds an unfinished attempt of this worker's own).
        const startedAt = this.d.clock.now();
        const carried = trustRecord && this.d.readBeforeStart !== true ? dispatchHint(m).current : undefined;
        let checked: { record: JobRecord; stored: StoredJob } | undefined;
        if (carried) {
          try {
            checked = { record: startAttempt(carried.record, owner, placement, startedAt).record, stored: carried };
          } catch (err) {
            if (!(err instanceof TransitionRefused)) throw err;
          }
        }
        if (!checked) {
          const cur = await this.d.jobs.get(m.jobId, { consistent: true });
          if (!cur) throw new JobNotFoundError(m.jobId);
          checked = { record: startAttempt(cur.record, owner, placement, startedAt).record, stored: cur };
        }
        record = checked.record;
        stored = checked.stored;
        pending = { startedAt, placement };
      } else {
        stored = await this.d.jobs.transition(
          m.jobId,
          (cur) => startAttempt(cur.record, owner, placement, this.d.clock.now()),
          dispatchHint(m),
        );
        record = stored.record;
      }
    } catch (err) {
      if (err instanceof TransitionRefused || err instanceof JobNotFoundError) {
        if (await this.recoverOwnAttempt(m, owner)) {
          await ctx.ackAck();
          return;
        }
        this.d.logger.info({ jobId: m.jobId, attempt: m.attempt, reason: err.message }, 'stale dispatch dropped');
        this.released(m, err.message);
        await ctx.ackAck();
        return;
      }
      throw err; // transient (NATS): nak with backoff, the dispatch stays ours
    }

    const attempt = new RunningAttempt(owner, m.jobId, record);
    attempt.stored = stored;
    attempt.pending = pending;
    this.running.set(m.jobId, attempt);
    // The run and the attempt's writes (start, outcome) join their job's trace: under the dispatch's span when the
    // message is in that trace, else (a batch's context is its first job's; a dispatch sent without its record at
    // depth is a trace of its own) under the trace the record holds.
    const jobTrace =
      record.traceparent !== undefined && (batch || activeIds().traceId !== record.traceparent.slice(3, 35))
        ? contextFromTraceparent(record.traceparent, record.tracestate)
        : undefined;
    // Written only if the attempt is still running when the delay is over.
    const writeStartLater = () => setTimeout(() => void this.writeStart(attempt), delayMs);
    const startTimer = pending ? (jobTrace ? inContext(jobTrace, writeStartLater) : writeStartLater()) : undefined;
    const executor = this.d.executors.get(record.type);
    const startedAt = this.d.clock.now().getTime();
    // The attempt's child logger is made when something logs through it (at the bench's `warn`, most attempts never do).
    let child: Logger | undefined;
    const log = (): Logger => (child ??= this.d.logger.child({ jobId: record.id, attempt: m.attempt }));
    if (this.d.logger.isLevelEnabled('info')) {
      log().info({ type: record.type, gpus: assigned.map((g) => g.uuid) }, 'attempt started');
    }
    const ranOutcome = await inSpan(
      'job run',
      {
        ...(jobTrace ? { parent: jobTrace } : {}),
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
        let slot: SandboxSlot | undefined;
        let sandbox: AttemptSandbox | undefined;
        const progress = this.progressReporter(attempt);
        try {
          if (!executor) throw new JobFailure('INVALID_INPUT', `this worker cannot run job type ${record.type}`, false);
          if (executor.needsScratch !== false) {
            scratch = await mkdtemp(join(this.d.scratchRoot, `${record.id}-${m.attempt}-`));
            if (this.d.sandbox) {
              // The attempt's own uid (per slot) owns its scratch directory, mode 0700: no other attempt can read it.
              slot = this.d.sandbox.sandbox.acquire();
              await this.d.sandbox.sandbox.prepareScratch(scratch, slot);
              sandbox = new AttemptSandbox(this.d.sandbox.sandbox, slot, scratch, m.gpuIndices, this.d.sandbox.limits);
            }
          }
          const env: Record<string, string> = { CUDA_VISIBLE_DEVICES: cudaVisibleDevices(m.gpuIndices, gpus) };
          // The memory reserved for the job on each of its GPUs, for programs that can cap themselves (e.g. PyTorch's
          // set_per_process_memory_fraction); the scheduler never places more than a GPU's memory on it.
          if (m.gpuIndices.length > 0 && m.memoryMb > 0) env['GANTRY_GPU_MEMORY_MB'] = String(m.memoryMb);
          const result = await executor.run({
            record,
            attempt: m.attempt,
            scratchDir: scratch ?? '',
            env,
            signal: attempt.controller.signal,
            progress: progress.report,
            ...(this.d.lease ? { lease: this.d.lease } : {}),
            ...(this.d.s3Inputs
              ? { s3ReadRefusal: (bucket: string, key: string) => this.d.s3Inputs!.refusal(record.tenant, bucket, key) }
              : {}),
            ...(this.d.parentOutputs
              ? { parentOutput: (url: string) => this.d.parentOutputs!.resolve(record, url) }
              : {}),
            get logger() {
              return log();
            },
            ...(sandbox ? { sandbox } : {}),
          });
          if (attempt.reason) return { kind: attempt.reason };
          return { kind: 'ok', result };
        } catch (err) {
          if (attempt.reason) return { kind: attempt.reason };
          // The job process's guard killed it when the lease lapsed: not charged when the heartbeats were failing.
          if (err instanceof JobFailure && err.code === 'WORKER_LOST' && this.d.lease?.lapseCause === 'unreachable') {
            return { kind: 'unreachable' };
          }
          if (err instanceof JobFailure) {
            span.setAttribute('gantry.error.code', err.code);
            return { kind: 'fail', error: jobError(err.code, err.message, err.retryable, err.detail) };
          }
          log().error({ err }, 'executor crashed');
          return { kind: 'fail', error: jobError('INTERNAL', err instanceof Error ? err.message : String(err), true) };
        } finally {
          clearTimeout(timer);
          clearTimeout(startTimer);
          attempt.ended = true;
          await progress.settle();
          // Best-effort: a leftover is removed with the worker's scratch root at its next start.
          if (scratch) await rm(scratch, { recursive: true, force: true }).catch(() => undefined);
          slot?.release();
        }
      },
    );
    this.running.delete(m.jobId);
    const outcome = this.gpuOom(m, assigned, ranOutcome);
    this.d.metrics.attemptFinished(record.type, outcome.kind, (this.d.clock.now().getTime() - startedAt) / 1000);
    this.d.attemptEnded?.({
      jobId: m.jobId,
      gpus: assigned.map((g) => g.uuid),
      outcome: outcome.kind,
      ...(outcome.kind === 'fail' ? { code: outcome.error.code } : {}),
      runMs: this.d.clock.now().getTime() - startedAt,
      type: record.type,
      ...(outcome.kind === 'fail' && outcome.gpuMemoryMb !== undefined ? { gpuOomRaisedMb: outcome.gpuMemoryMb } : {}),
    });
    if (this.d.logger.isLevelEnabled('info')) {
      log().info(
        { outcome: outcome.kind, ...(outcome.kind === 'fail' ? { code: outcome.error.code } : {}) },
        'attempt finished',
      );
    }
    if (jobTrace) await inContext(jobTrace, () => this.finish(m, attempt, outcome, ctx));
    else await this.finish(m, attempt, outcome, ctx);
  }

  /**
   * A job process on GPUs that failed with a CUDA out-of-memory message is a `GPU_OOM` (retryable), and its next
   * attempts ask for more memory per GPU (see {@link raisedGpuMemoryMb}).
   */
  private gpuOom(m: DispatchMessage, assigned: readonly GpuInfo[], outcome: Outcome): Outcome {
    if (outcome.kind !== 'fail' || assigned.length === 0 || !GPU_OOM_CANDIDATES.includes(outcome.error.code)) {
      return outcome;
    }
    const e = outcome.error;
    if (!isGpuOomText(`${e.message}\n${e.detail ?? ''}`)) return outcome;
    const peakMb = this.d.gpuPeakMb?.(m.jobId);
    const gpuMemoryMb = raisedGpuMemoryMb({
      reservedMb: m.memoryMb,
      ...(peakMb !== undefined ? { peakMb } : {}),
      gpuTotalMb: Math.max(...assigned.map((g) => g.memoryTotalMb)),
    });
    const measured = peakMb !== undefined && peakMb > 0 ? `, peak ${peakMb} MB` : '';
    const error = jobError(
      'GPU_OOM',
      `out of GPU memory (reserved ${m.memoryMb} MB${measured}; the next attempt asks for ${gpuMemoryMb} MB): ${e.message}`,
      true,
      e.detail,
    );
    return { kind: 'fail', error, gpuMemoryMb };
  }

  /**
   * Writes the `running` revision of an attempt started without one (its delay is over, or it reported progress),
   * once: the compare-and-set from the record as read at the start. A record that moved meanwhile (the job was
   * cancelled while queued, or its dispatch given to another worker after this one was declared lost) ends the attempt
   * (`lost`: the process is killed, nothing written). NATS trouble is retried while the process runs; once it is over,
   * the outcome records the start instead.
   */
  private writeStart(a: RunningAttempt): Promise<void> {
    const p = a.pending;
    if (!p || a.ended) return a.startWrite ?? Promise.resolve();
    a.startWrite ??= (async () => {
      const backoff = new Backoff({ initialMs: 100, maxMs: 2_000, jitter: false });
      while (!a.ended && !a.reason) {
        try {
          const s = await this.d.jobs.transition(
            a.jobId,
            (cur) => startAttempt(cur.record, a.owner, p.placement, p.startedAt),
            a.stored ? { current: a.stored } : {},
          );
          a.stored = s;
          a.record = s.record;
          a.pending = undefined;
          return;
        } catch (err) {
          if (err instanceof TransitionRefused || err instanceof JobNotFoundError) {
            this.d.logger.warn(
              { jobId: a.jobId, attempt: a.owner.attempt, reason: err.message },
              'the record moved before the attempt was recorded as started (cancelled or given to another worker); killing it',
            );
            a.abort('lost');
            return;
          }
          const delay = backoff.next();
          this.d.logger.warn({ err: String(err), jobId: a.jobId, retryInMs: delay }, 'start write failed; retrying');
          await sleep(delay);
        }
      }
    })();
    return a.startWrite;
  }

  /**
   * A dispatch whose attempt the record says is already running here, but that this process is not running: its
   * outcome was never recorded (the write kept failing and the message came back). The work is gone; fail the attempt
   * (retryable) so the scheduler can try again, rather than leave the job `running` on a live worker forever.
   */
  private async recoverOwnAttempt(m: DispatchMessage, owner: AttemptOwner): Promise<boolean> {
    // A failed read is not "no record": it propagates, and the transport naks the dispatch for a later look
    // (dropping it would leave an unfinished attempt of ours `running` for good).
    const cur = await this.d.jobs.get(m.jobId, { consistent: true });
    const r = cur?.record;
    if (
      !r ||
      r.status !== 'running' ||
      r.workerId !== owner.workerId ||
      r.generation !== owner.generation ||
      r.attempts !== owner.attempt ||
      this.running.has(m.jobId)
    ) {
      return false;
    }
    this.d.logger.warn({ jobId: m.jobId, attempt: m.attempt }, 'own attempt found unfinished; failing it');
    const error = jobError('INTERNAL', 'the worker lost track of this attempt before recording its outcome', true);
    await this.d.jobs
      .tryTransition(m.jobId, (c) => failAttempt(c.record, owner, error, this.d.clock.now()))
      .catch((err: unknown) => this.d.logger.warn({ err, jobId: m.jobId }, 'could not fail the lost attempt'));
    return true;
  }

  private async finish(
    m: DispatchMessage,
    attempt: RunningAttempt,
    outcome: Outcome,
    ctx: AttemptSettlement,
  ): Promise<void> {
    const now = () => this.d.clock.now();
    const owner = attempt.owner;
    // A start write under way settles first (it gives up once the process is over): the outcome then knows whether it
    // records the start too.
    await attempt.startWrite;
    const pending = attempt.pending;
    if (pending && outcome.kind === 'shutdown') {
      // Handed back before its start was recorded: the record still says queued for this attempt, so there is
      // nothing to undo; the scheduler gives the job its place back at once.
      this.released(m, 'handed back before its start was recorded');
      await ctx.ackAck();
      return;
    }
    /** The outcome applied to the running record; or, while the start is unrecorded, both in one revision. */
    const own =
      (end: (running: JobRecord) => Transition) =>
      (cur: StoredJob): Transition =>
        pending && cur.record.status === 'queued'
          ? startAndEnd(cur.record, owner, pending.placement, pending.startedAt, end)
          : end(cur.record);
    let decide: ((cur: StoredJob) => Transition) | undefined;
    switch (outcome.kind) {
      case 'ok':
        decide = own((r) => completeAttempt(r, owner, outcome.result, now()));
        break;
      case 'fail':
        decide = own((r) => failAttempt(r, owner, outcome.error, now(), outcome.gpuMemoryMb));
        break;
      case 'timeout':
        decide = own((r) =>
          failAttempt(r, owner, jobError('TIMEOUT', `attempt exceeded ${r.timeoutSeconds} s`, true), now()),
        );
        break;
      case 'cancel':
        decide = own((r) => cancelAttempt(r, owner, now()));
        break;
      case 'shutdown':
        decide = (cur) => handBack(cur.record, owner, now());
        break;
      case 'fenced':
        // Killed by this worker's own watchdog (lease not renewed for 60 % of the lost period). The scheduler may
        // never declare the worker lost (heartbeats can resume before its deadline), so the attempt is ended here,
        // with compare-and-set naming it: it loses cleanly to the scheduler's verdict or a newer attempt.
        decide = own((r) =>
          failAttempt(
            r,
            owner,
            jobError(
              'WORKER_LOST',
              'the worker could not renew its lease, so it killed the attempt before another worker could be given it',
              true,
            ),
            now(),
          ),
        );
        break;
      case 'unreachable':
        // Killed because the lease could not be renewed while the broker was out of reach (a node holding the
        // workers bucket restarting, the whole cluster restarting, this worker cut off from it): the job did nothing
        // wrong, so the attempt goes back to the queue without being charged. Compare-and-set naming the attempt, as
        // for `fenced`: if the scheduler declared the worker lost (silent while it could read the bucket), its verdict
        // stands and costs the attempt.
        decide = (cur) => handBack(cur.record, owner, now());
        break;
      case 'lost':
        decide = undefined;
        break;
    }
    if (decide) {
      const written = await this.writeOutcome(m, owner, decide, attempt.stored);
      if (written === 'gave-up') {
        // Redelivered later: recoverOwnAttempt then ends the attempt (or finds it ended by the scheduler).
        ctx.nak(5_000);
        return;
      }
      if (written && written.status === 'failed' && written.upload?.url) await this.uploadError(written);
    }
    if (outcome.kind === 'fenced' || outcome.kind === 'unreachable') {
      // The outcome is recorded (or the scheduler's verdict won); acking may not reach a broker still out of reach.
      ctx.ack();
      return;
    }
    await ctx.ackAck();
  }

  /**
   * Writes the outcome with compare-and-set, retrying NATS failures with backoff. Returns the record as written,
   * undefined when the attempt is no longer this worker's, or 'gave-up' after `outcomeRetryMs` of failures.
   */
  private async writeOutcome(
    m: DispatchMessage,
    owner: AttemptOwner,
    decide: (cur: StoredJob) => Transition,
    current?: StoredJob,
  ): Promise<JobRecord | undefined | 'gave-up'> {
    const deadline = this.d.clock.now().getTime() + (this.d.outcomeRetryMs ?? 600_000);
    const backoff = new Backoff({ initialMs: 250, maxMs: 5_000, jitter: false });
    for (let i = 0; ; i++) {
      try {
        // The revision this attempt wrote last is tried first; a failed try reads the record afresh.
        return (await this.d.jobs.transition(m.jobId, decide, i === 0 && current ? { current } : {})).record;
      } catch (err) {
        if (err instanceof TransitionRefused || err instanceof JobNotFoundError) {
          this.d.logger.warn(
            { jobId: m.jobId, attempt: m.attempt, reason: err.message },
            'attempt no longer ours; outcome dropped',
          );
          return undefined;
        }
        if (this.d.clock.now().getTime() >= deadline) {
          this.d.logger.error({ err, jobId: m.jobId }, 'outcome could not be recorded; giving the dispatch back');
          return 'gave-up';
        }
        const delay = backoff.next();
        this.d.logger.warn({ err: String(err), jobId: m.jobId, retryInMs: delay }, 'outcome write failed; retrying');
        await sleep(delay);
      }
    }
  }

  /** PUTs the error document to `upload.url` (best effort, 3 attempts with backoff; a failure is only logged). */
  private async uploadError(r: JobRecord): Promise<void> {
    const doc: UploadErrorDocument = {
      id: r.id,
      status: 'failed',
      attempts: r.attempts,
      finishedAt: r.finishedAt,
      error: {
        code: r.error?.code ?? 'INTERNAL',
        message: r.error?.message ?? 'failed',
        ...(r.error?.detail ? { detail: r.error.detail } : {}),
      },
    };
    try {
      await putToUrl(r.upload!.url, { json: doc }, this.d.transfers, new AbortController().signal);
      this.d.logger.info({ jobId: r.id }, 'error document uploaded to upload.url');
    } catch (err) {
      this.d.logger.warn({ err: String(err), jobId: r.id }, 'could not upload the error document to upload.url');
    }
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
      lastWrite = this.d.clock.now().getTime();
      writing = writing.then(async () => {
        // Progress is written on the running revision: an attempt whose start is not recorded yet writes it now.
        await this.writeStart(attempt);
        if (attempt.pending || attempt.reason) return;
        try {
          const s = await this.d.jobs.transition(
            attempt.jobId,
            (cur) => reportProgress(cur.record, attempt.owner, p, this.d.clock.now()),
            attempt.stored ? { current: attempt.stored } : {},
          );
          attempt.record = s.record;
          attempt.stored = s;
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
        const wait = this.d.progressIntervalMs - (this.d.clock.now().getTime() - lastWrite);
        if (wait <= 0) write();
        else timer ??= setTimeout(write, wait);
      },
      settle: async () => {
        if (timer) clearTimeout(timer);
        timer = undefined;
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
      // An attempt whose start is not recorded (or was read just before its start write landed) finds the record
      // still queued for it: nothing else leaves it so (a later attempt or generation changes `attempts`).
      const unrecorded =
        r.status === 'queued' && r.generation === a.owner.generation && r.attempts === a.owner.attempt - 1;
      if (unrecorded) continue;
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
