import { Controller, Get, Header } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiProperty, ApiSecurity, ApiTags } from '@nestjs/swagger';
import type { Whoami } from '@gantry/contracts';
import { ApiProblems } from '../http/openapi';
import { CurrentPrincipal, type Principal } from './auth';

class WhoamiDoc implements Whoami {
  @ApiProperty({ enum: ['admin', 'client'] })
  role!: 'admin' | 'client';
  @ApiProperty({ example: 'default' })
  tenant!: string;
}

/** `GET /v1/whoami`: what the presented key may do (the dashboard and the CLI use it to show admin actions or not). */
@ApiTags('auth')
@ApiSecurity('bearer')
@ApiSecurity('apiKey')
@Controller('v1')
export class WhoamiController {
  @Get('whoami')
  @Header('cache-control', 'no-store')
  @ApiOperation({ summary: 'The role and tenant of the presented API key' })
  @ApiOkResponse({ type: WhoamiDoc })
  @ApiProblems()
  whoami(@CurrentPrincipal() p: Principal): Whoami {
    return { role: p.role, tenant: p.tenant };
  }
}
