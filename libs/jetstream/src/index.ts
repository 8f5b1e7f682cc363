export { NatsAuthConfigError, NatsHandle, natsAuthOptions, versionAtLeast } from './connection';
export type { NatsAuth, NatsHandleOptions } from './connection';
export { provision, ensureStream, ensureConsumer, ensureBucket, raiseLimit } from './provision';
export type { Topology } from './provision';
export {
  RetryLaterError,
  PoisonMessageError,
  ProvisionError,
  RpcError,
  RpcUnavailableError,
  isWrongLastSequence,
  isNotFound,
} from './errors';
export { encodeJson, decodeJson } from './codec';
export { publishJson } from './publisher';
export type { PublishOptions } from './publisher';
export { rpcRequest, replyOk, replyError } from './rpc';
export { JetStreamContext, NatsRpcContext } from './context';
export type { Settlement } from './context';
export { JetStreamServer, NO_REPLY, defaultNakDelayMs } from './server';
export type { ConsumerBinding, JetStreamServerOptions } from './server';
export { JetStreamClientProxy } from './client';
export type { JetStreamClientOptions } from './client';
export { JetStreamHandler } from './decorators';
