import { BaseRpcContext } from '@nestjs/microservices';
import type { JsMsg } from '@nats-io/jetstream';
import type { Msg, MsgHdrs, NatsConnection } from '@nats-io/transport-node';
import { replyMux } from './reply-mux';

/** The `+ACK` body. */
const ACK = Uint8Array.of(43, 65, 67, 75);

export type Settlement = 'pending' | 'ack' | 'nak' | 'term';

/**
 * What a JetStream handler receives as its context (`@Ctx()`). The handler may settle the message itself;
 * if it does not, the transport acks on success and decides by error class on failure.
 */
export class JetStreamContext extends BaseRpcContext<[JsMsg, string]> {
  private settlement: Settlement = 'pending';

  /**
   * `nc`: the connection the message came on. With it, a confirmed ack goes over the connection's reply mux
   * (reply-mux.ts) instead of nats.js's `ackAck`, whose request builds a `RequestError` with its stack trace after
   * every answer (≈ 1.5 % of the worker's CPU, one per dispatch message; docs/performance.md).
   */
  constructor(
    message: JsMsg,
    binding: string,
    private readonly nc?: NatsConnection,
  ) {
    super([message, binding]);
  }

  get message(): JsMsg {
    return this.args[0];
  }

  /** The binding (logical consumer name) this message came through. */
  get binding(): string {
    return this.args[1];
  }

  get subject(): string {
    return this.message.subject;
  }

  get headers(): MsgHdrs | undefined {
    return this.message.headers;
  }

  /** 1 on the first delivery. Counts naks and AckWait expiries alike. */
  get deliveryCount(): number {
    return this.message.info.deliveryCount;
  }

  get streamSequence(): number {
    return this.message.seq;
  }

  get settled(): Settlement {
    return this.settlement;
  }

  /** Done: the broker forgets the message (WorkQueue) or moves the consumer on. */
  ack(): void {
    if (this.settlement !== 'pending') return;
    this.settlement = 'ack';
    this.message.ack();
  }

  /** Acks and waits for the broker to confirm it, for acks whose loss would matter. */
  async ackAck(timeoutMs = 5_000): Promise<boolean> {
    if (this.settlement !== 'pending') return this.settlement === 'ack';
    this.settlement = 'ack';
    // JsMsgImpl's `reply` (the ack subject), not in the JsMsg type.
    const reply = (this.message as JsMsg & { reply?: string }).reply;
    if (!this.nc || !reply) return this.message.ackAck({ timeout: timeoutMs });
    // The broker answers an ack that has a reply subject once it has recorded it (an empty message): the same
    // exchange as ackAck, with the same timeout and the same errors (a timeout, a closed connection).
    const prefix = (this.nc as NatsConnection & { options?: { inboxPrefix?: string } }).options?.inboxPrefix;
    await replyMux(this.nc, prefix).request(reply, ACK, { timeoutMs });
    return true;
  }

  /** Not now: redeliver after `delayMs` (a nak delay survives a broker restart). */
  nak(delayMs?: number): void {
    if (this.settlement !== 'pending') return;
    this.settlement = 'nak';
    this.message.nak(delayMs);
  }

  /**
   * Never: the message cannot be processed; it is not redelivered. The reason is for the caller's logs only:
   * `+TERM <reason>` needs nats-server 2.10.4, and 2.9 ignores such a term, leaving the message pending.
   */
  term(): void {
    if (this.settlement !== 'pending') return;
    this.settlement = 'term';
    this.message.term();
  }

  /** Still working: resets the AckWait timer. The transport calls it on a timer while the handler runs. */
  working(): void {
    if (this.settlement === 'pending') this.message.working();
  }
}

/** The context of a request/reply handler (`@MessagePattern`) over core NATS. */
export class NatsRpcContext extends BaseRpcContext<[Msg]> {
  constructor(message: Msg) {
    super([message]);
  }
  get subject(): string {
    return this.args[0].subject;
  }
  get headers(): MsgHdrs | undefined {
    return this.args[0].headers;
  }
}
