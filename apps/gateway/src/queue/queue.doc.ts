/** OpenAPI schemas of the queue and worker answers (types in @gantry/contracts). */
import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';

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
  @ApiPropertyOptional({ description: 'jobs scheduled (runAt not reached yet); not in depth. Gantry extension' })
  scheduled?: number;
  @ApiPropertyOptional({ description: 'jobs waiting for their parents (dependsOn); not in depth. Gantry extension' })
  waiting?: number;
  @ApiPropertyOptional({
    type: () => [PoolStateDoc],
    description: 'queued jobs per pool and priority, and scheduled jobs per pool, sorted by pool. Gantry extension',
  })
  pools?: PoolStateDoc[];
}

class PoolStateDoc {
  @ApiProperty() pool!: string;
  @ApiProperty({ type: DepthDoc, description: 'queued jobs of the pool by priority' }) depth!: DepthDoc;
  @ApiProperty({ description: 'scheduled jobs of the pool' }) scheduled!: number;
  @ApiPropertyOptional({ description: 'waiting jobs of the pool' }) waiting?: number;
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

export class GpuDoc {
  @ApiProperty({ description: 'unique on the worker; MIG device d of GPU g is 100 × (g + 1) + d' }) index!: number;
  @ApiProperty({ description: 'GPU-… or, for a MIG instance, MIG-…' }) uuid!: string;
  @ApiProperty() name!: string;
  @ApiProperty() memoryTotalMb!: number;
  @ApiProperty({ type: Number, nullable: true, description: 'last sample; null when unknown' })
  memoryUsedMb!: number | null;
  @ApiProperty({ type: Number, nullable: true }) memoryFreeMb!: number | null;
  @ApiProperty({ type: Number, nullable: true }) utilizationPercent!: number | null;
  @ApiProperty({ type: Number, nullable: true }) temperatureC!: number | null;
  @ApiProperty({ type: Number, nullable: true, description: 'uncorrected volatile ECC errors' })
  eccErrors!: number | null;
  @ApiProperty({ description: 'XID errors read from the kernel log since the worker started' }) xidErrors!: number;
  @ApiProperty({ type: String, nullable: true, format: 'date-time' }) sampledAt!: string | null;
  @ApiProperty() mig!: boolean;
  @ApiPropertyOptional({ description: 'the physical GPU of a MIG instance' }) parentUuid?: string;
  @ApiProperty({ enum: ['ok', 'cordoned'] }) health!: 'ok' | 'cordoned';
  @ApiPropertyOptional() cordonReason?: string;
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
