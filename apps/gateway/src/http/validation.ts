import { ValidationPipe, type ArgumentMetadata } from '@nestjs/common';
import type { FieldError } from '@gantry/contracts';
import { ValidateIf, type ValidationError, type ValidationOptions } from 'class-validator';
import { problems } from './problem';

/**
 * The field may be left out, but when present it is checked, `null` included. class-validator's `IsOptional` skips
 * `null` as well, which let `"priority": null` or `"gpu": null` through as if absent: a client that sends `null`
 * for a field has a bug we should tell it about rather than guess what it meant.
 */
export function OptionalField(options?: ValidationOptions): PropertyDecorator {
  return ValidateIf((_object: object, value: unknown) => value !== undefined, options);
}

/** Flattens class-validator's tree into `{ field: "gpu.count", message }` entries. */
export function flattenErrors(errors: readonly ValidationError[], prefix = ''): FieldError[] {
  const out: FieldError[] = [];
  for (const e of errors) {
    const field = /^\d+$/.test(e.property) ? `${prefix.replace(/\.$/, '')}[${e.property}]` : `${prefix}${e.property}`;
    for (const [kind, message] of Object.entries(e.constraints ?? {})) {
      out.push({
        field,
        message:
          kind === 'whitelistValidation' ? 'is not a known field' : message.replace(new RegExp(`^${e.property} `), ''),
      });
    }
    if (e.children?.length) out.push(...flattenErrors(e.children, `${field}.`));
  }
  return out;
}

/** Whitelist + forbid unknown fields + transform; every failure is a 400 problem with field errors. */
export class StrictValidationPipe extends ValidationPipe {
  constructor() {
    super({
      whitelist: true,
      forbidNonWhitelisted: true,
      forbidUnknownValues: true,
      transform: true,
      validationError: { target: false, value: false },
      exceptionFactory: (errors) => problems.validation(flattenErrors(errors)),
    });
  }

  override async transform(value: unknown, metadata: ArgumentMetadata): Promise<unknown> {
    if (metadata.type === 'body' && metadata.metatype && metadata.metatype !== Object) {
      if (value === undefined || value === null || typeof value !== 'object' || Array.isArray(value)) {
        throw problems.validation(
          [{ field: 'body', message: 'must be a JSON object' }],
          'the body must be a JSON object',
        );
      }
    }
    return super.transform(value, metadata);
  }
}
