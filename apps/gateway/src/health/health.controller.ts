import { Controller, Get, Header, Inject, Res } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiProduces, ApiServiceUnavailableResponse, ApiTags } from '@nestjs/swagger';
import type { Registry } from '@gantry/telemetry';
import type { FastifyReply } from 'fastify';
import { Public } from '../auth/auth';
import { GatewayNats } from '../nats/gateway-nats';
import { METRICS_REGISTRY } from '../tokens';

/** Unauthenticated operational routes. */
@ApiTags('ops')
@Controller()
export class HealthController {
  constructor(
    @Inject(GatewayNats) private readonly nats: GatewayNats,
    @Inject(METRICS_REGISTRY) private readonly registry: Registry,
  ) {}

  @Public()
  @Get('healthz')
  @ApiOperation({ summary: 'Liveness: 200 while the process lives' })
  @ApiOkResponse({ schema: { type: 'object', properties: { status: { type: 'string', example: 'ok' } } } })
  healthz() {
    return { status: 'ok' };
  }

  @Public()
  @Get('readyz')
  @ApiOperation({ summary: 'Readiness: 200 when NATS and the streams are usable, else 503' })
  @ApiOkResponse({ description: 'ready' })
  @ApiServiceUnavailableResponse({ description: 'NATS unavailable (Retry-After)' })
  readyz(@Res({ passthrough: true }) reply: FastifyReply) {
    const ready = this.nats.isReady;
    void reply.status(ready ? 200 : 503);
    if (!ready) void reply.header('retry-after', '2');
    return { status: ready ? 'ready' : 'not ready', nats: ready };
  }

  @Public()
  @Get('metrics')
  @Header('cache-control', 'no-store')
  @ApiOperation({ summary: 'Prometheus metrics (HTTP rate, errors and latency by route; process metrics)' })
  @ApiProduces('text/plain')
  @ApiOkResponse({ content: { 'text/plain': { schema: { type: 'string' } } } })
  async metrics(@Res({ passthrough: true }) reply: FastifyReply): Promise<string> {
    void reply.header('content-type', this.registry.contentType);
    return this.registry.metrics();
  }
}
