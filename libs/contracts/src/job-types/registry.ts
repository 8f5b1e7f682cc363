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

  /** Field errors for `type` + `input`; an unknown type is itself an error. */
  validate(type: string, input: unknown): FieldError[] {
    const def = this.types.get(type);
    if (!def) return [{ field: 'type', message: `unknown job type "${type}"; known: ${this.names().join(', ')}` }];
    return def.validate(input);
  }
}
