import { loadCatalog, CatalogError } from './catalog';
import { ffmpegJobType } from './ffmpeg';
import type { FieldError, JobTypeDefinition } from './job-type';
import { noopJobType } from './noop';

/** The job types a deployment knows: the built-ins plus the operator catalog. Built once at boot. */
export class JobTypeRegistry {
  private readonly types = new Map<string, JobTypeDefinition>();

  constructor(types: readonly JobTypeDefinition[]) {
    for (const t of types) {
      if (this.types.has(t.name)) throw new CatalogError(`job type ${t.name} is defined twice`);
      this.types.set(t.name, t);
    }
  }

  /** Built-ins plus `JOB_TYPES_FILE` when given. Throws when the catalog is invalid or clashes with a built-in. */
  static load(jobTypesFile?: string): JobTypeRegistry {
    const catalog = jobTypesFile ? loadCatalog(jobTypesFile) : [];
    return new JobTypeRegistry([noopJobType, ffmpegJobType, ...catalog]);
  }

  get(name: string): JobTypeDefinition | undefined {
    return this.types.get(name);
  }

  names(): string[] {
    return [...this.types.keys()];
  }

  /**
   * Field errors for `type` + `input`; an unknown type is itself an error. With `upload` (the job has `upload.url`),
   * the job must write exactly one output: a presigned PUT URL names one object.
   */
  validate(type: string, input: unknown, options: { upload?: boolean } = {}): FieldError[] {
    const def = this.types.get(type);
    if (!def) return [{ field: 'type', message: `unknown job type "${type}"; known: ${this.names().join(', ')}` }];
    const errors = def.validate(input);
    if (options.upload && errors.length === 0) {
      const n = def.outputCount?.(input) ?? 0;
      if (n !== 1)
        errors.push({
          field: 'upload.url',
          message: `needs a job that writes exactly one output (this ${type} job writes ${n})`,
        });
    }
    return errors;
  }
}
