/**
 * `GET /v1/queue/events`: the body of `GET /v1/queue` as Server-Sent Events — once when the stream opens, then each time
 * it changes — so a dashboard follows the queue live without polling.
 *
 *     event: queue
 *     data: {"paused":false,"draining":false,"depth":{…},"running":3,…,"pools":[…]}
 *
 * Cheap whatever the number of streams and queued jobs: the gateway already receives the leader's statistics broadcast
 * (about twice a second, and at once after a change such as a pause). While at least one queue stream is open, each
 * broadcast whose totals differ from the last one sent makes this gateway ask the leader for the queue once (the same
 * O(pools × priorities) answer as `GET /v1/queue`), and the answer goes to every open stream; at most one request per
 * QUEUE_EVENTS_MIN_INTERVAL_MS, plus one every QUEUE_EVENTS_REFRESH_MS (a change only the per-pool lines show). No
 * request depends on the number of queued jobs or of streams. Each stream takes one of the gateway's event-stream slots
 * (opened by {@link SseStreams}). Every event is a whole state, so there is nothing to resume: a client that reconnects gets the
 * current state first.
 */
import { Inject, Injectable, type OnModuleDestroy } from '@nestjs/common';
import { SCHEDULER_RPC, type QueueState, type QueueStatsBroadcast } from '@gantry/contracts';
import type { Logger } from '@gantry/telemetry';
import type { FastifyReply } from 'fastify';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config';
import { GatewayNats } from '../nats/gateway-nats';
import { GatewayRpc } from '../nats/gateway-rpc';
import { LOGGER } from '../tokens';
import { SseStreams, type SseStream } from './sse-stream';

/** The totals of a broadcast that `GET /v1/queue` shows, as one comparable string. */
export function totalsSignature(b: QueueState): string {
  return JSON.stringify([
    b.paused,
    b.draining,
    b.depth,
    b.running,
    b.retrying,
    b.maxConcurrentJobs,
    b.availableTokens,
    b.maxQueueSize,
    b.workers,
    b.scheduled ?? null,
    b.waiting ?? null,
  ]);
}

@Injectable()
export class QueueEventsService implements OnModuleDestroy {
  /** Open streams, each with the last state it was sent (JSON): a stream is sent a state only if it differs. */
  private readonly streams = new Map<SseStream<QueueState>, string>();
  private unsubscribe: (() => void) | undefined;
  private refreshTimer: ReturnType<typeof setInterval> | undefined;
  /** The totals of the broadcast that last triggered a read. */
  private lastSignature: string | undefined;
  private fetching = false;
  private again = false;
  private lastFetchAt = 0;
  private delayed: ReturnType<typeof setTimeout> | undefined;

  constructor(
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
    @Inject(GatewayNats) private readonly nats: GatewayNats,
    @Inject(GatewayRpc) private readonly rpc: GatewayRpc,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(SseStreams) private readonly sse: SseStreams,
  ) {}

  /** Open queue streams on this gateway. */
  get open(): number {
    return this.streams.size;
  }

  /**
   * Opens a queue stream into `reply` ({@link SseStreams.open}: the slot, the early-close guard, headers, keepalives).
   * The current state is read first, so a stream that cannot say anything (no leader: 503, as `GET /v1/queue`) is
   * refused with a problem instead of opening silent.
   */
  async stream(reply: FastifyReply, keyId: string): Promise<void> {
    const s = await this.sse.open<QueueState>(reply, {
      keyId,
      poll: 'GET /v1/queue',
      comment: 'queue state',
      setup: () => this.rpc.call(SCHEDULER_RPC.queue),
      onClose: (closed) => {
        this.streams.delete(closed);
        if (this.streams.size === 0) this.stopFollowing();
      },
    });
    if (!s) return;
    const first = JSON.stringify(s.value);
    this.streams.set(s, first);
    s.write(queueEvent(first));
    this.startFollowing();
  }

  private startFollowing(): void {
    if (this.unsubscribe) return;
    this.unsubscribe = this.nats.onStats((b) => this.onBroadcast(b));
    this.refreshTimer = setInterval(() => this.refresh(), this.config.QUEUE_EVENTS_REFRESH_MS);
  }

  private stopFollowing(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    this.refreshTimer = undefined;
    if (this.delayed) clearTimeout(this.delayed);
    this.delayed = undefined;
    this.lastSignature = undefined;
  }

  private onBroadcast(b: QueueStatsBroadcast): void {
    const sig = totalsSignature(b);
    if (sig === this.lastSignature) return;
    this.lastSignature = sig;
    this.refresh();
  }

  /**
   * Reads the queue once (coalesced, at most once per QUEUE_EVENTS_MIN_INTERVAL_MS) and sends it to each stream whose
   * last state it is not.
   */
  private refresh(): void {
    if (this.streams.size === 0) return;
    if (this.fetching) {
      this.again = true;
      return;
    }
    const wait = this.lastFetchAt + this.config.QUEUE_EVENTS_MIN_INTERVAL_MS - Date.now();
    if (wait > 0) {
      this.delayed ??= setTimeout(() => {
        this.delayed = undefined;
        this.refresh();
      }, wait);
      return;
    }
    this.fetching = true;
    this.lastFetchAt = Date.now();
    void this.rpc
      .call(SCHEDULER_RPC.queue)
      .then((state) => {
        const json = JSON.stringify(state);
        // Per stream: a stream opened since the last read was sent its own first state, maybe this very one.
        let event: string | undefined;
        for (const [s, last] of this.streams) {
          if (last === json) continue;
          this.streams.set(s, json);
          s.write((event ??= queueEvent(json)));
        }
      })
      .catch((err: unknown) => {
        // No leader for a moment: the streams stay open (keepalives) and the next broadcast or refresh tries again.
        this.logger.debug({ err: String(err) }, 'queue state for the event streams not read');
      })
      .finally(() => {
        this.fetching = false;
        if (this.again) {
          this.again = false;
          this.refresh();
        }
      });
  }

  onModuleDestroy(): void {
    for (const s of [...this.streams.keys()]) s.close();
    this.stopFollowing();
  }
}

function queueEvent(json: string): string {
  return `event: queue\ndata: ${json}\n\n`;
}
