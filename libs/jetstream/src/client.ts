/**
 * The Nest client side of the transport: `emit(subject, data)` is a durable JetStream publish (resolving to the
 * PubAck), `send(subject, data)` a core NATS request answered with an RpcReply envelope. Both carry trace headers.
 */
import { ClientProxy, type ReadPacket, type WritePacket } from '@nestjs/microservices';
import type { PubAck } from '@nats-io/jetstream';
import type { NatsHandle } from './connection';
import { publishJson } from './publisher';
import { rpcRequest } from './rpc';

export interface JetStreamClientOptions {
  nats: NatsHandle;
  /** Request/reply timeout. */
  timeoutMs?: number;
}

export class JetStreamClientProxy extends ClientProxy {
  constructor(private readonly options: JetStreamClientOptions) {
    super();
  }

  override async connect(): Promise<NatsHandle> {
    return this.options.nats;
  }

  /** The connection belongs to the process (NatsHandle); closing the client does not close it. */
  override async close(): Promise<void> {}

  override unwrap<T>(): T {
    return this.options.nats.nc as T;
  }

  protected override publish(packet: ReadPacket, callback: (packet: WritePacket) => void): () => void {
    let disposed = false;
    rpcRequest<unknown>(this.options.nats.nc, this.normalizePattern(packet.pattern), packet.data, {
      timeoutMs: this.options.timeoutMs ?? 2_000,
    }).then(
      (response) => {
        if (!disposed) callback({ response, isDisposed: true });
      },
      (err: unknown) => {
        if (!disposed) callback({ err, isDisposed: true });
      },
    );
    return () => {
      disposed = true;
    };
  }

  protected override async dispatchEvent<T = PubAck>(packet: ReadPacket): Promise<T> {
    return (await publishJson(this.options.nats.js, this.normalizePattern(packet.pattern), packet.data)) as T;
  }
}
