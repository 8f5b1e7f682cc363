import { randomFillSync } from 'node:crypto';
import { monotonicFactory } from 'ulid';
import { isNoCallbackJobId } from './names';

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

/**
 * A new job's id: a ULID (upper case) for a job with a callback URL, the same in lower case (with at least one letter)
 * for a job without one, which puts its revisions on a subject the notifier never reads (`SUBJECTS.job`).
 */
export function newJobId(hasCallback: boolean): string {
  if (hasCallback) return next();
  for (;;) {
    const id = next().toLowerCase();
    // All digits (about once in 10^8 at today's timestamps) would read as an upper-case ULID: draw again.
    if (isNoCallbackJobId(id)) return id;
  }
}

const TOKEN_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/**
 * 8 random base64url characters (48 bits) from the same pool: a de-duplication nonce per write. Drawing them with
 * `randomBytes(6)` cost a crypto call and a Buffer per job record written (3 % of the gateway's CPU per batch job).
 */
export function randomToken(): string {
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (pos >= pool.length) {
      randomFillSync(pool);
      pos = 0;
    }
    // 256 % 64 === 0: every character equally likely.
    out += TOKEN_ALPHABET[pool[pos++]! & 63];
  }
  return out;
}

/** Worker ids: `<prefix>-<ulid>`, unique per process so a restarted worker never inherits old dispatches. */
export function newWorkerId(prefix: string): string {
  const clean = prefix.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 30) || 'worker';
  return `${clean}-${next().toLowerCase()}`;
}
