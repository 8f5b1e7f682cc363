import type { GpuRequest } from '../job';

/** A field-level validation error, as it appears in problem+json `errors`. */
export interface FieldError {
  field: string;
  message: string;
}

/**
 * One typed declaration of a job type, shared by the gateway (which refuses bad input at submit) and the worker
 * (which checks again before running, and executes it).
 */
export interface JobTypeDefinition {
  readonly name: string;
  readonly kind: 'builtin' | 'catalog';
  /** Field errors for a client's `input` (paths relative to `input`); empty when valid. */
  validate(input: unknown): FieldError[];
  /** GPU needs applied when the client sends none. */
  readonly defaultGpu?: GpuRequest;
  /** Timeout applied when the client sends none (else DEFAULT_JOB_TIMEOUT_SECONDS). */
  readonly defaultTimeoutSeconds?: number;
  /**
   * How many output files a valid `input` makes the job write. A job with `upload.url` must write exactly one (the
   * presigned URL names one object); types without outputs leave this out.
   */
  outputCount?(input: unknown): number;
  /**
   * The http(s) and s3:// URLs a valid `input` makes the worker fetch, as `[field, url]`, so the gateway can refuse
   * private addresses and s3:// objects outside the input policy at submit (the worker refuses both again).
   */
  inputUrls?(input: unknown): [field: string, url: string][];
  /**
   * The parent outputs (`job:<parent>/<name>`, v1.1) a valid `input` makes the worker read, as `[field, url]`, so the
   * gateway can check each against `dependsOn` and the parent's declared outputs.
   */
  parentOutputs?(input: unknown): [field: string, url: string][];
  /** The output file names a valid `input` declares (what a child may name as `job:<this job>/<name>`). */
  outputNames?(input: unknown): string[];
}

/** A file name a job may declare (input, output, catalog download): no path, no leading dot or dash. */
export const SAFE_FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Rejects keys that are not in `allowed`. */
export function unknownKeys(obj: Record<string, unknown>, allowed: readonly string[], prefix: string): FieldError[] {
  return Object.keys(obj)
    .filter((k) => !allowed.includes(k))
    .map((k) => ({ field: `${prefix}${k}`, message: 'is not a known field' }));
}

export function checkInt(
  obj: Record<string, unknown>,
  key: string,
  min: number,
  max: number,
  prefix: string,
): FieldError[] {
  const v = obj[key];
  if (v === undefined) return [];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    return [{ field: `${prefix}${key}`, message: `must be an integer from ${min} to ${max}` }];
  }
  return [];
}
