/** OpenAPI schemas of the queue and worker answers (types in @gantry/contracts). */
import { ApiProperty } from '@nestjs/swagger';

class DepthDoc {
  @ApiProperty() urgent!: number;
  @ApiProperty() high!: number;
  @ApiProperty() normal!: number;
  @ApiProperty() low!: number;
  @ApiProperty() total!: number;
}

export class QueueStateDoc {
  @ApiProperty() paused!: boolean;
  @ApiProperty() draining!: boolean;
  @ApiProperty({ type: DepthDoc, description: 'queued jobs by priority' }) depth!: DepthDoc;
  @ApiProperty() running!: number;
  @ApiProperty() retrying!: number;
  @ApiProperty() maxConcurrentJobs!: number;
  @ApiProperty() availableTokens!: number;
  @ApiProperty() maxQueueSize!: number;
  @ApiProperty({ description: 'live workers' }) workers!: number;
}

class PerformanceDoc {
  @ApiProperty() totalJobsProcessed!: number;
  @ApiProperty() totalJobsFailed!: number;
  @ApiProperty() totalJobsRetried!: number;
  @ApiProperty() averageProcessingSeconds!: number;
  @ApiProperty() averageWaitSeconds!: number;
  @ApiProperty() uptimeSeconds!: number;
}

export class QueueMetricsDoc {
  @ApiProperty() queueLength!: number;
  @ApiProperty() activeJobs!: number;
  @ApiProperty() activeWorkers!: number;
  @ApiProperty() utilizationPercent!: number;
  @ApiProperty() queueUtilizationPercent!: number;
  @ApiProperty({ type: PerformanceDoc }) performance!: PerformanceDoc;
}

class GpuDoc {
  @ApiProperty() index!: number;
  @ApiProperty() uuid!: string;
  @ApiProperty() name!: string;
  @ApiProperty() memoryTotalMb!: number;
}

export class WorkerDoc {
  @ApiProperty() id!: string;
  @ApiProperty() pool!: string;
  @ApiProperty() slots!: number;
  @ApiProperty({ description: 'slots in use' }) busy!: number;
  @ApiProperty({ type: [GpuDoc] }) gpus!: GpuDoc[];
  @ApiProperty({ type: [String] }) runningJobs!: string[];
  @ApiProperty({ format: 'date-time' }) lastHeartbeatAt!: string;
}

export class ConcurrencyStatsDoc {
  @ApiProperty() maxParallelJobs!: number;
  @ApiProperty() queueSize!: number;
  @ApiProperty() activeJobs!: number;
  @ApiProperty() availableTokens!: number;
  @ApiProperty() workers!: number;
}
