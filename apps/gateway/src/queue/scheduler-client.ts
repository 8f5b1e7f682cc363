import { Inject, Injectable } from '@nestjs/common';
import { SUBJECTS, type SchedulerRpcOp } from '@gantry/contracts';
import { JetStreamClientProxy } from '@gantry/jetstream';
import { firstValueFrom } from 'rxjs';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config';
import { GatewayNats } from '../nats/gateway-nats';

/** Request/reply to the leading scheduler through the JetStream transport's client (timeouts → 503 problems). */
@Injectable()
export class SchedulerClient {
  constructor(
    @Inject(GatewayNats) private readonly nats: GatewayNats,
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
  ) {}

  async call<T>(op: SchedulerRpcOp, payload: unknown = {}, timeoutMs = this.config.RPC_TIMEOUT_MS): Promise<T> {
    const client = new JetStreamClientProxy({ nats: this.nats.handle(), timeoutMs });
    return firstValueFrom(client.send<T>(SUBJECTS.schedulerRpc(op), payload));
  }
}
