import { Body, Controller, Get, HttpCode, Inject, Post, Put } from '@nestjs/common';
import { ApiOperation, ApiProperty, ApiPropertyOptional, ApiSecurity, ApiTags } from '@nestjs/swagger';
import type { ConcurrencyStats, QueueMetrics, QueueState, WorkerView } from '@gantry/contracts';
import { IsInt, IsOptional, Max, Min } from 'class-validator';
import { AdminOnly } from '../auth/auth';
import { SchedulerClient } from './scheduler-client';

export class QueueConfigDto {
  @ApiPropertyOptional({ minimum: 0 })
  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(1_000_000)
  maxConcurrentJobs?: number;

  @ApiPropertyOptional({ minimum: 1 })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(100_000_000)
  maxQueueSize?: number;
}

export class QueueStateDoc {
  @ApiProperty() paused!: boolean;
  @ApiProperty() draining!: boolean;
}

@ApiTags('queue')
@ApiSecurity('bearer')
@Controller('v1')
export class QueueController {
  constructor(@Inject(SchedulerClient) private readonly scheduler: SchedulerClient) {}

  @Get('queue')
  @ApiOperation({ summary: 'Queue depth, tokens and state' })
  queue(): Promise<QueueState> {
    return this.scheduler.call('queue');
  }

  @Get('queue/metrics')
  @ApiOperation({ summary: 'Throughput and latency figures' })
  metrics(): Promise<QueueMetrics> {
    return this.scheduler.call('metrics');
  }

  @Post('queue/pause')
  @HttpCode(200)
  @AdminOnly()
  @ApiOperation({ summary: 'Stop dispatching (running jobs go on)' })
  pause(): Promise<QueueState> {
    return this.scheduler.call('pause');
  }

  @Post('queue/resume')
  @HttpCode(200)
  @AdminOnly()
  @ApiOperation({ summary: 'End pause and drain' })
  resume(): Promise<QueueState> {
    return this.scheduler.call('resume');
  }

  @Post('queue/drain')
  @HttpCode(200)
  @AdminOnly()
  @ApiOperation({ summary: 'Refuse new submissions (503), finish the rest' })
  drain(): Promise<QueueState> {
    return this.scheduler.call('drain');
  }

  @Post('queue/clear')
  @HttpCode(200)
  @AdminOnly()
  @ApiOperation({ summary: 'Cancel every queued job' })
  clear(): Promise<QueueState> {
    return this.scheduler.call('clear', {}, 120_000);
  }

  @Put('queue/config')
  @AdminOnly()
  @ApiOperation({ summary: 'Change maxConcurrentJobs / maxQueueSize at runtime (kept across restarts)' })
  config(@Body() dto: QueueConfigDto): Promise<QueueState> {
    return this.scheduler.call('config', dto);
  }

  @Get('workers')
  @ApiOperation({ summary: 'Live workers, their GPUs, slots and running jobs' })
  workers(): Promise<WorkerView[]> {
    return this.scheduler.call('workers');
  }

  @Get('concurrency/stats')
  @ApiOperation({ summary: 'Concurrency tokens' })
  concurrency(): Promise<ConcurrencyStats> {
    return this.scheduler.call('concurrency');
  }
}
