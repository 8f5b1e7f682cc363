/**
 * One typed client for every request/reply declaration (`SCHEDULER_RPC.*`, `NOTIFIER_RPC.*`, `WORKER_RPC.*.to(id)`):
 * the request is typed by the declaration, the reply checked against it. Failures: {@link RpcUnavailableError}
 * (nobody answered in time), {@link RpcError} (an error reply, or 502 for a reply that breaks the contract).
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { NoRequest, Rpc } from '@gantry/contracts';
import { rpcCall, type RpcCallOptions } from './rpc';

export interface RpcClientOptions {
  /** The connection to use, read at each call (a process may reconnect). */
  connection: () => NatsConnection;
  /** Default request timeout. */
  timeoutMs: number;
}

/** The arguments after the RPC: the request (optional for operations that take none) and per-call options. */
export type RpcArgs<Req> = [Req] extends [NoRequest]
  ? [request?: Req, options?: Partial<RpcCallOptions>]
  : [request: Req, options?: Partial<RpcCallOptions>];

export class RpcClient {
  constructor(private readonly options: RpcClientOptions) {}

  call<Req, Res>(rpc: Rpc<Req, Res>, ...[request, options]: RpcArgs<Req>): Promise<Res> {
    return rpcCall(this.options.connection(), rpc, request, {
      timeoutMs: options?.timeoutMs ?? this.options.timeoutMs,
      ...(options?.parent ? { parent: options.parent } : {}),
    });
  }
}
