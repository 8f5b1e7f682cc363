import { Controller, Get, Header, Inject } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiProperty, ApiSecurity, ApiTags } from '@nestjs/swagger';
import { SCHEDULER_RPC, type TenantView } from '@gantry/contracts';
import { AdminOnly, CurrentPrincipal, type Principal } from '../auth/auth';
import { ApiProblems } from '../http/openapi';
import { GatewayRpc } from '../nats/gateway-rpc';

class TenantDoc implements TenantView {
  @ApiProperty({ example: 'acme' })
  tenant!: string;
  @ApiProperty({ minimum: 1, maximum: 1000, description: 'from TENANT_WEIGHTS (1 when not listed)' })
  weight!: number;
  @ApiProperty({ description: 'jobs queued now (dispatched-not-started included)' })
  queued!: number;
  @ApiProperty({ description: 'jobs running now' })
  running!: number;
  @ApiProperty({ description: 'GPU-slot-seconds decayed with half-life FAIR_SHARE_HALF_LIFE_SECONDS' })
  usedSlotSeconds!: number;
  @ApiProperty({ description: "percent of every tenant's usedSlotSeconds" })
  sharePercent!: number;
  @ApiProperty({ description: 'weight over the weights of the tenants with queued or running work now, in percent' })
  entitledPercent!: number;
}

/** Fair share between tenants (API §3, since v1.1), answered by the leading scheduler (503 when none answers). */
@ApiTags('tenants')
@ApiSecurity('bearer')
@ApiSecurity('apiKey')
@Controller('v1')
export class TenantsController {
  constructor(@Inject(GatewayRpc) private readonly rpc: GatewayRpc) {}

  @Get('tenants')
  @AdminOnly()
  @Header('cache-control', 'no-store')
  @ApiOperation({ summary: 'Every tenant with work, recent usage or a configured weight, and its fair share' })
  @ApiOkResponse({ type: TenantDoc, isArray: true })
  @ApiProblems(403, 503)
  list(): Promise<TenantView[]> {
    return this.rpc.call(SCHEDULER_RPC.tenants, {});
  }

  @Get('tenants/me')
  @Header('cache-control', 'no-store')
  @ApiOperation({ summary: "The caller's tenant and its fair share" })
  @ApiOkResponse({ type: TenantDoc })
  @ApiProblems(503)
  async me(@CurrentPrincipal() p: Principal): Promise<TenantView> {
    const [view] = await this.rpc.call(SCHEDULER_RPC.tenants, { tenant: p.tenant });
    return (
      view ?? {
        tenant: p.tenant,
        weight: 1,
        queued: 0,
        running: 0,
        usedSlotSeconds: 0,
        sharePercent: 0,
        entitledPercent: 0,
      }
    );
  }
}
