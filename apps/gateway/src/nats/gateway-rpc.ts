import { Inject, Injectable } from '@nestjs/common';
import { RpcClient } from '@gantry/jetstream';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config';
import { GatewayNats } from './gateway-nats';

/**
 * The gateway's one way to call another service: the typed client of the request/reply declarations
 * (`SCHEDULER_RPC.*`, `NOTIFIER_RPC.*`, `WORKER_RPC.*`), over the gateway's connection, `RPC_TIMEOUT_MS` by default.
 * Nobody answering is an `RpcUnavailableError` (503 unless the caller maps it), an error reply an `RpcError` with
 * its status, a reply that breaks its declaration an `RpcError` 502.
 */
@Injectable()
export class GatewayRpc extends RpcClient {
  constructor(@Inject(GatewayNats) nats: GatewayNats, @Inject(GATEWAY_CONFIG) config: GatewayConfig) {
    super({ connection: () => nats.handle().nc, timeoutMs: config.RPC_TIMEOUT_MS });
  }
}
