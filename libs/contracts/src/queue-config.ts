/**
 * The runtime queue configuration (`gantry_config_v1`, key `queue`): its bounds and its decoding, declared once for
 * the gateway (which validates `PUT /v1/queue/config`), the scheduler (which writes the record) and every reader of
 * the stored record.
 */
import type { QueueConfigRecord, QueueConfigUpdate } from './messages';

/** Inclusive bounds of the values `PUT /v1/queue/config` may set. */
export const QUEUE_CONFIG_BOUNDS = {
  /** Global concurrency tokens; 0 stops every new dispatch. */
  maxConcurrentJobs: { min: 0, max: 1_000_000 },
  /** Queued + retrying jobs before a submit gets 429. */
  maxQueueSize: { min: 1, max: 100_000_000 },
} as const;

/** The record before any admin change: dispatching, accepting, caps from the environment. */
export const INITIAL_QUEUE_CONFIG: QueueConfigRecord = Object.freeze({
  paused: false,
  draining: false,
  updatedAt: new Date(0).toISOString(),
});

/** Every reason why `u` is not a valid queue config update (none when it is). */
export function queueConfigUpdateProblems(u: unknown): string[] {
  if (typeof u !== 'object' || u === null || Array.isArray(u)) return ['the body must be a JSON object'];
  const out: string[] = [];
  const body = u as Record<string, unknown>;
  for (const key of Object.keys(QUEUE_CONFIG_BOUNDS) as (keyof typeof QUEUE_CONFIG_BOUNDS)[]) {
    const v = body[key];
    if (v === undefined) continue;
    const { min, max } = QUEUE_CONFIG_BOUNDS[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
      out.push(`${key} must be an integer from ${min} to ${max}`);
  }
  return out;
}

/** Thrown by {@link parseQueueConfigUpdate} and {@link parseQueueConfigRecord}. */
export class InvalidQueueConfigError extends Error {
  readonly code = 'INVALID_QUEUE_CONFIG';
  constructor(readonly problems: string[]) {
    super(problems.join('; '));
    this.name = 'InvalidQueueConfigError';
  }
}

/** The update's known fields, checked against {@link QUEUE_CONFIG_BOUNDS}; throws {@link InvalidQueueConfigError}. */
export function parseQueueConfigUpdate(u: unknown): QueueConfigUpdate {
  const problems = queueConfigUpdateProblems(u);
  if (problems.length) throw new InvalidQueueConfigError(problems);
  const body = u as QueueConfigUpdate;
  return {
    ...(body.maxConcurrentJobs !== undefined ? { maxConcurrentJobs: body.maxConcurrentJobs } : {}),
    ...(body.maxQueueSize !== undefined ? { maxQueueSize: body.maxQueueSize } : {}),
  };
}

/**
 * A stored record, decoded: flags must be booleans and caps within bounds (a record written by hand or by an older
 * release with other bounds is refused rather than applied half-understood); throws {@link InvalidQueueConfigError}.
 */
export function parseQueueConfigRecord(v: unknown): QueueConfigRecord {
  const problems = queueConfigUpdateProblems(v);
  if (problems.length) throw new InvalidQueueConfigError(problems);
  const r = v as Record<string, unknown>;
  for (const flag of ['paused', 'draining'] as const)
    if (typeof r[flag] !== 'boolean') problems.push(`${flag} must be a boolean`);
  if (typeof r['updatedAt'] !== 'string') problems.push('updatedAt must be a string');
  if (problems.length) throw new InvalidQueueConfigError(problems);
  return {
    paused: r['paused'] as boolean,
    draining: r['draining'] as boolean,
    ...parseQueueConfigUpdate(v),
    updatedAt: r['updatedAt'] as string,
  };
}
