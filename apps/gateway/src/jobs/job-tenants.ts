/**
 * Which tenant a job belongs to, for routes that show job ids they did not look up by tenant themselves (the
 * scheduler's `/v1/workers` view, the s3:// input policy). A job's tenant never changes, so answers are cached
 * (bounded; the oldest entry goes first).
 */
import { Inject, Injectable } from '@nestjs/common';
import type { Clock } from '@gantry/contracts';
import { JobStore } from '@gantry/job-store';
import type { Principal } from '../auth/auth';
import { GatewayNats } from '../nats/gateway-nats';
import { CLOCK } from '../tokens';

const MAX_CACHED = 100_000;

@Injectable()
export class JobTenants {
  private readonly cache = new Map<string, string>();

  constructor(
    @Inject(GatewayNats) private readonly nats: GatewayNats,
    @Inject(CLOCK) private readonly clock: Clock,
  ) {}

  /** The tenant of a job, or undefined when there is no such job. */
  async tenantOf(jobId: string): Promise<string | undefined> {
    const hit = this.cache.get(jobId);
    if (hit !== undefined) return hit;
    const tenant = (await new JobStore(this.nats.handle(), this.clock).get(jobId))?.record.tenant;
    if (tenant !== undefined) {
      if (this.cache.size >= MAX_CACHED) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(jobId, tenant);
    }
    return tenant;
  }

  /** The ids among `jobIds` that `p` may see: all for an admin key, its own tenant's for a client key. */
  async visibleTo(p: Principal, jobIds: readonly string[]): Promise<string[]> {
    if (p.role === 'admin') return [...jobIds];
    const tenants = await Promise.all(jobIds.map((id) => this.tenantOf(id)));
    return jobIds.filter((_, i) => tenants[i] === p.tenant);
  }
}
