import { Body, Controller, Get, HttpCode, Inject, Post, Put, Res } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiProduces, ApiPropertyOptional, ApiSecurity, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import {
  QUEUE_CONFIG_BOUNDS,
  SCHEDULER_RPC,
  type ConcurrencyStats,
  type QueueMetrics,
  type QueueConfigUpdate,
  type QueueState,
  type WorkerView,
} from '@gantry/contracts';
import { IsInt, Max, Min } from 'class-validator';
import { AdminOnly, CurrentPrincipal, type Principal } from '../auth/auth';
import { QueueEventsService } from '../events/queue-events.service';
import { ApiProblems } from '../http/openapi';
import { OptionalField } from '../http/validation';
import { JobTenants } from '../jobs/job-tenants';
import { assertNoBody } from '../jobs/jobs.controller';
import { ConcurrencyStatsDoc, QueueMetricsDoc, QueueStateDoc, WorkerDoc } from './queue.doc';
import { GatewayRpc } from '../nats/gateway-rpc';

// One rule for both sides: the bounds the scheduler enforces on the `config` RPC (contracts' QUEUE_CONFIG_BOUNDS).
const bounds = (b: { min: number; max: number }) => ({ minimum: b.min, maximum: b.max });
const CONCURRENCY = bounds(QUEUE_CONFIG_BOUNDS.maxConcurrentJobs);
const QUEUE_SIZE = bounds(QUEUE_CONFIG_BOUNDS.maxQueueSize);

export class QueueConfigDto implements QueueConfigUpdate {
  @ApiPropertyOptional({ ...CONCURRENCY, description: 'global concurrency tokens' })
  @OptionalField()
  @IsInt()
  @Min(CONCURRENCY.minimum)
  @Max(CONCURRENCY.maximum)
  maxConcurrentJobs?: number;

  @ApiPropertyOptional({ ...QUEUE_SIZE, description: 'queued + retrying jobs before 429' })
  @OptionalField()
  @IsInt()
  @Min(QUEUE_SIZE.minimum)
  @Max(QUEUE_SIZE.maximum)
  maxQueueSize?: number;
}

/** Queue and worker routes, answered by the leading scheduler over NATS request/reply (503 when none answers). */
@ApiTags('queue')
@ApiSecurity('bearer')
@ApiSecurity('apiKey')
@Controller('v1')
export class QueueController {
  constructor(
    @Inject(GatewayRpc) private readonly rpc: GatewayRpc,
    @Inject(JobTenants) private readonly tenants: JobTenants,
    @Inject(QueueEventsService) private readonly queueEvents: QueueEventsService,
  ) {}

  @Get('queue')
  @ApiOperation({ summary: 'Queue depth, tokens and state' })
  @ApiOkResponse({ type: QueueStateDoc })
  @ApiProblems(503)
  queue(): Promise<QueueState> {
    return this.rpc.call(SCHEDULER_RPC.queue);
  }

  @Get('queue/events')
  @ApiOperation({
    summary: "GET /v1/queue's body as Server-Sent Events: now, then on every change",
    description:
      'Each event: `event: queue`, `data` = the same JSON as `GET /v1/queue`. The first event is the current state; ' +
      "the next ones follow the leader's statistics (a pause, a depth change) within about half a second. Every " +
      'event is a whole state: a client that reconnects gets the current one first. A Gantry extension (docs/api.md).',
  })
  @ApiProduces('text/event-stream')
  @ApiOkResponse({
    description: 'text/event-stream',
    content: {
      'text/event-stream': { schema: { type: 'string', example: 'event: queue\ndata: {"paused":false,…}\n\n' } },
    },
  })
  @ApiProblems(429, 503)
  async events(@CurrentPrincipal() p: Principal, @Res() reply: FastifyReply): Promise<void> {
    await this.queueEvents.stream(reply, p.keyId);
  }

  @Get('queue/metrics')
  @ApiOperation({ summary: 'Throughput and latency figures' })
  @ApiOkResponse({ type: QueueMetricsDoc })
  @ApiProblems(503)
  metrics(): Promise<QueueMetrics> {
    return this.rpc.call(SCHEDULER_RPC.metrics);
  }

  @Post('queue/pause')
  @HttpCode(200)
  @AdminOnly()
  @ApiOperation({ summary: 'Stop dispatching (running jobs go on)' })
  @ApiOkResponse({ type: QueueStateDoc })
  @ApiProblems(400, 403, 415, 503)
  pause(@Body() body: unknown): Promise<QueueState> {
    assertNoBody(body);
    return this.rpc.call(SCHEDULER_RPC.pause);
  }

  @Post('queue/resume')
  @HttpCode(200)
  @AdminOnly()
  @ApiOperation({ summary: 'End pause and drain' })
  @ApiOkResponse({ type: QueueStateDoc })
  @ApiProblems(400, 403, 415, 503)
  resume(@Body() body: unknown): Promise<QueueState> {
    assertNoBody(body);
    return this.rpc.call(SCHEDULER_RPC.resume);
  }

  @Post('queue/drain')
  @HttpCode(200)
  @AdminOnly()
  @ApiOperation({ summary: 'Refuse new submissions (503), finish the rest' })
  @ApiOkResponse({ type: QueueStateDoc })
  @ApiProblems(400, 403, 415, 503)
  drain(@Body() body: unknown): Promise<QueueState> {
    assertNoBody(body);
    return this.rpc.call(SCHEDULER_RPC.drain);
  }

  @Post('queue/clear')
  @HttpCode(200)
  @AdminOnly()
  @ApiOperation({ summary: 'Cancel every queued job' })
  @ApiOkResponse({ type: QueueStateDoc })
  @ApiProblems(400, 403, 415, 503)
  clear(@Body() body: unknown): Promise<QueueState> {
    assertNoBody(body);
    return this.rpc.call(SCHEDULER_RPC.clear, {}, { timeoutMs: 120_000 });
  }

  @Put('queue/config')
  @AdminOnly()
  @ApiOperation({ summary: 'Change maxConcurrentJobs / maxQueueSize at runtime (kept across restarts)' })
  @ApiOkResponse({ type: QueueStateDoc, description: 'the effective values' })
  @ApiProblems(400, 403, 415, 503)
  config(@Body() dto: QueueConfigDto): Promise<QueueState> {
    return this.rpc.call(SCHEDULER_RPC.config, dto);
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
    const workers = await this.rpc.call(SCHEDULER_RPC.workers);
    return Promise.all(
      workers.map(async (w) => ({ ...w, runningJobs: await this.tenants.visibleTo(p, w.runningJobs) })),
    );
  }

  @Get('concurrency/stats')
  @ApiOperation({ summary: 'Concurrency tokens' })
  @ApiOkResponse({ type: ConcurrencyStatsDoc })
  @ApiProblems(503)
  concurrency(): Promise<ConcurrencyStats> {
    return this.rpc.call(SCHEDULER_RPC.concurrency);
  }
}
