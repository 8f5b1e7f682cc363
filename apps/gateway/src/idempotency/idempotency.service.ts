/**
 * `Idempotency-Key` for submits (`POST /v1/jobs`, and `POST /v1/batches` too), kept 24 h in the
 * `gantry_idempotency_v1` bucket (its TTL). The entry is **claimed before the job is written** with an atomic
 * create, and it reserves the id the request will create:
 *
 * - the first request claims the key and creates the job with the reserved id (202);
 * - a repeat with the same tenant, key and body finds the entry and answers with the job (200), creating nothing;
 *   if that job does not exist (the first request was refused after claiming, or its gateway died before the
 *   write), the repeat creates it **with the reserved id**, so two racing repeats still make one job;
 * - the same key with a different body is a 422 and changes nothing.
 *
 * The key is scoped by tenant and route and stored as a SHA-256 digest (any printable characters are allowed in the
 * header; KV keys are not that liberal).
 */
import { createHash } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { CHANNELS, BUCKETS, type Clock, type IdempotencyEntry } from '@gantry/contracts';
import { decodePayload, isWrongLastSequence } from '@gantry/jetstream';
import type { KV } from '@nats-io/kv';
import { bodyHash } from '../http/json-shape';
import { problems } from '../http/problem';
import { GatewayNats } from '../nats/gateway-nats';
import { CLOCK } from '../tokens';

export const IDEMPOTENCY_HEADER = 'idempotency-key';
const KEY_PATTERN = /^[\x20-\x7e]{1,255}$/;

export type IdempotencyClaim =
  /** The key is new: create with `id`. */
  | { fresh: true; id: string }
  /** The key was used before with the same body: answer with `entry.id` (create it with that id if missing). */
  | { fresh: false; entry: IdempotencyEntry };

/** The header's value, undefined when absent; a 400 when it is empty, too long or not printable ASCII. */
export function parseIdempotencyKey(raw: string | string[] | undefined): string | undefined {
  if (raw === undefined) return undefined;
  if (Array.isArray(raw) || !KEY_PATTERN.test(raw)) {
    throw problems.validation(
      [{ field: 'Idempotency-Key', message: 'must be 1 to 255 printable ASCII characters, sent once' }],
      'the Idempotency-Key header is not valid',
    );
  }
  return raw;
}

/** What a submit knows of its Idempotency-Key: the key and its body's hash, or nothing. */
export interface IdempotentRequest {
  idempotencyKey?: string;
  bodyHash?: string;
}

/**
 * The key (from `parseIdempotencyKey`) with the hash of the body it guards. Call it after validation: hashing recurses,
 * and validation is what bounds the body's depth.
 */
export function idempotentRequest(idempotencyKey: string | undefined, body: unknown): IdempotentRequest {
  return idempotencyKey === undefined ? {} : { idempotencyKey, bodyHash: bodyHash(body) };
}

function isKeyExists(err: unknown): boolean {
  return isWrongLastSequence(err);
}

@Injectable()
export class IdempotencyService {
  private kv: Promise<KV> | undefined;

  constructor(
    @Inject(GatewayNats) private readonly nats: GatewayNats,
    @Inject(CLOCK) private readonly clock: Clock,
  ) {}

  private bucket(): Promise<KV> {
    this.kv ??= this.nats
      .handle()
      .kvm.open(BUCKETS.idempotency)
      .catch((err: unknown) => {
        this.kv = undefined;
        throw err;
      });
    return this.kv;
  }

  static storageKey(tenant: string, kind: IdempotencyEntry['kind'], key: string): string {
    return `${kind}.${tenant}.${createHash('sha256').update(key).digest('hex')}`;
  }

  /**
   * Claims `key` for a request whose body hashes to `bodyHash`, reserving `newId` for what it creates; or returns the
   * entry of an earlier request with the same body. A different body is a 422.
   */
  async claim(
    tenant: string,
    kind: IdempotencyEntry['kind'],
    key: string,
    bodyHash: string,
    newId: string,
  ): Promise<IdempotencyClaim> {
    const kv = await this.bucket();
    const k = IdempotencyService.storageKey(tenant, kind, key);
    const entry: IdempotencyEntry = { v: 1, kind, id: newId, bodyHash, createdAt: this.clock.now().toISOString() };
    for (let round = 0; round < 4; round++) {
      try {
        await kv.create(k, JSON.stringify(entry));
        return { fresh: true, id: newId };
      } catch (err) {
        if (!isKeyExists(err)) throw err;
      }
      const cur = await kv.get(k);
      // Deleted or expired between our create and get: try to claim again.
      if (!cur || cur.operation !== 'PUT') continue;
      const existing = decodePayload(CHANNELS.idempotency, cur.value);
      if (existing.bodyHash !== bodyHash) {
        throw problems.unprocessable(
          'this Idempotency-Key was used with a different body in the last 24 hours; use a new key for a new request',
        );
      }
      return { fresh: false, entry: existing };
    }
    throw problems.unavailable('the Idempotency-Key store is busy; try again', 1);
  }
}
