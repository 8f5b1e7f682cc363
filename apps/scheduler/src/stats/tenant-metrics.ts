/** Per-tenant fair-share gauges (read from the state when scraped; one series per tenant with work or usage). */
import { Gauge, type Registry } from '@gantry/telemetry';
import type { TenantView } from '@gantry/contracts';
import type { SchedulerState } from '../domain/scheduler-state';
import { tenantViews } from '../domain/tenant-views';

const GAUGES: readonly [name: string, help: string, field: keyof Omit<TenantView, 'tenant'>][] = [
  ['gantry_tenant_queued_jobs', 'Queued jobs per tenant (dispatched-not-started included)', 'queued'],
  ['gantry_tenant_running_jobs', 'Running jobs per tenant', 'running'],
  ['gantry_tenant_weight', 'Fair-share weight per tenant (TENANT_WEIGHTS)', 'weight'],
  ['gantry_tenant_used_slot_seconds', 'Decayed GPU-slot-seconds per tenant', 'usedSlotSeconds'],
  ['gantry_tenant_share_percent', "Tenant's part of all decayed usage, percent", 'sharePercent'],
  ['gantry_tenant_entitled_percent', 'Weight over the weights of tenants with work now, percent', 'entitledPercent'],
];

export function registerTenantMetrics(registry: Registry, state: SchedulerState): void {
  // One computation per scrape shared by the gauges (the first gauge collected refreshes it).
  let cache: { at: number; views: TenantView[] } | undefined;
  const views = (): TenantView[] => {
    const now = Date.now();
    if (!cache || now - cache.at > 250) cache = { at: now, views: tenantViews(state) };
    return cache.views;
  };
  for (const [name, help, field] of GAUGES) {
    new Gauge({
      name,
      help,
      labelNames: ['tenant'],
      registers: [registry],
      collect() {
        this.reset();
        for (const v of views()) this.set({ tenant: v.tenant }, v[field]);
      },
    });
  }
}
