/** Per-GPU Prometheus metrics of a worker: live figures (read at scrape time) and cordon counts. */
import type { GpuStatus } from '@gantry/contracts';
import { Counter, Gauge, type Registry } from '@gantry/telemetry';
import type { CordonKind } from './gpu-health';

type GpuLabel = 'uuid' | 'index' | 'name' | 'mig';

export class GpuMetrics {
  private readonly cordons: Counter<'kind'>;

  constructor(registry: Registry, statuses: () => GpuStatus[]) {
    const registers = [registry];
    const labelNames: GpuLabel[] = ['uuid', 'index', 'name', 'mig'];
    const labels = (g: GpuStatus) => ({ uuid: g.uuid, index: String(g.index), name: g.name, mig: String(!!g.mig) });
    const gauge = (name: string, help: string, value: (g: GpuStatus) => number | null | undefined) =>
      new Gauge({
        name,
        help,
        labelNames,
        registers,
        collect() {
          this.reset();
          for (const g of statuses()) {
            const v = value(g);
            // Unknown figures ([N/A], MIG, a stale sample) are left out rather than exported as 0.
            if (v !== null && v !== undefined) this.set(labels(g), v);
          }
        },
      });
    gauge('gantry_gpu_memory_total_mb', 'Memory of the GPU (MiB)', (g) => g.memoryTotalMb);
    gauge('gantry_gpu_memory_used_mb', 'Memory in use on the GPU, last sample (MiB)', (g) => g.memoryUsedMb);
    gauge('gantry_gpu_memory_free_mb', 'Free memory on the GPU, last sample (MiB)', (g) => g.memoryFreeMb);
    gauge('gantry_gpu_utilization_percent', 'GPU utilization, last sample (%)', (g) => g.utilizationPercent);
    gauge('gantry_gpu_temperature_celsius', 'GPU temperature, last sample (°C)', (g) => g.temperatureC);
    gauge('gantry_gpu_ecc_errors', 'Uncorrected volatile ECC errors of the GPU', (g) => g.eccErrors);
    gauge('gantry_gpu_xid_errors', 'XID errors read from the kernel log since the worker started', (g) => g.xidErrors);
    gauge('gantry_gpu_cordoned', '1 while the GPU is cordoned (no new work)', (g) => (g.health === 'cordoned' ? 1 : 0));
    this.cordons = new Counter({
      name: 'gantry_gpu_cordons_total',
      help: 'GPUs cordoned, by cause (ecc, xid, start-failures, admin)',
      labelNames: ['kind'],
      registers,
    });
  }

  cordoned(kind: CordonKind): void {
    this.cordons.inc({ kind });
  }
}
