import { monotonicFactory } from 'ulid';

const next = monotonicFactory();

/** Job and batch ids: ULIDs (26 characters, sortable by creation time, safe as NATS subject tokens). */
export function newId(): string {
  return next();
}

/** Worker ids: `<prefix>-<ulid>`, unique per process so a restarted worker never inherits old dispatches. */
export function newWorkerId(prefix: string): string {
  const clean = prefix.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 30) || 'worker';
  return `${clean}-${next().toLowerCase()}`;
}
