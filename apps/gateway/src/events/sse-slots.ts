/**
 * The event-stream slots of one gateway, shared by every Server-Sent Events route (a job's events, the queue's state):
 * at most SSE_MAX_STREAMS open at once (503 beyond) and at most SSE_MAX_STREAMS_PER_KEY per API key (429 beyond), so
 * one key cannot take every slot.
 */
import { Inject, Injectable } from '@nestjs/common';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config';
import { problems } from '../http/problem';

@Injectable()
export class SseSlots {
  private taken = 0;
  /** Streams open per API key id on this gateway (absent: none). */
  private readonly perKey = new Map<string, number>();

  constructor(@Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig) {}

  /** Slots taken, streams being set up included. */
  get open(): number {
    return this.taken;
  }

  /**
   * Takes one slot for `keyId`, synchronously, so concurrent requests cannot overshoot either cap. `poll` names what
   * to use instead in the refusal. Returns the release, idempotent.
   */
  take(keyId: string, poll: string): () => void {
    if (this.taken >= this.config.SSE_MAX_STREAMS) {
      throw problems.unavailable(
        `this gateway serves ${this.config.SSE_MAX_STREAMS} event streams at most (SSE_MAX_STREAMS); try again or poll ${poll}`,
        5,
        'sse-capacity',
      );
    }
    const held = this.perKey.get(keyId) ?? 0;
    if (held >= this.config.SSE_MAX_STREAMS_PER_KEY) {
      throw problems.tooMany(
        `this API key holds ${held} open event streams on this gateway, the most it may (SSE_MAX_STREAMS_PER_KEY); ` +
          `close one or poll ${poll}`,
        5,
        'sse-key-capacity',
      );
    }
    this.taken++;
    this.perKey.set(keyId, held + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.taken--;
      const n = (this.perKey.get(keyId) ?? 1) - 1;
      if (n > 0) this.perKey.set(keyId, n);
      else this.perKey.delete(keyId);
    };
  }
}
