/**
 * `gantry.v1.events.dispatch_released` (core NATS): a worker dropped a dispatch without starting it (stale,
 * cancelled, refused). The leader gives the job its place back at once instead of waiting for the reconciliation.
 */
import { CHANNELS, SUBJECTS } from '@gantry/contracts';
import { decodePayload, type NatsHandle } from '@gantry/jetstream';
import type { Subscription } from '@nats-io/transport-node';
import type { SchedulerState } from '../domain/scheduler-state';

export class ReleasedListener {
  private sub: Subscription | undefined;

  constructor(
    private readonly nats: NatsHandle,
    private readonly state: SchedulerState,
    private readonly isLeader: () => boolean,
  ) {}

  start(): void {
    this.sub = this.nats.nc.subscribe(SUBJECTS.dispatchReleased, {
      callback: (_err, msg) => {
        if (!this.isLeader()) return;
        try {
          const r = decodePayload(CHANNELS.dispatchReleased, msg.data);
          const h = this.state.holdings.get(r.jobId);
          if (h?.state === 'dispatched' && h.generation === r.generation && h.attempt === r.attempt)
            this.state.requeue(r.jobId);
        } catch {
          // malformed notice: the reconciliation timer covers it
        }
      },
    });
  }

  stop(): void {
    this.sub?.unsubscribe();
  }
}
