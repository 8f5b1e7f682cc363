/** The scheduler's Prometheus metrics. Gauges read the state when scraped; counters move as things happen. */
import { PRIORITIES, type StoredJob } from '@gantry/contracts';
import { Counter, DURATION_BUCKETS, Gauge, Histogram, type Registry } from '@gantry/telemetry';
import type { SchedulerState } from '../domain/scheduler-state';
import { registerTenantMetrics } from './tenant-metrics';

export class SchedulerMetrics {
  private readonly dispatches: Counter<'pool'>;
  private readonly dispatchWait: Histogram<'pool'>;
  private readonly outcomes: Counter<'pool' | 'type' | 'outcome'>;
  private readonly runTime: Histogram<'type' | 'outcome'>;
  private readonly waitTime: Histogram<'type'>;
  private readonly lost: Counter;
  private readonly fences: Counter;
  private readonly aborted: Counter<'reason'>;
  private readonly leaseErrors: Counter<'op'>;
  private readonly retention: Counter;

  constructor(
    registry: Registry,
    state: SchedulerState,
    isLeader: () => boolean,
    settings: () => { maxQueueSize: number },
  ) {
    const registers = [registry];
    registerTenantMetrics(registry, state);
    new Gauge({
      name: 'gantry_queue_depth',
      help: 'Queued jobs by pool and priority (dispatched-not-started included)',
      labelNames: ['pool', 'priority'],
      registers,
      collect() {
        this.reset();
        const pools = new Set([
          // Pools with live workers are exported even when empty, so a dashboard shows 0 rather than nothing.
          ...[...state.capacity.allWorkers()].map((w) => w.pool),
          ...state.index.poolNames(),
          ...[...state.holdings.values()].map((h) => h.pool),
        ]);
        for (const pool of pools) {
          const d = state.index.depth(pool);
          for (const h of state.holdings.values())
            if (h.state === 'dispatched' && h.pool === pool) d.byLevel[h.level]!++;
          PRIORITIES.forEach((p, i) => this.set({ pool, priority: p }, d.byLevel[i]!));
        }
      },
    });
    new Gauge({
      name: 'gantry_queue_max_size',
      help: 'MAX_QUEUE_SIZE in force',
      registers,
      collect() {
        this.set(settings().maxQueueSize);
      },
    });
    new Gauge({
      name: 'gantry_jobs_retrying',
      help: 'Jobs waiting out a retry delay',
      registers,
      collect() {
        this.set(state.retrying.size);
      },
    });
    new Gauge({
      name: 'gantry_jobs_scheduled',
      help: 'Jobs scheduled for later (runAt / delaySeconds) by pool: no token, not in the queue depth',
      labelNames: ['pool'],
      registers,
      collect() {
        this.reset();
        for (const pool of state.index.poolNames()) this.set({ pool }, 0);
        for (const [pool, n] of state.scheduledDepths()) this.set({ pool }, n);
      },
    });
    new Gauge({
      name: 'gantry_jobs_waiting',
      help: 'Jobs waiting for their dependencies (dependsOn) by pool: no token, not in the queue depth',
      labelNames: ['pool'],
      registers,
      collect() {
        this.reset();
        for (const pool of state.index.poolNames()) this.set({ pool }, 0);
        for (const [pool, n] of state.waitingDepths()) this.set({ pool }, n);
      },
    });
    new Gauge({
      name: 'gantry_jobs_running',
      help: 'Attempts running on workers',
      registers,
      collect() {
        this.set(state.runningCount());
      },
    });
    new Gauge({
      name: 'gantry_tokens_in_use',
      help: 'Concurrency tokens held (dispatched or running attempts)',
      registers,
      collect() {
        this.set(state.capacity.used);
      },
    });
    new Gauge({
      name: 'gantry_tokens_max',
      help: 'Global concurrency tokens (maxConcurrentJobs)',
      registers,
      collect() {
        this.set(state.capacity.maxConcurrent);
      },
    });
    new Gauge({
      name: 'gantry_tenant_tokens_in_use',
      help: 'Tokens held per tenant',
      labelNames: ['tenant'],
      registers,
      collect() {
        this.reset();
        const per = new Map<string, number>();
        for (const r of state.capacity.allReservations()) per.set(r.tenant, (per.get(r.tenant) ?? 0) + 1);
        for (const [tenant, n] of per) this.set({ tenant }, n);
      },
    });
    new Gauge({
      name: 'gantry_worker_slots',
      help: 'Worker slots by pool and state',
      labelNames: ['pool', 'state'],
      registers,
      collect() {
        this.reset();
        for (const w of state.capacity.allWorkers()) {
          this.inc({ pool: w.pool, state: 'total' }, w.slots);
          this.inc({ pool: w.pool, state: 'busy' }, w.used);
        }
      },
    });
    new Gauge({
      name: 'gantry_gpu_memory_reserved_mb',
      help: 'GPU memory reserved by running or dispatched jobs, per worker GPU',
      labelNames: ['worker', 'gpu'],
      registers,
      collect() {
        this.reset();
        for (const w of state.capacity.allWorkers())
          for (const g of w.gpus) this.set({ worker: w.id, gpu: String(g.index) }, g.reservedMb);
      },
    });
    new Gauge({
      name: 'gantry_scheduler_leader',
      help: '1 on the leading scheduler',
      registers,
      collect() {
        this.set(isLeader() ? 1 : 0);
      },
    });
    this.dispatches = new Counter({
      name: 'gantry_dispatches_total',
      help: 'Jobs dispatched to a worker',
      labelNames: ['pool'],
      registers,
    });
    this.dispatchWait = new Histogram({
      name: 'gantry_dispatch_latency_seconds',
      help: 'Time from entering the queue to dispatch',
      labelNames: ['pool'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.outcomes = new Counter({
      name: 'gantry_jobs_finished_total',
      help: 'Jobs that reached a terminal state',
      labelNames: ['pool', 'type', 'outcome'],
      registers,
    });
    this.runTime = new Histogram({
      name: 'gantry_job_run_seconds',
      help: 'Run time of the final attempt by job type and outcome',
      labelNames: ['type', 'outcome'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.waitTime = new Histogram({
      name: 'gantry_job_wait_seconds',
      help: 'Time from entering the queue to starting, by job type',
      labelNames: ['type'],
      buckets: DURATION_BUCKETS,
      registers,
    });
    let retriesSeen = 0;
    new Counter({
      name: 'gantry_job_retries_total',
      help: 'Failed attempts that went to a retry delay (seen live by this replica)',
      registers,
      collect() {
        const now = state.counters.retried;
        if (now > retriesSeen) this.inc(now - retriesSeen);
        retriesSeen = now;
      },
    });
    this.lost = new Counter({ name: 'gantry_workers_lost_total', help: 'Workers declared lost', registers });
    this.fences = new Counter({
      name: 'gantry_leader_fenced_total',
      help: 'Times this scheduler found itself fenced off',
      registers,
    });
    this.aborted = new Counter({
      name: 'gantry_scheduler_takeovers_aborted_total',
      help: 'Takeovers abandoned before dispatching (reason: projection_behind), the leader stepping down',
      labelNames: ['reason'],
      registers,
    });
    this.leaseErrors = new Counter({
      name: 'gantry_leader_lease_errors_total',
      help: 'Leader lease calls that failed for another reason than a lost race (NATS down, timeouts), by op',
      labelNames: ['op'],
      registers,
    });
    this.retention = new Counter({
      name: 'gantry_retention_removed_total',
      help: 'Terminal jobs removed after JOB_RETENTION_HOURS (record, events, listing entry, outputs)',
      registers,
    });
  }

  dispatched(pool: string, waitedMs: number): void {
    this.dispatches.inc({ pool });
    this.dispatchWait.observe({ pool }, Math.max(0, waitedMs) / 1000);
  }

  started(s: StoredJob): void {
    const r = s.record;
    if (r.startedAt)
      this.waitTime.observe({ type: r.type }, Math.max(0, (Date.parse(r.startedAt) - Date.parse(r.enqueuedAt)) / 1000));
  }

  finished(s: StoredJob): void {
    const r = s.record;
    this.outcomes.inc({ pool: r.pool, type: r.type, outcome: r.status });
    if (r.startedAt && r.finishedAt) {
      this.runTime.observe(
        { type: r.type, outcome: r.status },
        Math.max(0, (Date.parse(r.finishedAt) - Date.parse(r.startedAt)) / 1000),
      );
    }
  }

  workerLost(): void {
    this.lost.inc();
  }

  takeoverAborted(reason: 'projection_behind'): void {
    this.aborted.inc({ reason });
  }

  leaseError(op: 'acquire' | 'renew'): void {
    this.leaseErrors.inc({ op });
  }

  fenced(): void {
    this.fences.inc();
  }

  retentionRemoved(n: number): void {
    this.retention.inc(n);
  }
}
