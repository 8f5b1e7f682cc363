import { Body, Controller, Get, HttpCode, Inject, Param, Post, Res } from '@nestjs/common';
import {
  ApiAcceptedResponse,
  ApiBody,
  ApiHeader,
  ApiOkResponse,
  ApiOperation,
  ApiSecurity,
  ApiTags,
} from '@nestjs/swagger';
import type { JobView } from '@gantry/contracts';
import type { FastifyReply } from 'fastify';
import { CurrentPrincipal, type Principal } from '../auth/auth';
import { HttpMetrics } from '../http/http-metrics';
import { ApiProblems } from '../http/openapi';
import { IDEMPOTENCY_HEADER, idempotentRequest, parseIdempotencyKey } from '../idempotency/idempotency.service';
import { SubmitBatchDto } from '../jobs/job.dto';
import { JobRequestValidator } from '../jobs/job-request.validator';
import { BatchDoc, BatchStatusDoc } from '../jobs/job-view.doc';
import { JobsService } from '../jobs/jobs.service';
import { BatchesService, type BatchStatus } from './batches.service';

@ApiTags('batches')
@ApiSecurity('bearer')
@ApiSecurity('apiKey')
@Controller('v1/batches')
export class BatchesController {
  constructor(
    @Inject(BatchesService) private readonly batches: BatchesService,
    @Inject(JobsService) private readonly jobs: JobsService,
    @Inject(JobRequestValidator) private readonly validator: JobRequestValidator,
    @Inject(HttpMetrics) private readonly metrics: HttpMetrics,
  ) {}

  @Post()
  @HttpCode(202)
  @ApiOperation({
    summary: 'Submit many jobs at once, all or nothing',
    description:
      'Every job is validated first (errors as `jobs[i].field`); more than MAX_JOBS_PER_BATCH jobs is a 413. ' +
      'A 202 means every job is stored or will be (see docs/api.md). The batch `callbackUrl` is the default for jobs ' +
      'without one. `Idempotency-Key` works as for single submits.',
  })
  @ApiBody({ type: SubmitBatchDto })
  @ApiHeader({ name: 'Idempotency-Key', required: false, description: 'at most 255 printable ASCII characters' })
  @ApiAcceptedResponse({ type: BatchDoc, description: 'accepted; `Location: /v1/batches/{id}`' })
  @ApiOkResponse({ type: BatchDoc, description: 'a repeat of an earlier request with the same Idempotency-Key' })
  @ApiProblems(400, 413, 415, 422, 429, 503)
  async submit(
    @CurrentPrincipal() p: Principal,
    @Body() body: unknown,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<{ id: string; jobs: JobView[] }> {
    const idempotencyKey = parseIdempotencyKey(reply.request.headers[IDEMPOTENCY_HEADER]);
    const batch = await this.validator.batch(body, p.tenant);
    const { id, records, replay } = await this.batches.submit(p, batch, idempotentRequest(idempotencyKey, body));
    void reply.header('location', `/v1/batches/${id}`);
    if (replay) void reply.status(200);
    else this.metrics.jobsAccepted.inc({ via: 'batches' }, records.length);
    return { id, jobs: await this.jobs.views(records, { positions: false }) };
  }

  @Get(':id')
  @ApiOperation({ summary: "A batch's size and its jobs counted by status" })
  @ApiOkResponse({ type: BatchStatusDoc })
  @ApiProblems(404, 503)
  status(@CurrentPrincipal() p: Principal, @Param('id') id: string): Promise<BatchStatus> {
    return this.batches.status(p, id);
  }
}
