import { Body, Controller, Get, Header, HttpCode, Inject, Param, Post, Put, Query, Res } from '@nestjs/common';
import { ApiOperation, ApiQuery, ApiSecurity, ApiTags } from '@nestjs/swagger';
import { JOB_STATUSES, PRIORITIES, type JobStatus, type JobView, type Priority } from '@gantry/contracts';
import type { FastifyReply } from 'fastify';
import { CurrentPrincipal, type Principal } from '../auth/auth';
import { problems } from '../http/problem';
import { PriorityDto, SubmitJobDto } from './job.dto';
import { JobListService } from './job-list.service';
import { JobsService } from './jobs.service';

function oneOf<T extends string>(field: string, v: string | undefined, allowed: readonly T[]): T | undefined {
  if (v === undefined || v === '') return undefined;
  if (!(allowed as readonly string[]).includes(v))
    throw problems.validation([{ field, message: `must be one of ${allowed.join(', ')}` }]);
  return v as T;
}

@ApiTags('jobs')
@ApiSecurity('bearer')
@Controller('v1/jobs')
export class JobsController {
  constructor(
    @Inject(JobsService) private readonly jobs: JobsService,
    @Inject(JobListService) private readonly list: JobListService,
  ) {}

  @Post()
  @HttpCode(202)
  @ApiOperation({ summary: 'Submit a job (202 once it is durably stored)' })
  async submit(
    @CurrentPrincipal() p: Principal,
    @Body() dto: SubmitJobDto,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<JobView> {
    const stored = await this.jobs.submit(p, dto);
    void reply.header('location', `/v1/jobs/${stored.record.id}`);
    return this.jobs.view(stored.record);
  }

  @Get(':id')
  @ApiOperation({ summary: 'A job, with its queue position while queued' })
  async get(@CurrentPrincipal() p: Principal, @Param('id') id: string): Promise<JobView> {
    const stored = await this.jobs.get(p, id);
    return this.jobs.view(stored.record);
  }

  @Post(':id/cancel')
  @HttpCode(200)
  @ApiOperation({ summary: 'Cancel: a queued job never starts; a running one is killed. 409 when already finished' })
  async cancel(@CurrentPrincipal() p: Principal, @Param('id') id: string): Promise<JobView> {
    return this.jobs.view((await this.jobs.cancel(p, id)).record);
  }

  @Post(':id/retry')
  @HttpCode(202)
  @ApiOperation({ summary: 'Retry a failed or cancelled job (a new generation); 409 otherwise' })
  async retry(@CurrentPrincipal() p: Principal, @Param('id') id: string): Promise<JobView> {
    return this.jobs.view((await this.jobs.retry(p, id)).record);
  }

  @Put(':id/priority')
  @ApiOperation({ summary: 'Reprioritize a queued or retrying job (keeps its submission order); 409 otherwise' })
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
  @ApiQuery({ name: 'cursor', required: false })
  @ApiQuery({ name: 'tenant', required: false, description: 'admin keys only: list another tenant' })
  async listJobs(
    @CurrentPrincipal() p: Principal,
    @Query() q: Record<string, string | undefined>,
  ): Promise<{ items: JobView[]; nextCursor: string | null }> {
    const allowed = ['status', 'type', 'priority', 'limit', 'cursor', 'tenant'];
    const unknown = Object.keys(q).filter((k) => !allowed.includes(k));
    if (unknown.length)
      throw problems.validation(unknown.map((k) => ({ field: k, message: 'is not a known query parameter' })));
    const status = oneOf<JobStatus>('status', q['status'], JOB_STATUSES);
    const priority = oneOf<Priority>('priority', q['priority'], PRIORITIES);
    const type = q['type'];
    if (type !== undefined && !/^[a-z][a-z0-9-]{0,62}$/.test(type))
      throw problems.validation([{ field: 'type', message: 'is not a job type name' }]);
    const limit = q['limit'] === undefined ? 50 : Number(q['limit']);
    if (!Number.isInteger(limit) || limit < 1 || limit > 500)
      throw problems.validation([{ field: 'limit', message: 'must be an integer from 1 to 500' }]);
    let tenant = p.tenant;
    if (q['tenant'] !== undefined) {
      if (p.role !== 'admin') throw problems.forbidden('only admin keys may list another tenant');
      if (!/^[A-Za-z0-9_-]{1,64}$/.test(q['tenant']))
        throw problems.validation([{ field: 'tenant', message: 'is not a tenant name' }]);
      tenant = q['tenant'];
    }
    const found = await this.list.find({
      tenant,
      limit,
      ...(status ? { status } : {}),
      ...(type ? { type } : {}),
      ...(priority ? { priority } : {}),
      ...(q['cursor'] ? { cursor: q['cursor'] } : {}),
    });
    const records = await this.jobs.store().getMany(found.ids);
    const items = found.ids
      .map((id) => records.get(id)?.record)
      .filter((r): r is NonNullable<typeof r> => !!r)
      // The index can trail the records by a flush; the record decides.
      .filter((r) => (!status || r.status === status) && (!priority || r.priority === priority));
    return { items: await this.jobs.views(items), nextCursor: found.nextCursor };
  }
}
