import type { NoopInput } from '@gantry/contracts';
import { sleep } from '@gantry/jetstream';
import { JobFailure, type AttemptContext, type ExecutionResult, type JobExecutor } from './executor';

/** `noop`: sleeps in `progressSteps` steps, fails its first `failTimes` attempts, then completes with `result`. */
export class NoopExecutor implements JobExecutor {
  readonly needsScratch = false;
  readonly types = ['noop'] as const;

  async run(ctx: AttemptContext): Promise<ExecutionResult> {
    const input = ctx.record.input as NoopInput;
    const duration = input.durationMs ?? 0;
    const steps = Math.max(1, input.progressSteps ?? 1);
    for (let i = 1; i <= steps; i++) {
      if (duration > 0) await sleep(duration / steps, ctx.signal);
      if (input.progressSteps) ctx.progress(Math.round((i / steps) * 100), `step ${i}/${steps}`);
    }
    if (ctx.attempt <= (input.failTimes ?? 0)) {
      const retryable = input.retryable ?? true;
      throw new JobFailure(
        'JOB_FAILED',
        `noop failed on purpose (attempt ${ctx.attempt} of the first ${input.failTimes})`,
        retryable,
      );
    }
    return input.result !== undefined ? { result: input.result } : {};
  }
}
