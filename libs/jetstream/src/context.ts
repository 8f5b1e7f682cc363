import { BaseRpcContext } from '@nestjs/microservices';
import type { JsMsg } from '@nats-io/jetstream';
import type { Msg, MsgHdrs } from '@nats-io/transport-node';

export type Settlement = 'pending' | 'ack' | 'nak' | 'term';

/**
 * What a JetStream handler receives as its context (`@Ctx()`). The handler may settle the message itself;
 * if it does not, the transport acks on success and decides by error class on failure.
 */
export class JetStreamContext extends BaseRpcContext<[JsMsg, string]> {
  private settlement: Settlement = 'pending';

  constructor(message: JsMsg, binding: string) {
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
    return this.message.ackAck({ timeout: timeoutMs });
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
