import { randomFillSync } from 'node:crypto';
import { monotonicFactory } from 'ulid';

// ulid draws one crypto random byte per character by default (16 calls per id, a visible cost on the submit path);
// drawing them from a pool refilled 4 KiB at a time keeps the same source and distribution (256 % 32 === 0).
const pool = new Uint8Array(4096);
let pos = pool.length;
function pooledRandom(): number {
  if (pos >= pool.length) {
    randomFillSync(pool);
    pos = 0;
  }
  return pool[pos++]! / 256;
}

const next = monotonicFactory(pooledRandom);

/** Job and batch ids: ULIDs (26 characters, sortable by creation time, safe as NATS subject tokens). */
export function newId(): string {
  return next();
}

/** Worker ids: `<prefix>-<ulid>`, unique per process so a restarted worker never inherits old dispatches. */
export function newWorkerId(prefix: string): string {
  const clean = prefix.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 30) || 'worker';
  return `${clean}-${next().toLowerCase()}`;
}
