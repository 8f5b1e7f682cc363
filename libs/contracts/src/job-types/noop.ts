import { checkInt, isPlainObject, unknownKeys, type FieldError, type JobTypeDefinition } from './job-type';

/** `noop`: sleeps, reports progress, fails its first `failTimes` attempts, then completes with `result`. */
export interface NoopInput {
  durationMs?: number;
  progressSteps?: number;
  failTimes?: number;
  retryable?: boolean;
  result?: unknown;
}

export const NOOP_MAX_DURATION_MS = 3_600_000;

export const noopJobType: JobTypeDefinition = {
  name: 'noop',
  kind: 'builtin',
  defaultGpu: { count: 0, memoryMb: 0 },
  validate(input: unknown): FieldError[] {
    const p = 'input.';
    if (!isPlainObject(input)) return [{ field: 'input', message: 'must be an object' }];
    const errors: FieldError[] = [
      ...unknownKeys(input, ['durationMs', 'progressSteps', 'failTimes', 'retryable', 'result'], p),
      ...checkInt(input, 'durationMs', 0, NOOP_MAX_DURATION_MS, p),
      ...checkInt(input, 'progressSteps', 0, 1000, p),
      ...checkInt(input, 'failTimes', 0, 100, p),
    ];
    if (input.retryable !== undefined && typeof input.retryable !== 'boolean') {
      errors.push({ field: `${p}retryable`, message: 'must be a boolean' });
    }
    return errors;
  },
};
