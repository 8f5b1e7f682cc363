/**
 * Retries wait in their record (status `retrying`, `retryAt`), not in a broker timer: durable across any restart of
 * the scheduler or nats-server and holding no token. The leader re-queues each one when its delay is over (a
 * compare-and-set `retrying → queued`); every replica keeps the timers so a new leader picks them up at once.
 */
import { requeueAfterDelay, type Clock } from '@gantry/contracts';
import type { JobStore } from '@gantry/job-store';
import type { Logger } from '@gantry/telemetry';
import { TimerHeap } from '../domain/timer-heap';
import type { SchedulerState } from '../domain/scheduler-state';

export class RetryTimer {
  private readonly heap: TimerHeap;
  private timer: NodeJS.Timeout | undefined;
  private armedFor: number | undefined;
  private active = false;
  private firing = false;

  constructor(
    private readonly jobs: JobStore,
    private readonly state: SchedulerState,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {
    this.heap = new TimerHeap(state.retrying);
  }

  scheduled(jobId: string, retryAt: number): void {
    this.heap.push(retryAt, jobId);
    this.arm();
  }

  activate(): void {
    this.active = true;
    this.arm(true);
  }

  deactivate(): void {
    this.active = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.armedFor = undefined;
  }

  private arm(force = false): void {
    if (!this.active) return;
    const next = this.heap.peek();
    if (next === undefined) return;
    if (!force && this.armedFor !== undefined && this.armedFor <= next) return;
    if (this.timer) clearTimeout(this.timer);
    this.armedFor = next;
    const delay = Math.min(2 ** 31 - 1, Math.max(0, next - this.clock.now().getTime()));
    this.timer = setTimeout(() => void this.fire(), delay);
  }

  private async fire(): Promise<void> {
    this.timer = undefined;
    this.armedFor = undefined;
    if (!this.active || this.firing) return;
    this.firing = true;
    try {
      const now = this.clock.now();
      const due = this.heap.takeDue(now.getTime());
      const later = (id: string) => {
        // Still retrying (refused as not yet due by another clock, or the write failed): look again shortly.
        if (!this.state.retrying.has(id)) return;
        const at = Math.max(now.getTime() + 1_000, this.state.retrying.get(id) ?? 0);
        this.state.retrying.set(id, at);
        this.heap.push(at, id);
      };
      await Promise.all(
        due.map(async (id) => {
          try {
            if (!(await this.jobs.tryTransition(id, (cur) => requeueAfterDelay(cur.record, now)))) later(id);
          } catch (err) {
            this.logger.warn({ err, jobId: id }, 'could not re-queue a retry; trying again shortly');
            later(id);
          }
        }),
      );
    } finally {
      this.firing = false;
      this.arm(true);
    }
  }
}
