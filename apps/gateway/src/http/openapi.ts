/** OpenAPI building blocks shared by controllers: the problem+json schema and the error answers of a route. */
import { applyDecorators } from '@nestjs/common';
import { ApiExtraModels, ApiProperty, ApiPropertyOptional, ApiResponse, getSchemaPath } from '@nestjs/swagger';

export class FieldErrorDoc {
  @ApiProperty({ example: 'input.durationMs' }) field!: string;
  @ApiProperty({ example: 'must be an integer from 0 to 3600000' }) message!: string;
}

export class ProblemDoc {
  @ApiProperty({ example: 'urn:gantry:problem:validation-error' }) type!: string;
  @ApiProperty({ example: 'Invalid request' }) title!: string;
  @ApiProperty({ example: 400 }) status!: number;
  @ApiProperty({ example: 'the job is not valid (1 error)' }) detail!: string;
  @ApiPropertyOptional({ example: '/v1/jobs' }) instance?: string;
  @ApiPropertyOptional({ type: [FieldErrorDoc] }) errors?: FieldErrorDoc[];
}

const DESCRIPTIONS: Record<number, string> = {
  400: 'invalid body, field, query or header (every field error listed)',
  401: 'missing or unknown API key',
  403: 'this route needs an admin key',
  404: 'no such job or batch (or another tenant’s)',
  409: 'the job is not in a state that allows this',
  413: 'body too large, or more than MAX_JOBS_PER_BATCH jobs',
  415: 'write routes take application/json only',
  422: 'this Idempotency-Key was used with a different body',
  429: 'queue full or rate limited (Retry-After)',
  503: 'draining, NATS unavailable or the scheduler not answering (Retry-After)',
};

/** Documents the problem+json answers a route can give (401 is added to every `/v1` route). */
export function ApiProblems(...statuses: number[]): MethodDecorator & ClassDecorator {
  return applyDecorators(
    ApiExtraModels(ProblemDoc, FieldErrorDoc),
    ...[...new Set([401, ...statuses])].map((status) =>
      ApiResponse({
        status,
        description: DESCRIPTIONS[status] ?? 'error',
        content: { 'application/problem+json': { schema: { $ref: getSchemaPath(ProblemDoc) } } },
      }),
    ),
  );
}
