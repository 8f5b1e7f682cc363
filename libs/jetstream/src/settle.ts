/**
 * How a consumed JetStream message is settled when its handler failed, for every consumer that runs handlers (the
 * transport, JetStreamServer; the notifier's tenant lanes): the one place that maps an error to ack-state.
 */
import type { JsMsg } from '@nats-io/jetstream';
import type { Logger } from '@gantry/telemetry';
import type { JetStreamContext } from './context';
import { PoisonMessageError, RetryLaterError } from './errors';

/** Exponential backoff for naks of unexpected errors: 1 s, 2 s, 4 s … capped at 30 s. */
export function defaultNakDelayMs(deliveryCount: number): number {
  return Math.min(30_000, 1_000 * 2 ** Math.max(0, deliveryCount - 1));
}

export interface FailureSettling {
  logger: Logger;
  /** What the message is, for the log lines: `message`, `delivery`. */
  item: string;
  /** Called before a poison message is terminated (counting it). */
  onPoison?: () => void;
}

/**
 * Settles `ctx` after its handler threw `err`: nothing if the handler settled it already (logged), `term` for a
 * {@link PoisonMessageError} (it can never succeed), `nak` with the error's delay for a {@link RetryLaterError}, and
 * otherwise `nak` with {@link defaultNakDelayMs} — redelivered later, never lost.
 */
export function settleAfterFailure(ctx: JetStreamContext, m: JsMsg, err: unknown, o: FailureSettling): void {
  if (ctx.settled !== 'pending') {
    o.logger.error({ err, subject: m.subject }, `handler failed after settling its ${o.item}`);
  } else if (err instanceof PoisonMessageError) {
    o.onPoison?.();
    o.logger.error({ err, subject: m.subject, seq: m.seq }, `poison ${o.item}; terminating it`);
    ctx.term();
  } else if (err instanceof RetryLaterError) {
    ctx.nak(err.delayMs);
  } else {
    const delay = defaultNakDelayMs(m.info.deliveryCount);
    o.logger.warn(
      { err, subject: m.subject, seq: m.seq, retryInMs: delay },
      `handler failed; redelivering the ${o.item} later`,
    );
    ctx.nak(delay);
  }
}
