/**
 * `GET /v1/jobs/{id}/events`: the job's lifecycle as Server-Sent Events. Each public revision of the job (its subject
 * in the jobs stream, read with an ordered consumer from the first message) is sent as
 *
 *     id: <sequence>
 *     event: job.started
 *     data: {"type":"job.started","timestamp":…,"sequence":…,"generation":…,"data":{job view}}
 *
 * — the same `type` and body as the webhook of that event (download URLs presigned when sent). The stream replays the
 * history first, then follows live, and ends after a terminal event that is the job's latest revision (an admin retry
 * after a terminal event continues the stream with the new generation). `Last-Event-ID` resumes after that sequence.
 * A comment line every SSE_KEEPALIVE_MS keeps proxies from closing a quiet stream. Each stream takes one of the
 * gateway's event-stream slots ({@link SseSlots}: SSE_MAX_STREAMS, SSE_MAX_STREAMS_PER_KEY).
 */
import { Inject, Injectable, type OnModuleDestroy } from '@nestjs/common';
import {
  expandStored,
  isPublicEvent,
  isTerminal,
  STREAMS,
  SUBJECTS,
  toJobView,
  type Clock,
  type WebhookBody,
} from '@gantry/contracts';
import { decodeStored } from '@gantry/job-store';
import type { OutputStore } from '@gantry/storage';
import type { Logger } from '@gantry/telemetry';
import { DeliverPolicy, type ConsumerMessages } from '@nats-io/jetstream';
import type { FastifyReply } from 'fastify';
import { GatewayNats } from '../nats/gateway-nats';
import { CLOCK, LOGGER, OUTPUT_STORE } from '../tokens';
import { SseSlots } from './sse-slots';
import { SseStreams, type SseStream } from './sse-stream';

/** One SSE message. `data` must not contain line breaks (JSON.stringify output does not). */
export function sseMessage(id: number, event: string, data: string): string {
  return `id: ${id}\nevent: ${event}\ndata: ${data}\n\n`;
}

@Injectable()
export class JobEventsService implements OnModuleDestroy {
  /** Streams set up and not yet closed. */
  private readonly streams = new Set<SseStream<ConsumerMessages>>();

  constructor(
    @Inject(GatewayNats) private readonly nats: GatewayNats,
    @Inject(CLOCK) private readonly clock: Clock,
    @Inject(OUTPUT_STORE) private readonly outputs: OutputStore,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(SseSlots) private readonly slots: SseSlots,
    @Inject(SseStreams) private readonly sse: SseStreams,
  ) {}

  get open(): number {
    return this.slots.open;
  }

  /**
   * Starts streaming job `jobId`'s events after sequence `after` into `reply` (the caller checked access).
   *
   * Opened by {@link SseStreams.open} (the slot, the early-close guard, headers, keepalives); the stream is closed, and
   * its consumer with it, when the client goes away, the job ends, the consumer fails, or the gateway stops.
   */
  async stream(jobId: string, after: number, reply: FastifyReply, keyId: string): Promise<void> {
    const stream = await this.sse.open<ConsumerMessages>(reply, {
      keyId,
      poll: `GET /v1/jobs/${jobId}`,
      comment: `events of job ${jobId}`,
      setup: async () => {
        const nats = this.nats.handle();
        const consumer = await nats.js.consumers.get(STREAMS.jobs, {
          filter_subjects: SUBJECTS.job(jobId),
          deliver_policy: DeliverPolicy.All,
        });
        return consumer.consume();
      },
      // Closing an ordered consumer nobody reads: a failure leaves it to the server's inactivity expiry.
      discard: (messages) => void messages.close().catch(() => undefined),
      onClose: (s) => {
        this.streams.delete(s);
        // The stream is over either way; a consumer that fails to close expires on the server when idle.
        void s.value.close().catch(() => undefined);
      },
    });
    if (!stream) return;
    this.streams.add(stream);
    const messages = stream.value;

    void (async () => {
      try {
        for await (const m of messages) {
          const stored = decodeStored(m);
          // An outcome that also records its attempt's start is sent as the derived job.started, then itself.
          for (const s of expandStored(stored)) {
            const e = s.event;
            if (!isPublicEvent(e.type) || e.sequence <= after) continue;
            const view = toJobView(s.record, new Date(e.timestamp), {
              ...(s.record.outputs?.length ? { downloadUrls: await this.outputs.presignAll(s.record.outputs) } : {}),
            });
            const body: WebhookBody = {
              type: e.type,
              timestamp: e.timestamp,
              sequence: e.sequence,
              generation: e.generation,
              data: view,
            };
            stream.write(sseMessage(e.sequence, e.type, JSON.stringify(body)));
          }
          // The end: a terminal revision with nothing after it (yet). A later admin retry would be a new stream.
          if (isTerminal(stored.record.status) && m.info.pending === 0) break;
        }
      } catch (err) {
        this.logger.warn({ err, jobId }, 'event stream ended by an error');
      } finally {
        stream.close();
      }
    })();
  }

  onModuleDestroy(): void {
    for (const s of [...this.streams]) s.close();
  }
}
