/**
 * Request bodies, validated with class-validator (whitelist + forbid unknown fields) and described for OpenAPI.
 * Job-type-specific `input` is validated afterwards against the type's own schema.
 */
import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import {
  BATCH_REF,
  PRIORITIES,
  type BatchRequest,
  type JobRequest,
  type Priority,
  SUBJECT_TOKEN,
} from '@gantry/contracts';
import { Type } from 'class-transformer';
import {
  ArrayMaxSize,
  ArrayMinSize,
  ArrayUnique,
  IsArray,
  IsIn,
  IsInt,
  IsObject,
  IsString,
  Matches,
  Max,
  MaxLength,
  Min,
  ValidateNested,
  registerDecorator,
  type ValidationOptions,
} from 'class-validator';
import { OptionalField } from '../http/validation';

/** Parents a job may name in `dependsOn`. */
export const MAX_DEPENDS_ON = 100;

/** A `dependsOn` entry: a job id, or inside a batch `ref:<ref>` (an earlier job of the same batch). */
export const DEPENDS_ON_ENTRY = /^(ref:)?[A-Za-z0-9_-]{1,64}$/;

/**
 * An instant: date, time and a zone (`Z` or `±hh:mm`), seconds and up to 9 fraction digits optional. Kept strict
 * (no bare dates, no zone-less local times, which `Date.parse` reads in the gateway's own zone).
 */
export const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;

/** The JSON of the value is at most `bytes` long. */
export function MaxJsonSize(bytes: number, options?: ValidationOptions) {
  return (object: object, propertyName: string) =>
    registerDecorator({
      name: 'maxJsonSize',
      target: object.constructor,
      propertyName,
      options: { message: `must serialize to at most ${bytes} bytes of JSON`, ...options },
      validator: { validate: (v: unknown) => v === undefined || Buffer.byteLength(JSON.stringify(v) ?? '') <= bytes },
    });
}

export class GpuDto {
  @ApiProperty({ minimum: 0, maximum: 16, description: 'GPUs the job needs (0 = none)' })
  @IsInt()
  @Min(0)
  @Max(16)
  count!: number;

  @ApiPropertyOptional({ minimum: 0, description: 'memory to reserve on each GPU, in MB' })
  @OptionalField()
  @IsInt()
  @Min(0)
  @Max(10_000_000)
  memoryMb?: number;
}

export class UploadDto {
  @ApiProperty({ description: 'presigned PUT URL that receives the output (or the error when the job fails)' })
  @IsString()
  @MaxLength(8_192)
  url!: string;
}

/** A rule made stricter here on a field `job-fast-path.ts` knows must be made stricter there too (see that file). */
export class SubmitJobDto implements JobRequest {
  @ApiProperty({ example: 'noop', description: 'job type: noop, ffmpeg, or an operator-defined type' })
  @IsString()
  @Matches(/^[a-z][a-z0-9-]{0,62}$/, { message: 'must be a job type name' })
  type!: string;

  @ApiPropertyOptional({ type: 'object', additionalProperties: true, description: 'parameters for the job type' })
  @OptionalField()
  @IsObject()
  @MaxJsonSize(256 * 1024)
  input?: Record<string, unknown>;

  @ApiPropertyOptional({ enum: PRIORITIES, default: 'normal' })
  @OptionalField()
  @IsIn(PRIORITIES)
  priority?: Priority;

  @ApiPropertyOptional({ default: 'default', pattern: SUBJECT_TOKEN.source })
  @OptionalField()
  @IsString()
  @Matches(SUBJECT_TOKEN, { message: 'must match [A-Za-z0-9_-]{1,64}' })
  pool?: string;

  @ApiPropertyOptional({
    description: 'http(s) URL that receives Standard Webhooks for every lifecycle event',
    maxLength: 2_048,
  })
  @OptionalField()
  @IsString()
  @MaxLength(2_048)
  callbackUrl?: string;

  @ApiPropertyOptional({
    description: 'sent as Authorization: Bearer <token> with each webhook (visible ASCII, no spaces)',
    maxLength: 4_096,
  })
  @OptionalField()
  @IsString()
  @MaxLength(4_096)
  // It becomes an HTTP header value: no spaces, controls or line breaks (header injection).
  @Matches(/^[\x21-\x7e]+$/, { message: 'must be visible ASCII characters without spaces' })
  callbackToken?: string;

  @ApiPropertyOptional({ minimum: 1, maximum: 604800, description: 'per-attempt timeout (download, run, upload)' })
  @OptionalField()
  @IsInt()
  @Min(1)
  @Max(604_800)
  timeoutSeconds?: number;

  @ApiPropertyOptional({ minimum: 1, maximum: 100 })
  @OptionalField()
  @IsInt()
  @Min(1)
  @Max(100)
  maxAttempts?: number;

  @ApiPropertyOptional({ type: GpuDto })
  @OptionalField()
  // ValidateNested alone accepts an array of GpuDto (`"gpu": [{"count":1}]`), and `[]` vacuously.
  @IsObject()
  @ValidateNested()
  @Type(() => GpuDto)
  gpu?: GpuDto;

  @ApiPropertyOptional({ type: UploadDto })
  @OptionalField()
  @IsObject()
  @ValidateNested()
  @Type(() => UploadDto)
  upload?: UploadDto;

  @ApiPropertyOptional({ type: 'object', additionalProperties: true, description: 'any JSON, at most 8 KiB' })
  @OptionalField()
  @IsObject()
  @MaxJsonSize(8 * 1024)
  metadata?: Record<string, unknown>;

  @ApiPropertyOptional({
    format: 'date-time',
    description:
      'run no earlier than this ISO-8601 time with a time zone (ms precision; not with delaySeconds, at most ' +
      'MAX_DELAY_SECONDS ahead): the job is `scheduled` until then; a time in the past queues it at once',
  })
  @OptionalField()
  @IsString()
  @MaxLength(64)
  @Matches(ISO_INSTANT, { message: 'must be an ISO-8601 date-time with a time zone, e.g. 2026-12-02T15:00:00.000Z' })
  runAt?: string;

  @ApiPropertyOptional({
    minimum: 0,
    description: 'run no earlier than this many seconds after acceptance (not with runAt; at most MAX_DELAY_SECONDS)',
  })
  @OptionalField()
  @IsInt()
  @Min(0)
  delaySeconds?: number;

  @ApiPropertyOptional({
    type: [String],
    maxItems: MAX_DEPENDS_ON,
    uniqueItems: true,
    example: ['01JDXJ4V6Y8Q9R2S3T4U5V6W7X'],
    description:
      'since v1.1: parents (job ids of the same tenant; inside a batch also `ref:<ref>` of an EARLIER job of the ' +
      'batch): the job is `waiting` until every one of them completed, and ends `cancelled` with DEPENDENCY_FAILED ' +
      "when one ends failed or cancelled. An unknown id, or another tenant's, is a 400 `unknown job`. An ffmpeg or " +
      "catalog input may name a parent's declared output as `job:<parent id>/<name>` (in a batch `job:ref:<ref>/<name>`)",
  })
  @OptionalField()
  @IsArray()
  @ArrayMaxSize(MAX_DEPENDS_ON)
  @ArrayUnique()
  @IsString({ each: true })
  @Matches(DEPENDS_ON_ENTRY, { each: true, message: 'each entry must be a job id or ref:<batch ref>' })
  dependsOn?: string[];

  @ApiPropertyOptional({
    pattern: BATCH_REF.source,
    description:
      'since v1.1, in a batch only: a name for this job, unique in the batch, that later jobs of the batch use in ' +
      '`dependsOn` (`ref:<name>`) and inputs (`job:ref:<name>/<output>`)',
  })
  @OptionalField()
  @IsString()
  @Matches(BATCH_REF, { message: 'must match [A-Za-z0-9_-]{1,64}' })
  ref?: string;
}

/**
 * `POST /v1/batches`. Documented here for OpenAPI; validated by `JobRequestValidator`, which checks each job like a
 * single submit (field paths `jobs[i].…`) and answers 413 above MAX_JOBS_PER_BATCH before looking at any job.
 */
export class SubmitBatchDto implements BatchRequest {
  @ApiProperty({ type: [SubmitJobDto], minItems: 1, description: 'at most MAX_JOBS_PER_BATCH jobs (else 413)' })
  @IsArray()
  @ArrayMinSize(1)
  jobs!: SubmitJobDto[];

  @ApiPropertyOptional({ description: 'default callbackUrl for jobs without one', maxLength: 2_048 })
  @OptionalField()
  @IsString()
  @MaxLength(2_048)
  callbackUrl?: string;
}

export class PriorityDto {
  @ApiProperty({ enum: PRIORITIES })
  @IsIn(PRIORITIES)
  priority!: Priority;
}
