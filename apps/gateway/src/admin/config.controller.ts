import { Controller, Get, Inject } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiSecurity, ApiTags } from '@nestjs/swagger';
import { redactConfig } from '@gantry/config';
import { AdminOnly } from '../auth/auth';
import { GATEWAY_CONFIG, gatewaySpec, type GatewayConfig } from '../config';
import { ApiProblems } from '../http/openapi';

@ApiTags('admin')
@ApiSecurity('bearer')
@ApiSecurity('apiKey')
@Controller('v1')
export class ConfigController {
  constructor(@Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig) {}

  @Get('config')
  @AdminOnly()
  @ApiOperation({ summary: "The gateway's effective configuration, secrets redacted" })
  @ApiOkResponse({ schema: { type: 'object', additionalProperties: true } })
  @ApiProblems(403)
  effectiveConfig(): Record<string, unknown> {
    return redactConfig(gatewaySpec, this.config);
  }
}
