/**
 * The rate limiter's shared counters in the `gantry_ratelimit_v1` KV bucket: key `<subject>.<window>`, value
 * {@link RateLimitWindow}. Reservations are compare-and-set on the key's revision, so replicas never over-grant.
 * The bucket's TTL (2 min) removes old windows; only the current and the previous one are ever read.
 */
import { CHANNELS, BUCKETS, type RateLimitWindow } from '@gantry/contracts';
import { decodePayload, isWrongLastSequence } from '@gantry/jetstream';
import type { KV, KvEntry } from '@nats-io/kv';
import type { QuotaStore } from './rate-limiter';

const MAX_CAS_ROUNDS = 16;

function reservedOf(e: KvEntry | null): number {
  if (!e || e.operation !== 'PUT') return 0;
  try {
    const n = decodePayload(CHANNELS.rateLimit, e.value).reserved;
    return Number.isFinite(n) && n > 0 ? n : 0;
  } catch {
    return 0;
  }
}

function isKeyExists(err: unknown): boolean {
  return isWrongLastSequence(err);
}

export class KvQuotaStore implements QuotaStore {
  private kv: Promise<KV> | undefined;

  /** `open` is called lazily (the gateway connects to NATS in the background). */
  constructor(private readonly open: (bucket: string) => Promise<KV>) {}

  private bucket(): Promise<KV> {
    this.kv ??= this.open(BUCKETS.rateLimit).catch((err: unknown) => {
      this.kv = undefined;
      throw err;
    });
    return this.kv;
  }

  private key(subject: string, window: number): string {
    return `${subject}.${window}`;
  }

  async total(subject: string, window: number): Promise<number> {
    const kv = await this.bucket();
    return reservedOf(await kv.get(this.key(subject, window)));
  }

  async reserve(
    subject: string,
    window: number,
    want: number,
    cap: number,
  ): Promise<{ granted: number; total: number }> {
    const kv = await this.bucket();
    const key = this.key(subject, window);
    let cur = 0;
    for (let round = 0; round < MAX_CAS_ROUNDS; round++) {
      const e = await kv.get(key);
      cur = reservedOf(e);
      const granted = Math.max(0, Math.min(want, cap - cur));
      if (granted === 0) return { granted: 0, total: cur };
      const value = JSON.stringify({ v: 1, reserved: cur + granted } satisfies RateLimitWindow);
      try {
        if (!e) await kv.create(key, value);
        else await kv.update(key, value, e.revision);
        return { granted, total: cur + granted };
      } catch (err) {
        if (!isKeyExists(err)) throw err;
        // Another replica reserved first: read again and retry.
      }
    }
    return { granted: 0, total: cur };
  }
}
