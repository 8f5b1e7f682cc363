/**
 * Per-endpoint share of a tenant's pending budget (`WEBHOOK_ENDPOINT_MAX_PENDING`): one dead endpoint of a tenant must
 * not take all of its tenant's `WEBHOOK_TENANT_MAX_PENDING` from the tenant's other endpoints.
 *
 * A delivery that is about to wait while held by its tenant's consumer (not yet due, or put back by a busy endpoint or
 * an open circuit: a nak with a delay keeps it in the consumer's MaxAckPending) is **parked** instead when its endpoint
 * already has more than its share in the deliveries stream (its subject `gantry.v1.webhook.<tenant>.<endpointHash>`:
 * handed out or not yet): re-published on `gantry.v1.webhook_parked.<tenant>.<endpointHash>` of
 * `GANTRY_WEBHOOK_PARKED_V1` (no max age, no consumer: outside every MaxAckPending), then acked. Every replica moves
 * parked deliveries back, oldest first, as their endpoint's subject has room again (every `sweepMs`): re-published
 * on the tenant's subject, then deleted from the parked stream. Publish-then-ack and publish-then-delete, with message
 * ids per parked stream sequence, lose nothing on a crash (at worst a delivery is sent twice: at least once, as ever).
 * A parked delivery keeps its attempts, `notBefore` and first-attempt time, so its schedule and time budget go on.
 */
import { STREAMS, SUBJECTS, type WebhookDelivery } from '@gantry/contracts';
import { isNotFound, publishJson, type JetStreamContext, type NatsHandle } from '@gantry/jetstream';
import type { Logger } from '@gantry/telemetry';
import { endpointHash } from './endpoint';

/** How long a subject's message count is trusted before it is asked again. */
const COUNT_TTL_MS = 1_000;
/** Parked deliveries moved back per endpoint per sweep at most (the rest next sweep). */
const MOVE_BATCH = 256;

export interface ParkingOptions {
  nats: NatsHandle;
  /** WEBHOOK_ENDPOINT_MAX_PENDING. */
  perEndpoint: number;
  sweepMs: number;
  logger: Logger;
  now?: () => number;
  /** Counts each delivery parked and each moved back (the notifier's metrics). */
  counted?: { parked(): void; unparked(): void };
}

export class EndpointParking {
  private readonly counts = new Map<string, { at: number; n: number }>();
  private timer: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;
  private parkedTotal = 0;
  private movedBackTotal = 0;

  constructor(private readonly o: ParkingOptions) {}

  /** Deliveries parked and moved back by this replica so far. */
  get stats(): { parked: number; movedBack: number } {
    return { parked: this.parkedTotal, movedBack: this.movedBackTotal };
  }

  start(): void {
    this.timer = setInterval(() => {
      this.sweeping ??= this.sweep()
        .catch((err: unknown) => this.o.logger.warn({ err: String(err) }, 'moving parked deliveries back failed'))
        .finally(() => (this.sweeping = undefined));
    }, this.o.sweepMs);
    this.timer.unref();
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.sweeping;
  }

  /**
   * Parks the held delivery when its endpoint has more than its share waiting in the deliveries stream: true = parked
   * and acked (the caller must not settle it); false = the caller waits as before (nak with a delay).
   */
  async parkIfOver(d: WebhookDelivery, ctx: JetStreamContext): Promise<boolean> {
    const hash = endpointHash(d.url);
    const live = SUBJECTS.webhookOf(d.tenant, hash);
    // Deliveries enqueued before v1.1 (one subject per endpoint, the shared consumer) are left as they were.
    if (ctx.subject !== live) return false;
    const n = await this.count(live);
    if (n <= this.o.perEndpoint) return false;
    await publishJson(this.o.nats.js, SUBJECTS.webhookParked(d.tenant, hash), d, {
      msgID: `parked.${ctx.streamSequence}`,
      spanName: 'webhook park',
    });
    await ctx.ackAck();
    const c = this.counts.get(live);
    if (c) c.n--;
    this.parkedTotal++;
    this.o.counted?.parked();
    return true;
  }

  /** Messages on the subject of the deliveries stream (cached for a second unless `fresh`). */
  private async count(subject: string, fresh = false): Promise<number> {
    const now = (this.o.now ?? Date.now)();
    const c = this.counts.get(subject);
    if (!fresh && c && now - c.at < COUNT_TTL_MS) return c.n;
    const info = await this.o.nats.jsm.streams.info(STREAMS.webhooks, { subjects_filter: subject });
    const n = info.state.subjects?.[subject] ?? 0;
    this.counts.set(subject, { at: now, n });
    if (this.counts.size > 10_000) this.counts.delete(this.counts.keys().next().value!);
    return n;
  }

  /** Moves parked deliveries back, oldest first, while their endpoint's subject has room. */
  async sweep(): Promise<void> {
    const { jsm, js } = this.o.nats;
    const info = await jsm.streams.info(STREAMS.webhookParked, { subjects_filter: SUBJECTS.webhookParkedAll });
    for (const parked of Object.keys(info.state.subjects ?? {})) {
      const [, , , tenant, hash] = parked.split('.');
      if (!tenant || !hash) continue;
      const live = SUBJECTS.webhookOf(tenant, hash);
      let room = Math.min(MOVE_BATCH, this.o.perEndpoint - (await this.count(live, true)));
      while (room-- > 0) {
        let sm;
        try {
          sm = await jsm.direct.getMessage(STREAMS.webhookParked, { next_by_subj: parked, seq: 0 });
        } catch (err) {
          if (isNotFound(err)) break;
          throw err;
        }
        if (!sm) break;
        await js.publish(live, sm.data, { msgID: `unparked.${sm.seq}` });
        await jsm.streams.deleteMessage(STREAMS.webhookParked, sm.seq, false).catch((err: unknown) => {
          // Another replica moved it back at the same time (the message id de-duplicated the publish).
          if (!isNotFound(err)) throw err;
        });
        this.movedBackTotal++;
        this.o.counted?.unparked();
      }
    }
  }
}
