/** Job specs for tests: the one shape most tests submit, written once. */
import type { NewJobSpec } from '@gantry/contracts';

/**
 * A no-op job of tenant `t` in the default pool: normal priority, a 60 s timeout, one attempt, no retry delays, no
 * metadata. `o` replaces any of these (and adds the rest of a spec: `dependsOn`, `runAt`, a callback …).
 */
export function noopSpec(id: string, o: Partial<NewJobSpec> = {}): NewJobSpec {
  return {
    id,
    tenant: 't',
    type: 'noop',
    input: {},
    priority: 'normal',
    pool: 'default',
    timeoutSeconds: 60,
    maxAttempts: 1,
    retryDelaysMs: [],
    metadata: {},
    ...o,
  };
}
