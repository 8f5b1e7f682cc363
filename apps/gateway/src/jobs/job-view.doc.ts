/** OpenAPI schemas of the answers (the TypeScript types live in @gantry/contracts; these describe them). */
import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { JOB_STATUSES, PRIORITIES } from '@gantry/contracts';

class ProgressDoc {
  @ApiProperty({ minimum: 0, maximum: 100 }) percent!: number;
  @ApiPropertyOptional() stage?: string;
}

class OutputDoc {
  @ApiProperty() name!: string;
  @ApiProperty({ example: 's3://gantry-outputs/jobs/01J…/out.mp4' }) url!: string;
  @ApiPropertyOptional({ description: 'presigned at read time' }) downloadUrl?: string;
  @ApiProperty() sizeBytes!: number;
}

class JobErrorDoc {
  @ApiProperty({ example: 'TIMEOUT' }) code!: string;
  @ApiProperty() message!: string;
}

export class JobViewDoc {
  @ApiProperty({ example: '01JABCDEF0123456789ABCDEFG' }) id!: string;
  @ApiProperty({ example: 'noop' }) type!: string;
  @ApiProperty({ enum: JOB_STATUSES }) status!: string;
  @ApiProperty({ enum: PRIORITIES }) priority!: string;
  @ApiProperty({ example: 'default' }) pool!: string;
  @ApiProperty({ example: 'default' }) tenant!: string;
  @ApiProperty({ type: 'object', additionalProperties: true }) input!: Record<string, unknown>;
  @ApiProperty({ type: 'object', additionalProperties: true }) metadata!: Record<string, unknown>;
  @ApiProperty() attempts!: number;
  @ApiProperty() maxAttempts!: number;
  @ApiProperty() timeoutSeconds!: number;
  @ApiProperty({ description: '1, +1 on each admin retry' }) generation!: number;
  @ApiProperty({ description: 'the number of its last event' }) sequence!: number;
  @ApiPropertyOptional({ type: ProgressDoc }) progress?: ProgressDoc;
  @ApiPropertyOptional({ description: 'while queued: jobs ahead of it (0 = next)' }) queuePosition?: number;
  @ApiPropertyOptional({ nullable: true, type: Number }) estimatedWaitSeconds?: number | null;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
  @ApiPropertyOptional({ format: 'date-time' }) startedAt?: string;
  @ApiPropertyOptional({ format: 'date-time' }) finishedAt?: string;
  @ApiPropertyOptional({ format: 'date-time' }) retryAt?: string;
  @ApiPropertyOptional() elapsedSeconds?: number;
  @ApiPropertyOptional() workerId?: string;
  @ApiPropertyOptional({ type: [String] }) gpus?: string[];
  @ApiPropertyOptional() callbackUrl?: string;
  @ApiPropertyOptional() batchId?: string;
  @ApiPropertyOptional({ description: 'the cron schedule that created the job (its runAt is the due time)' })
  scheduleId?: string;
  @ApiPropertyOptional({ description: 'what the job returned' }) result?: unknown;
  @ApiPropertyOptional({ type: [OutputDoc] }) outputs?: OutputDoc[];
  @ApiPropertyOptional({ type: JobErrorDoc }) error?: JobErrorDoc;
}

export class JobListDoc {
  @ApiProperty({ type: [JobViewDoc] }) items!: JobViewDoc[];
  @ApiProperty({ nullable: true, type: String, description: 'pass as `cursor` for the next page; null at the end' })
  nextCursor!: string | null;
}

export class BatchDoc {
  @ApiProperty() id!: string;
  @ApiProperty({ type: [JobViewDoc] }) jobs!: JobViewDoc[];
}

class BatchCountsDoc {
  @ApiProperty() queued!: number;
  @ApiProperty() running!: number;
  @ApiProperty() retrying!: number;
  @ApiProperty() completed!: number;
  @ApiProperty() failed!: number;
  @ApiProperty() cancelled!: number;
}

export class BatchStatusDoc {
  @ApiProperty() id!: string;
  @ApiProperty() total!: number;
  @ApiProperty({ type: BatchCountsDoc }) counts!: BatchCountsDoc;
}
