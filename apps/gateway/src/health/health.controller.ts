import { Controller, Get, Header, Inject, Res } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import { redactConfig } from '@gantry/config';
import type { Registry } from '@gantry/telemetry';
import type { FastifyReply } from 'fastify';
import { AdminOnly, Public } from '../auth/auth';
import { GATEWAY_CONFIG, gatewaySpec, type GatewayConfig } from '../config';
import { GatewayNats } from '../nats/gateway-nats';
import { METRICS_REGISTRY } from '../tokens';

@ApiExcludeController()
@Controller()
export class HealthController {
  constructor(
    @Inject(GatewayNats) private readonly nats: GatewayNats,
    @Inject(METRICS_REGISTRY) private readonly registry: Registry,
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
  ) {}

  @Public()
  @Get('healthz')
  healthz() {
    return { status: 'ok' };
  }

  @Public()
  @Get('readyz')
  readyz(@Res({ passthrough: true }) reply: FastifyReply) {
    const ready = this.nats.isReady;
    void reply.status(ready ? 200 : 503);
    if (!ready) void reply.header('retry-after', '2');
    return { status: ready ? 'ready' : 'not ready', nats: ready };
  }

  @Public()
  @Get('metrics')
  @Header('cache-control', 'no-store')
  async metrics(@Res({ passthrough: true }) reply: FastifyReply): Promise<string> {
    void reply.header('content-type', this.registry.contentType);
    return this.registry.metrics();
  }

  @Get('v1/config')
  @AdminOnly()
  effectiveConfig() {
    return redactConfig(gatewaySpec, this.config);
  }
}
