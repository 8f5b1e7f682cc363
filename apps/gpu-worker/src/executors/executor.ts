/** How a job type runs on a worker. One executor per job type, found at boot (a type with none or two is an error). */
import type { ErrorCode, JobOutput, JobRecord } from '@gantry/contracts';
import type { Logger } from '@gantry/telemetry';
import type { AttemptSandbox } from '../sandbox/sandbox';

/** The worker's lease as a job process sees it: renewals arrive on every successful heartbeat. */
export interface Lease {
  /** Kill the job when no renewal arrived for this long (0 = never). */
  readonly deadlineMs: number;
  /** Calls `fn` on every renewal; returns the function that unsubscribes. */
  onRenew(fn: () => void): () => void;
}

export interface AttemptContext {
  readonly record: JobRecord;
  readonly attempt: number;
  /** Private scratch directory of this attempt, removed afterwards ('' for an executor that declares it needs none). */
  readonly scratchDir: string;
  /** Environment for child processes (CUDA_VISIBLE_DEVICES set to the job's GPUs). */
  readonly env: Readonly<Record<string, string>>;
  /** Aborted on cancel, timeout, lost lease or shutdown; executors must stop promptly (kill their process group). */
  readonly signal: AbortSignal;
  /** Reports progress; throttled by the runner before it becomes a record revision. */
  progress(percent: number, stage?: string): void;
  /** The worker's lease: job processes are killed when it is not renewed in time (see process-runner). */
  readonly lease?: Lease;
  /**
   * Whether this job may read `s3://bucket/key` with the worker's credentials: undefined when it may, else the reason
   * it may not. Absent: any object may be read.
   */
  s3ReadRefusal?(bucket: string, key: string): Promise<string | undefined>;
  /**
   * The `s3://` URL of a parent output input (`job:<parent id>/<name>`, v1.1) after the parent checks, or a
   * JobFailure (see runner/parent-outputs.ts). Absent: parent outputs are refused.
   */
  parentOutput?(url: string): Promise<string>;
  readonly logger: Logger;
  /**
   * The attempt's OS sandbox and disk caps (absent for an executor without scratch, and in unit tests that run the
   * bare process runner). Every job process runs through it.
   */
  readonly sandbox?: AttemptSandbox;
}

/**
 * Bytes the next download may take: MAX_INPUT_BYTES, or what MAX_SCRATCH_BYTES leaves after `used` bytes already
 * downloaded — whichever is smaller (undefined without a sandbox: no cap).
 */
export function downloadBudget(ctx: AttemptContext, used: number): number | undefined {
  if (!ctx.sandbox) return undefined;
  return Math.max(0, Math.min(ctx.sandbox.maxInputBytes, ctx.sandbox.maxScratchBytes - used));
}

export interface ExecutionResult {
  result?: unknown;
  outputs?: JobOutput[];
}

export interface JobExecutor {
  /** False for an executor that never touches files: the attempt then gets no scratch directory (no syscalls). */
  readonly needsScratch?: boolean;
  /** Job type names this executor runs. */
  readonly types: readonly string[];
  run(ctx: AttemptContext): Promise<ExecutionResult>;
}

/** A failed attempt with a stable code; `retryable` decides whether the scheduler may try again. */
export class JobFailure extends Error {
  override readonly name = 'JobFailure';
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly retryable: boolean,
    readonly detail?: string,
    options: { cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
  }
}
