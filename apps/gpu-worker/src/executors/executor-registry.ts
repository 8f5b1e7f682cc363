import { CatalogError, type JobTypeRegistry } from '@gantry/contracts';
import type { JobExecutor } from './executor';

/** Maps every known job type to exactly one executor; boot fails on a type with none or two. */
export class ExecutorRegistry {
  private readonly byType = new Map<string, JobExecutor>();

  constructor(types: JobTypeRegistry, executors: readonly JobExecutor[]) {
    for (const e of executors) {
      for (const t of e.types) {
        if (this.byType.has(t)) throw new CatalogError(`job type ${t} has two executors`);
        this.byType.set(t, e);
      }
    }
    const missing = types.names().filter((t) => !this.byType.has(t));
    if (missing.length) throw new CatalogError(`no executor for job type(s): ${missing.join(', ')}`);
  }

  get(type: string): JobExecutor | undefined {
    return this.byType.get(type);
  }

  types(): string[] {
    return [...this.byType.keys()];
  }
}
