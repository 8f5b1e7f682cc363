import { EventPattern, MessagePattern } from '@nestjs/microservices';
import type { Channel, Rpc } from '@gantry/contracts';
import type { JetStreamContext, NatsRpcContext } from './context';
import type { NO_REPLY } from './no-reply';

type MaybePromise<T> = T | PromiseLike<T>;

/** What a `@JetStreamHandler` method may look like: it takes the channel's payload (and the context); its result is ignored. */
export type JetStreamHandlerMethod<T> = (payload: T, ctx: JetStreamContext) => unknown;

/** What a `@RpcHandler` method may look like: it takes the RPC's request and answers its reply (or stays silent). */
export type RpcHandlerMethod<Req, Res> = (request: Req, ctx: NatsRpcContext) => MaybePromise<Res | typeof NO_REPLY>;

/** Metadata the transport reads from a handler (`MessageHandler.extras`). */
export interface HandlerExtras {
  channel?: Channel<unknown>;
  rpc?: Rpc<unknown, unknown>;
}

/**
 * Marks a controller method as the handler of a JetStream consumer binding (see {@link JetStreamServerOptions}).
 * The transport decodes each message through `channel` (a payload that fails its check is terminated as poison,
 * the handler never sees it); the method receives the typed payload (`@Payload()`) and a {@link JetStreamContext}
 * (`@Ctx()`). The compiler checks the method against the channel's payload type.
 */
export function JetStreamHandler<T>(
  binding: string,
  channel: Channel<T>,
): <M extends JetStreamHandlerMethod<T>>(
  target: object,
  key: string | symbol,
  descriptor: TypedPropertyDescriptor<M>,
) => void {
  const extras: HandlerExtras = { channel };
  return (target, key, descriptor) => EventPattern<string>(binding, extras)(target, key, descriptor);
}

/**
 * Marks a controller method as the handler of a request/reply declaration (`SCHEDULER_RPC.*`, `NOTIFIER_RPC.*`): it
 * subscribes to the RPC's subject, the transport answers a 400 to a request that fails the RPC's request check, and
 * the compiler checks the method against the RPC's request and reply types.
 */
export function RpcHandler<Req, Res>(
  rpc: Rpc<Req, Res>,
): <M extends RpcHandlerMethod<Req, Res>>(
  target: object,
  key: string | symbol,
  descriptor: TypedPropertyDescriptor<M>,
) => void {
  const extras: HandlerExtras = { rpc };
  return (target, key, descriptor) => MessagePattern<string>(rpc.subject, extras)(target, key, descriptor);
}
