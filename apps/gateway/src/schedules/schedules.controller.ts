import { Body, Controller, Delete, Get, Header, HttpCode, Inject, Param, Post, Query, Res } from '@nestjs/common';
import {
  ApiBody,
  ApiCreatedResponse,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiOperation,
  ApiQuery,
  ApiSecurity,
  ApiTags,
} from '@nestjs/swagger';
import { SUBJECT_TOKEN, toScheduleView, type SchedulePage, type ScheduleView } from '@gantry/contracts';
import type { FastifyReply } from 'fastify';
import { CurrentPrincipal, type Principal } from '../auth/auth';
import { ApiProblems } from '../http/openapi';
import { problems } from '../http/problem';
import { assertNoBody } from '../jobs/jobs.controller';
import { SchedulesService } from './schedules.service';

@ApiTags('schedules')
@ApiSecurity('bearer')
@ApiSecurity('apiKey')
@Controller('v1/schedules')
export class SchedulesController {
  constructor(@Inject(SchedulesService) private readonly schedules: SchedulesService) {}

  @Post()
  @HttpCode(201)
  @ApiOperation({
    summary: 'Create a cron schedule: each due time creates one job (scheduleId, runAt = the due time)',
    description:
      '`cron`: 5 fields, or 6 with seconds first; `timezone` (IANA, default UTC); `job`: a job request as for ' +
      'POST /v1/jobs, without runAt, delaySeconds or dependsOn; `overlap`: skip (default: no job while the previous ' +
      'one is unfinished) or allow. 429 beyond MAX_SCHEDULES_PER_TENANT.',
  })
  @ApiBody({ schema: { type: 'object', required: ['name', 'cron', 'job'] } })
  @ApiCreatedResponse({ description: 'the schedule; `Location: /v1/schedules/{id}`' })
  @ApiProblems(400, 413, 415, 429, 503)
  async create(
    @CurrentPrincipal() p: Principal,
    @Body() body: unknown,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<ScheduleView> {
    const record = await this.schedules.create(await this.schedules.validate(p, body));
    void reply.header('location', `/v1/schedules/${record.id}`);
    return toScheduleView(record);
  }

  @Get()
  @Header('cache-control', 'no-store')
  @ApiOperation({ summary: "The tenant's schedules (admin keys: every tenant's), oldest first" })
  @ApiQuery({ name: 'limit', required: false, schema: { type: 'integer', minimum: 1, maximum: 500, default: 100 } })
  @ApiQuery({ name: 'cursor', required: false, description: 'nextCursor of the previous page' })
  @ApiQuery({ name: 'tenant', required: false, description: 'admin keys only: one tenant' })
  @ApiOkResponse({ description: '{ items, nextCursor }' })
  @ApiProblems(400, 403, 503)
  async list(
    @CurrentPrincipal() p: Principal,
    @Query() q: Record<string, string | string[] | undefined>,
  ): Promise<SchedulePage> {
    const allowed = ['limit', 'cursor', 'tenant'];
    const unknown = Object.keys(q).filter((k) => !allowed.includes(k));
    if (unknown.length)
      throw problems.validation(unknown.map((k) => ({ field: k, message: 'is not a known query parameter' })));
    const repeated = Object.keys(q).filter((k) => Array.isArray(q[k]));
    if (repeated.length)
      throw problems.validation(repeated.map((k) => ({ field: k, message: 'must be given at most once' })));
    const one = (k: string) => q[k] as string | undefined;
    const limitRaw = one('limit');
    const limit = limitRaw === undefined ? 100 : /^\d{1,3}$/.test(limitRaw) ? Number(limitRaw) : NaN;
    if (!Number.isInteger(limit) || limit < 1 || limit > 500)
      throw problems.validation([{ field: 'limit', message: 'must be an integer from 1 to 500' }]);
    const cursor = one('cursor');
    if (cursor !== undefined && !SUBJECT_TOKEN.test(cursor))
      throw problems.validation([{ field: 'cursor', message: 'is not a cursor returned by this API' }]);
    let tenant: string | undefined = p.role === 'admin' ? undefined : p.tenant;
    const asTenant = one('tenant');
    if (asTenant !== undefined) {
      if (p.role !== 'admin') throw problems.forbidden('only admin keys may list another tenant');
      if (!SUBJECT_TOKEN.test(asTenant))
        throw problems.validation([{ field: 'tenant', message: 'is not a tenant name' }]);
      tenant = asTenant;
    }
    const page = await this.schedules.list({
      limit,
      ...(tenant !== undefined ? { tenant } : {}),
      ...(cursor ? { cursor } : {}),
    });
    return { items: page.items.map(toScheduleView), nextCursor: page.nextCursor };
  }

  @Get(':id')
  @ApiOperation({ summary: 'A schedule' })
  @ApiOkResponse({ description: 'the schedule' })
  @ApiProblems(404, 503)
  async get(@CurrentPrincipal() p: Principal, @Param('id') id: string): Promise<ScheduleView> {
    return toScheduleView((await this.schedules.get(p, id)).record);
  }

  @Delete(':id')
  @HttpCode(204)
  @ApiOperation({ summary: 'Delete a schedule: no further job is created (jobs it created are kept)' })
  @ApiNoContentResponse()
  @ApiProblems(404, 503)
  async delete(@CurrentPrincipal() p: Principal, @Param('id') id: string): Promise<void> {
    await this.schedules.delete(p, id);
  }

  @Post(':id/pause')
  @HttpCode(200)
  @ApiOperation({ summary: 'Pause: due times that pass while paused are skipped' })
  @ApiOkResponse({ description: 'the schedule' })
  @ApiProblems(400, 404, 415, 503)
  async pause(@CurrentPrincipal() p: Principal, @Param('id') id: string, @Body() body: unknown): Promise<ScheduleView> {
    assertNoBody(body);
    return toScheduleView(await this.schedules.pause(p, id));
  }

  @Post(':id/resume')
  @HttpCode(200)
  @ApiOperation({ summary: 'Resume: the next due time is the first one after now' })
  @ApiOkResponse({ description: 'the schedule' })
  @ApiProblems(400, 404, 415, 503)
  async resume(
    @CurrentPrincipal() p: Principal,
    @Param('id') id: string,
    @Body() body: unknown,
  ): Promise<ScheduleView> {
    assertNoBody(body);
    return toScheduleView(await this.schedules.resume(p, id));
  }
}
