/**
 * `GET /v1/webhooks/failed` and `POST /v1/webhooks/failed/{id}/replay` (admin): the webhook dead-letter list, served
 * by any notifier replica over request/reply (`gantry.v1.rpc.notifier.<op>`, queue group `notifier`).
 */
import { Controller, Get, Header, HttpCode, Inject, Param, Post, Query } from '@nestjs/common';
import { ApiOperation, ApiParam, ApiQuery, ApiSecurity, ApiTags } from '@nestjs/swagger';
import { ApiProblems } from '../http/openapi';
import {
  NOTIFIER_RPC,
  SUBJECT_TOKEN,
  type FailedListReply,
  type FailedListRequest,
  type FailedWebhookView,
  type ReplayRequest,
  type Rpc,
} from '@gantry/contracts';
import { RpcUnavailableError } from '@gantry/jetstream';
import { AdminOnly } from '../auth/auth';
import { problems } from '../http/problem';
import { GatewayRpc } from '../nats/gateway-rpc';

const QUERY = ['limit', 'cursor', 'tenant'];

@ApiTags('webhooks')
@ApiSecurity('bearer')
@ApiSecurity('apiKey')
@Controller('v1/webhooks/failed')
export class FailedWebhooksController {
  constructor(@Inject(GatewayRpc) private readonly rpc: GatewayRpc) {}

  private async call<Req, Res>(rpc: Rpc<Req, Res>, request: Req): Promise<Res> {
    try {
      return await this.rpc.call(rpc, request);
    } catch (err) {
      if (err instanceof RpcUnavailableError)
        throw problems.unavailable(
          'no notifier answered (none running or NATS unavailable)',
          2,
          'notifier-unavailable',
        );
      throw err;
    }
  }

  @Get()
  @AdminOnly()
  @Header('cache-control', 'no-store')
  @ApiOperation({ summary: 'Webhook deliveries that exhausted their attempts, oldest first' })
  @ApiQuery({ name: 'limit', required: false, schema: { type: 'integer', minimum: 1, maximum: 500, default: 50 } })
  @ApiQuery({ name: 'cursor', required: false, description: 'nextCursor of the previous page' })
  @ApiQuery({ name: 'tenant', required: false, description: "only this tenant's deliveries" })
  @ApiProblems(400, 403, 503)
  list(@Query() q: Record<string, string | undefined>): Promise<FailedListReply> {
    const unknown = Object.keys(q).filter((k) => !QUERY.includes(k));
    if (unknown.length)
      throw problems.validation(unknown.map((k) => ({ field: k, message: 'is not a known query parameter' })));
    const limit = q['limit'] === undefined ? 50 : Number(q['limit']);
    if (!Number.isInteger(limit) || limit < 1 || limit > 500)
      throw problems.validation([{ field: 'limit', message: 'must be an integer from 1 to 500' }]);
    const cursor = q['cursor'];
    if (cursor !== undefined && !/^[1-9][0-9]{0,15}$/.test(cursor))
      throw problems.validation([{ field: 'cursor', message: 'is not a cursor this API returned' }]);
    const tenant = q['tenant'];
    if (tenant !== undefined && !SUBJECT_TOKEN.test(tenant))
      throw problems.validation([{ field: 'tenant', message: 'is not a tenant name' }]);
    const req: FailedListRequest = { limit, ...(cursor ? { cursor } : {}), ...(tenant ? { tenant } : {}) };
    return this.call(NOTIFIER_RPC['failed-list'], req);
  }

  @Post(':id/replay')
  @AdminOnly()
  @HttpCode(202)
  @ApiOperation({ summary: 'Send a failed delivery again (same webhook-id, attempts from zero)' })
  @ApiParam({ name: 'id', description: 'id of an item of GET /v1/webhooks/failed' })
  @ApiProblems(403, 404, 503)
  replay(@Param('id') id: string): Promise<FailedWebhookView> {
    if (!/^[1-9][0-9]{0,15}$/.test(id)) throw problems.notFound(`no failed webhook ${id}`);
    const req: ReplayRequest = { id };
    return this.call(NOTIFIER_RPC.replay, req);
  }
}
