/**
 * `POST /v1/workers/{id}/gpus/{uuid}/cordon` · `/uncordon` (admin). The worker owns its GPUs' health, so the gateway
 * asks it directly (core NATS request/reply on its control subject); it answers after the heartbeat that tells the
 * scheduler, so placement has stopped (or resumed) by the time the route returns.
 */
import { Body, Controller, HttpCode, Inject, Param, Post } from '@nestjs/common';
import { ApiBody, ApiOkResponse, ApiOperation, ApiParam, ApiSecurity, ApiTags } from '@nestjs/swagger';
import { SUBJECT_TOKEN, WORKER_RPC, type GpuCordonControl, type GpuStatus } from '@gantry/contracts';
import { RpcUnavailableError } from '@gantry/jetstream';
import { RequestError } from '@nats-io/transport-node';
import { AdminOnly } from '../auth/auth';
import { ApiProblems } from '../http/openapi';
import { problems } from '../http/problem';
import { GatewayRpc } from '../nats/gateway-rpc';
import { GpuDoc } from '../queue/queue.doc';

const GPU_UUID = /^(GPU|MIG)-[\w/-]{1,120}$/;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The optional body `{ "reason": "…" }` (≤ 200 characters); anything else is a 400. */
function reasonOf(body: unknown): string | undefined {
  if (body === undefined) return undefined;
  if (!isPlainObject(body)) throw problems.validation([{ field: 'body', message: 'must be an object' }]);
  const unknown = Object.keys(body).filter((k) => k !== 'reason');
  if (unknown.length) throw problems.validation(unknown.map((k) => ({ field: k, message: 'is not a known field' })));
  const r = body['reason'];
  if (r === undefined) return undefined;
  if (typeof r !== 'string' || r.trim() === '' || r.length > 200)
    throw problems.validation([{ field: 'reason', message: 'must be a non-empty string of at most 200 characters' }]);
  return r.trim();
}

@ApiTags('workers')
@ApiSecurity('bearer')
@ApiSecurity('apiKey')
@Controller('v1/workers/:id/gpus/:uuid')
export class GpuCordonController {
  constructor(@Inject(GatewayRpc) private readonly rpc: GatewayRpc) {}

  private async send(id: string, uuid: string, control: GpuCordonControl): Promise<GpuStatus[]> {
    if (!SUBJECT_TOKEN.test(id)) throw problems.notFound(`no live worker ${id}`);
    if (!GPU_UUID.test(uuid)) throw problems.notFound(`worker ${id} has no GPU ${uuid}`);
    try {
      return await this.rpc.call(WORKER_RPC.gpuCordon.to(id), control);
    } catch (err) {
      if (err instanceof RpcUnavailableError) {
        const cause = err.cause;
        if (cause instanceof RequestError && cause.isNoResponders()) throw problems.notFound(`no live worker ${id}`);
        throw problems.unavailable(`worker ${id} did not answer`, 2, 'worker-unavailable');
      }
      throw err;
    }
  }

  @Post('cordon')
  @HttpCode(200)
  @AdminOnly()
  @ApiOperation({
    summary: 'Cordon a GPU (or every MIG instance of a GPU): no new work; its running attempts are re-queued free',
  })
  @ApiParam({ name: 'id', description: 'worker id (GET /v1/workers)' })
  @ApiParam({ name: 'uuid', description: 'GPU-… or MIG-… UUID' })
  @ApiBody({ required: false, schema: { type: 'object', properties: { reason: { type: 'string', maxLength: 200 } } } })
  @ApiOkResponse({ type: [GpuDoc], description: 'the cordoned device(s) as the worker now reports them' })
  @ApiProblems(400, 403, 404, 415, 503)
  cordon(@Param('id') id: string, @Param('uuid') uuid: string, @Body() body: unknown): Promise<GpuStatus[]> {
    const reason = reasonOf(body);
    return this.send(id, uuid, { v: 1, type: 'cordon', uuid, ...(reason ? { reason } : {}) });
  }

  @Post('uncordon')
  @HttpCode(200)
  @AdminOnly()
  @ApiOperation({ summary: 'Uncordon a GPU (lifts admin and automatic cordons)' })
  @ApiParam({ name: 'id', description: 'worker id (GET /v1/workers)' })
  @ApiParam({ name: 'uuid', description: 'GPU-… or MIG-… UUID' })
  @ApiOkResponse({ type: [GpuDoc], description: 'the device(s) as the worker now reports them' })
  @ApiProblems(400, 403, 404, 415, 503)
  uncordon(@Param('id') id: string, @Param('uuid') uuid: string, @Body() body: unknown): Promise<GpuStatus[]> {
    if (body !== undefined && !(isPlainObject(body) && Object.keys(body).length === 0))
      throw problems.validation([{ field: 'body', message: 'must be empty or {}' }]);
    return this.send(id, uuid, { v: 1, type: 'uncordon', uuid });
  }
}
