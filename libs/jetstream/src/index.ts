export { NatsAuthConfigError, NatsHandle, natsAuthOptions, versionAtLeast } from './connection';
export type { NatsAuth, NatsHandleOptions } from './connection';
export {
  provision,
  ensureStream,
  ensureConsumer,
  ensureBucket,
  raiseLimit,
  assertReplicasSupported,
  replicasOf,
  MIN_SERVER_FOR_REPLICAS,
} from './provision';
export type { Topology } from './provision';
export {
  RetryLaterError,
  PoisonMessageError,
  ProvisionError,
  UnsupportedServerError,
  RpcError,
  RpcUnavailableError,
  isWrongLastSequence,
  isNotFound,
  isAlreadyExists,
  isNatsUnavailable,
} from './errors';
export { Backoff } from './backoff';
export type { BackoffOptions } from './backoff';
export { encodeJson, decodeJson, decodePayload } from './codec';
export type { PayloadContract } from './codec';
export { openSlowOrderedConsumer, orderedConsumerName } from './slow-consumer';
export type { SlowConsumerOptions } from './slow-consumer';
export { publishEncoded, publishJson } from './publisher';
export type { PublishOptions } from './publisher';
export { jsPublish, directGet, leaderGet } from './js-requests';
export type { JsPublishOptions, LeaderMsg } from './js-requests';
export { ReplyMux, replyMux, SWEEP_MS } from './reply-mux';
export { PublishHeaders } from './publish-headers';

export { coalesceWrites } from './write-coalescing';
export type { MuxRequestOptions } from './reply-mux';
export { rpcRequest, rpcCall, replyOk, replyError } from './rpc';
export type { RpcCallOptions } from './rpc';
export { RpcClient } from './rpc-client';
export type { RpcClientOptions, RpcArgs } from './rpc-client';
export { JetStreamContext, NatsRpcContext } from './context';
export type { Settlement } from './context';
export { JetStreamServer, NO_REPLY } from './server';
export { defaultNakDelayMs, settleAfterFailure } from './settle';
export type { FailureSettling } from './settle';
export type { ConsumerBinding, JetStreamServerOptions } from './server';
export { JetStreamClientProxy } from './client';
export type { JetStreamClientOptions } from './client';
export { JetStreamHandler, RpcHandler } from './decorators';
export type { JetStreamHandlerMethod, RpcHandlerMethod, HandlerExtras } from './decorators';
export { QueueConfigStore, QueueConfigConflictError } from './queue-config-store';
export type { QueueConfigPatch } from './queue-config-store';
export { ServiceHost, ReadinessHolder, CloseTimeoutError, closeInOrder, DEFAULT_CLOSE_STEP_MS } from './service-host';
export type { CloseStep, CloseFailure, ServiceHostOptions, ConnectOptions } from './service-host';
export { mapBounded, retry, sleep, Watermark, Pulse } from './async';
export type { RetryOptions } from './async';
