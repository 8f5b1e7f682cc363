import { Counter, DURATION_BUCKETS, Gauge, Histogram, type Registry } from '@gantry/telemetry';

export class WorkerMetrics {
  private readonly attempts: Counter<'type' | 'outcome'>;
  private readonly duration: Histogram<'type' | 'outcome'>;

  constructor(registry: Registry, view: () => { slots: number; busy: number; gpus: number }) {
    const registers = [registry];
    new Gauge({
      name: 'gantry_worker_slots_total',
      help: 'Slots of this worker',
      registers,
      collect() {
        this.set(view().slots);
      },
    });
    new Gauge({
      name: 'gantry_worker_slots_busy',
      help: 'Slots running an attempt',
      registers,
      collect() {
        this.set(view().busy);
      },
    });
    new Gauge({
      name: 'gantry_worker_gpus',
      help: 'GPUs this worker discovered',
      registers,
      collect() {
        this.set(view().gpus);
      },
    });
    this.attempts = new Counter({
      name: 'gantry_worker_attempts_total',
      help: 'Attempts finished by type and outcome',
      labelNames: ['type', 'outcome'],
      registers,
    });
    this.duration = new Histogram({
      name: 'gantry_worker_attempt_seconds',
      help: 'Attempt duration (download, run, upload) by type and outcome',
      labelNames: ['type', 'outcome'],
      buckets: DURATION_BUCKETS,
      registers,
    });
  }

  attemptFinished(type: string, outcome: string, seconds: number): void {
    this.attempts.inc({ type, outcome });
    this.duration.observe({ type, outcome }, seconds);
  }
}
