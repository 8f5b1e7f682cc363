/**
 * `GET /v1/tenants` and `/v1/tenants/me` from the scheduler's state: O(pools × levels × tenants + holdings), computed
 * on request (never per dispatch decision).
 */
import type { TenantView } from '@gantry/contracts';
import type { SchedulerState } from './scheduler-state';

const round2 = (n: number) => Math.round(n * 100) / 100;

/**
 * Every tenant with queued or running work, decayed usage left, or a configured weight — or only `only` (always
 * answered, zeros when it has nothing). Sorted by tenant name.
 */
export function tenantViews(state: SchedulerState, now = state.fair.time(), only?: string): TenantView[] {
  const queued = state.index.tenantDepths();
  const running = new Map<string, number>();
  for (const h of state.holdings.values()) {
    const m = h.state === 'dispatched' ? queued : running;
    m.set(h.tenant, (m.get(h.tenant) ?? 0) + 1);
  }
  const used = new Map<string, number>();
  let usedTotal = 0;
  for (const s of state.fair.snapshot(now)) {
    used.set(s.tenant, s.usedSlotSeconds);
    usedTotal += s.usedSlotSeconds;
  }
  const names = new Set<string>([...queued.keys(), ...running.keys(), ...used.keys()]);
  for (const t of state.fair.configuredTenants()) names.add(t);
  let activeWeight = 0;
  for (const t of names) if ((queued.get(t) ?? 0) + (running.get(t) ?? 0) > 0) activeWeight += state.fair.weight(t);
  const view = (tenant: string): TenantView => {
    const weight = state.fair.weight(tenant);
    const q = queued.get(tenant) ?? 0;
    const r = running.get(tenant) ?? 0;
    const u = used.get(tenant) ?? 0;
    return {
      tenant,
      weight,
      queued: q,
      running: r,
      usedSlotSeconds: round2(u),
      sharePercent: usedTotal > 0 ? round2((u / usedTotal) * 100) : 0,
      entitledPercent: q + r > 0 && activeWeight > 0 ? round2((weight / activeWeight) * 100) : 0,
    };
  };
  if (only !== undefined) return [view(only)];
  return [...names].sort().map(view);
}
