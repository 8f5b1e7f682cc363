import { Body, Controller, Get, Header, HttpCode, Inject, Param, Post, Put, Query, Res } from '@nestjs/common';
import {
  ApiAcceptedResponse,
  ApiBody,
  ApiHeader,
  ApiOkResponse,
  ApiOperation,
  ApiQuery,
  ApiSecurity,
  ApiTags,
} from '@nestjs/swagger';
import {
  isPlainObject,
  JOB_STATUSES,
  PRIORITIES,
  type JobStatus,
  type JobView,
  type Priority,
  SUBJECT_TOKEN,
} from '@gantry/contracts';
import type { FastifyReply } from 'fastify';
import { CurrentPrincipal, type Principal } from '../auth/auth';
import { HttpMetrics } from '../http/http-metrics';
import { ApiProblems } from '../http/openapi';
import { problems } from '../http/problem';
import { IDEMPOTENCY_HEADER, idempotentRequest, parseIdempotencyKey } from '../idempotency/idempotency.service';
import { PriorityDto, SubmitJobDto } from './job.dto';
import { JobListService } from './job-list.service';
import { JobRequestValidator } from './job-request.validator';
import { JobListDoc, JobViewDoc } from './job-view.doc';
import { JobsService } from './jobs.service';

function oneOf<T extends string>(field: string, v: string | undefined, allowed: readonly T[]): T | undefined {
  if (v === undefined || v === '') return undefined;
  if (!(allowed as readonly string[]).includes(v))
    throw problems.validation([{ field, message: `must be one of ${allowed.join(', ')}` }]);
  return v as T;
}

/** Routes that act on a job take no body: absent, empty, or `{}`. */
export function assertNoBody(body: unknown): void {
  if (body === undefined || (isPlainObject(body) && Object.keys(body).length === 0)) return;
  if (!isPlainObject(body)) throw problems.validation([{ field: 'body', message: 'must be empty or {}' }]);
  throw problems.validation(Object.keys(body).map((k) => ({ field: k, message: 'is not a known field' })));
}

@ApiTags('jobs')
@ApiSecurity('bearer')
@ApiSecurity('apiKey')
@Controller('v1/jobs')
export class JobsController {
  constructor(
    @Inject(JobsService) private readonly jobs: JobsService,
    @Inject(JobListService) private readonly list: JobListService,
    @Inject(JobRequestValidator) private readonly validator: JobRequestValidator,
    @Inject(HttpMetrics) private readonly metrics: HttpMetrics,
  ) {}

  @Post()
  @HttpCode(202)
  @ApiOperation({
    summary: 'Submit a job (202 once it is durably stored)',
    description:
      'With `Idempotency-Key`, a repeat with the same key, tenant and body within 24 h answers 200 with the original job ' +
      'and creates nothing; the same key with another body is a 422.',
  })
  @ApiBody({ type: SubmitJobDto })
  @ApiHeader({ name: 'Idempotency-Key', required: false, description: 'at most 255 printable ASCII characters' })
  @ApiAcceptedResponse({ type: JobViewDoc, description: 'accepted; `Location: /v1/jobs/{id}`' })
  @ApiOkResponse({ type: JobViewDoc, description: 'a repeat of an earlier request with the same Idempotency-Key' })
  @ApiProblems(400, 413, 415, 422, 429, 503)
  async submit(
    @CurrentPrincipal() p: Principal,
    @Body() body: unknown,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<JobView> {
    const idempotencyKey = parseIdempotencyKey(reply.request.headers[IDEMPOTENCY_HEADER]);
    const { dto, parentTraces } = await this.validator.submit(body, p.tenant);
    const { stored, replay } = await this.jobs.submit(p, dto, idempotentRequest(idempotencyKey, body), parentTraces);
    void reply.header('location', `/v1/jobs/${stored.record.id}`);
    if (replay) void reply.status(200);
    else this.metrics.jobsAccepted.inc({ via: 'jobs' });
    return this.jobs.view(stored.record, { positions: replay });
  }

  @Get(':id')
  @ApiOperation({ summary: 'A job, with its queue position while queued' })
  @ApiOkResponse({ type: JobViewDoc })
  @ApiProblems(404, 503)
  async get(@CurrentPrincipal() p: Principal, @Param('id') id: string): Promise<JobView> {
    const stored = await this.jobs.get(p, id);
    return this.jobs.view(stored.record);
  }

  @Post(':id/cancel')
  @HttpCode(200)
  @ApiOperation({ summary: 'Cancel: a queued job never starts; a running one is killed. 409 when already finished' })
  @ApiOkResponse({ type: JobViewDoc })
  @ApiProblems(400, 404, 409, 415, 503)
  async cancel(@CurrentPrincipal() p: Principal, @Param('id') id: string, @Body() body: unknown): Promise<JobView> {
    assertNoBody(body);
    return this.jobs.view((await this.jobs.cancel(p, id)).record);
  }

  @Post(':id/retry')
  @HttpCode(202)
  @ApiOperation({ summary: 'Retry a failed or cancelled job (a new generation); 409 otherwise' })
  @ApiAcceptedResponse({ type: JobViewDoc })
  @ApiProblems(400, 404, 409, 415, 503)
  async retry(@CurrentPrincipal() p: Principal, @Param('id') id: string, @Body() body: unknown): Promise<JobView> {
    assertNoBody(body);
    return this.jobs.view((await this.jobs.retry(p, id)).record);
  }

  @Put(':id/priority')
  @ApiOperation({ summary: 'Reprioritize a queued or retrying job (keeps its submission order); 409 otherwise' })
  @ApiOkResponse({ type: JobViewDoc })
  @ApiProblems(400, 404, 409, 415, 503)
  async priority(
    @CurrentPrincipal() p: Principal,
    @Param('id') id: string,
    @Body() dto: PriorityDto,
  ): Promise<JobView> {
    return this.jobs.view((await this.jobs.setPriority(p, id, dto.priority)).record);
  }

  @Get()
  @Header('cache-control', 'no-store')
  @ApiOperation({ summary: "The tenant's jobs, newest first, from the listing index" })
  @ApiQuery({ name: 'status', required: false, enum: JOB_STATUSES })
  @ApiQuery({ name: 'type', required: false })
  @ApiQuery({ name: 'priority', required: false, enum: PRIORITIES })
  @ApiQuery({ name: 'limit', required: false, schema: { type: 'integer', minimum: 1, maximum: 500, default: 50 } })
  @ApiQuery({ name: 'cursor', required: false, description: 'nextCursor of the previous page' })
  @ApiQuery({ name: 'tenant', required: false, description: 'admin keys only: list another tenant' })
  @ApiOkResponse({ type: JobListDoc })
  @ApiProblems(400, 403, 503)
  async listJobs(
    @CurrentPrincipal() p: Principal,
    @Query() q: Record<string, string | string[] | undefined>,
  ): Promise<{ items: JobView[]; nextCursor: string | null }> {
    const allowed = ['status', 'type', 'priority', 'limit', 'cursor', 'tenant'];
    const unknown = Object.keys(q).filter((k) => !allowed.includes(k));
    if (unknown.length)
      throw problems.validation(unknown.map((k) => ({ field: k, message: 'is not a known query parameter' })));
    const repeated = Object.keys(q).filter((k) => Array.isArray(q[k]));
    if (repeated.length)
      throw problems.validation(repeated.map((k) => ({ field: k, message: 'must be given at most once' })));
    const one = (k: string) => q[k] as string | undefined;
    const status = oneOf<JobStatus>('status', one('status'), JOB_STATUSES);
    const priority = oneOf<Priority>('priority', one('priority'), PRIORITIES);
    const type = one('type');
    if (type !== undefined && !/^[a-z][a-z0-9-]{0,62}$/.test(type))
      throw problems.validation([{ field: 'type', message: 'is not a job type name' }]);
    const limitRaw = one('limit');
    const limit = limitRaw === undefined ? 50 : /^\d{1,3}$/.test(limitRaw) ? Number(limitRaw) : NaN;
    if (!Number.isInteger(limit) || limit < 1 || limit > 500)
      throw problems.validation([{ field: 'limit', message: 'must be an integer from 1 to 500' }]);
    const cursor = one('cursor');
    if (cursor !== undefined && cursor.length > 256)
      throw problems.validation([{ field: 'cursor', message: 'is not a cursor returned by this API' }]);
    let tenant = p.tenant;
    const asTenant = one('tenant');
    if (asTenant !== undefined) {
      if (p.role !== 'admin') throw problems.forbidden('only admin keys may list another tenant');
      if (!SUBJECT_TOKEN.test(asTenant))
        throw problems.validation([{ field: 'tenant', message: 'is not a tenant name' }]);
      tenant = asTenant;
    }
    const found = await this.list.find({
      tenant,
      limit,
      ...(status ? { status } : {}),
      ...(type ? { type } : {}),
      ...(priority ? { priority } : {}),
      ...(cursor ? { cursor } : {}),
    });
    const records = await this.jobs.store().getMany(found.ids);
    const items = found.ids
      .map((id) => records.get(id)?.record)
      .filter((r): r is NonNullable<typeof r> => !!r)
      // The index can trail the records by a flush; the record decides.
      .filter(
        (r) =>
          r.tenant === tenant &&
          (!status || r.status === status) &&
          (!priority || r.priority === priority) &&
          (!type || r.type === type),
      );
    return { items: await this.jobs.views(items), nextCursor: found.nextCursor };
  }
}
