import { Body, Controller, Get, HttpCode, Inject, Post, Put } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiPropertyOptional, ApiSecurity, ApiTags } from '@nestjs/swagger';
import {
  QUEUE_CONFIG_BOUNDS,
  type ConcurrencyStats,
  type QueueMetrics,
  type QueueState,
  type WorkerView,
} from '@gantry/contracts';
import { IsInt, Max, Min } from 'class-validator';
import { AdminOnly, CurrentPrincipal, type Principal } from '../auth/auth';
import { ApiProblems } from '../http/openapi';
import { OptionalField } from '../http/validation';
import { JobTenants } from '../jobs/job-tenants';
import { assertNoBody } from '../jobs/jobs.controller';
import { ConcurrencyStatsDoc, QueueMetricsDoc, QueueStateDoc, WorkerDoc } from './queue.doc';
import { SchedulerClient } from './scheduler-client';

const BOUNDS = QUEUE_CONFIG_BOUNDS;

export class QueueConfigDto {
  @ApiPropertyOptional({
    minimum: BOUNDS.maxConcurrentJobs.min,
    maximum: BOUNDS.maxConcurrentJobs.max,
    description: 'global concurrency tokens',
  })
  @OptionalField()
  @IsInt()
  @Min(BOUNDS.maxConcurrentJobs.min)
  @Max(BOUNDS.maxConcurrentJobs.max)
  maxConcurrentJobs?: number;

  @ApiPropertyOptional({
    minimum: BOUNDS.maxQueueSize.min,
    maximum: BOUNDS.maxQueueSize.max,
    description: 'queued + retrying jobs before 429',
  })
  @OptionalField()
  @IsInt()
  @Min(BOUNDS.maxQueueSize.min)
  @Max(BOUNDS.maxQueueSize.max)
  maxQueueSize?: number;
}

/** Queue and worker routes, answered by the leading scheduler over NATS request/reply (503 when none answers). */
@ApiTags('queue')
@ApiSecurity('bearer')
@ApiSecurity('apiKey')
@Controller('v1')
export class QueueController {
  constructor(
    @Inject(SchedulerClient) private readonly scheduler: SchedulerClient,
    @Inject(JobTenants) private readonly tenants: JobTenants,
  ) {}

  @Get('queue')
  @ApiOperation({ summary: 'Queue depth, tokens and state' })
  @ApiOkResponse({ type: QueueStateDoc })
  @ApiProblems(503)
  queue(): Promise<QueueState> {
    return this.scheduler.call('queue');
  }

  @Get('queue/metrics')
  @ApiOperation({ summary: 'Throughput and latency figures' })
  @ApiOkResponse({ type: QueueMetricsDoc })
  @ApiProblems(503)
  metrics(): Promise<QueueMetrics> {
    return this.scheduler.call('metrics');
  }

  @Post('queue/pause')
  @HttpCode(200)
  @AdminOnly()
  @ApiOperation({ summary: 'Stop dispatching (running jobs go on)' })
  @ApiOkResponse({ type: QueueStateDoc })
  @ApiProblems(400, 403, 415, 503)
  pause(@Body() body: unknown): Promise<QueueState> {
    assertNoBody(body);
    return this.scheduler.call('pause');
  }

  @Post('queue/resume')
  @HttpCode(200)
  @AdminOnly()
  @ApiOperation({ summary: 'End pause and drain' })
  @ApiOkResponse({ type: QueueStateDoc })
  @ApiProblems(400, 403, 415, 503)
  resume(@Body() body: unknown): Promise<QueueState> {
    assertNoBody(body);
    return this.scheduler.call('resume');
  }

  @Post('queue/drain')
  @HttpCode(200)
  @AdminOnly()
  @ApiOperation({ summary: 'Refuse new submissions (503), finish the rest' })
  @ApiOkResponse({ type: QueueStateDoc })
  @ApiProblems(400, 403, 415, 503)
  drain(@Body() body: unknown): Promise<QueueState> {
    assertNoBody(body);
    return this.scheduler.call('drain');
  }

  @Post('queue/clear')
  @HttpCode(200)
  @AdminOnly()
  @ApiOperation({ summary: 'Cancel every queued job' })
  @ApiOkResponse({ type: QueueStateDoc })
  @ApiProblems(400, 403, 415, 503)
  clear(@Body() body: unknown): Promise<QueueState> {
    assertNoBody(body);
    return this.scheduler.call('clear', {}, 120_000);
  }

  @Put('queue/config')
  @AdminOnly()
  @ApiOperation({ summary: 'Change maxConcurrentJobs / maxQueueSize at runtime (kept across restarts)' })
  @ApiOkResponse({ type: QueueStateDoc, description: 'the effective values' })
  @ApiProblems(400, 403, 415, 503)
  config(@Body() dto: QueueConfigDto): Promise<QueueState> {
    return this.scheduler.call('config', dto);
  }

  @Get('workers')
  @ApiOperation({
    summary: 'Live workers, their GPUs, slots and running jobs',
    description:
      'A client key sees only its own tenant’s ids in `runningJobs` (`busy` still counts every slot in use).',
  })
  @ApiOkResponse({ type: [WorkerDoc] })
  @ApiProblems(503)
  async workers(@CurrentPrincipal() p: Principal): Promise<WorkerView[]> {
    const workers = await this.scheduler.call<WorkerView[]>('workers');
    return Promise.all(
      workers.map(async (w) => ({ ...w, runningJobs: await this.tenants.visibleTo(p, w.runningJobs) })),
    );
  }

  @Get('concurrency/stats')
  @ApiOperation({ summary: 'Concurrency tokens' })
  @ApiOkResponse({ type: ConcurrencyStatsDoc })
  @ApiProblems(503)
  concurrency(): Promise<ConcurrencyStats> {
    return this.scheduler.call('concurrency');
  }
}
