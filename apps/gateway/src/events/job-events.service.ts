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
import { PassThrough } from 'node:stream';
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
import { GATEWAY_CONFIG, type GatewayConfig } from '../config';
import { HttpMetrics } from '../http/http-metrics';
import { GatewayNats } from '../nats/gateway-nats';
import { CLOCK, LOGGER, OUTPUT_STORE } from '../tokens';
import { SseSlots } from './sse-slots';

/** One SSE message. `data` must not contain line breaks (JSON.stringify output does not). */
export function sseMessage(id: number, event: string, data: string): string {
  return `id: ${id}\nevent: ${event}\ndata: ${data}\n\n`;
}

@Injectable()
export class JobEventsService implements OnModuleDestroy {
  /** Streams set up and not yet closed. */
  private readonly closers = new Set<() => void>();

  constructor(
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
    @Inject(GatewayNats) private readonly nats: GatewayNats,
    @Inject(CLOCK) private readonly clock: Clock,
    @Inject(OUTPUT_STORE) private readonly outputs: OutputStore,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(HttpMetrics) private readonly metrics: HttpMetrics,
    @Inject(SseSlots) private readonly slots: SseSlots,
  ) {}

  get open(): number {
    return this.slots.open;
  }

  /**
   * Starts streaming job `jobId`'s events after sequence `after` into `reply` (the caller checked access).
   *
   * The slot is taken before anything is awaited and released on every way out: the client going away before the
   * stream is set up (the socket's `close` is listened to first, and checked again once the consumer exists), an
   * error while setting up, the client going away mid-stream, the job ending, and the gateway stopping.
   */
  async stream(jobId: string, after: number, reply: FastifyReply, keyId: string): Promise<void> {
    const release = this.slots.take(keyId, `GET /v1/jobs/${jobId}`);
    const socket = reply.raw;
    let gone = false;
    const onEarlyClose = () => {
      gone = true;
      release();
    };
    socket.once('close', onEarlyClose);
    let messages: ConsumerMessages;
    try {
      const nats = this.nats.handle();
      const consumer = await nats.js.consumers.get(STREAMS.jobs, {
        filter_subjects: SUBJECTS.job(jobId),
        deliver_policy: DeliverPolicy.All,
      });
      messages = await consumer.consume();
    } catch (err) {
      socket.off('close', onEarlyClose);
      release();
      throw err;
    }
    socket.off('close', onEarlyClose);
    if (gone || socket.destroyed || socket.req.destroyed) {
      // The client left while the consumer was being created: nothing to send it.
      release();
      // Closing an ordered consumer nobody reads: a failure leaves it to the server's inactivity expiry.
      void messages.close().catch(() => undefined);
      return;
    }
    const out = new PassThrough();
    let closed = false;
    const keepalive = setInterval(() => out.write(': keepalive\n\n'), this.config.SSE_KEEPALIVE_MS);
    const close = () => {
      if (closed) return;
      closed = true;
      clearInterval(keepalive);
      this.closers.delete(close);
      release();
      this.metrics.sseStreams.dec();
      // The stream is over either way; a consumer that fails to close expires on the server when idle.
      void messages.close().catch(() => undefined);
      out.end();
    };
    this.closers.add(close);
    this.metrics.sseStreams.inc();
    socket.on('close', close);
    void reply
      .status(200)
      .headers({
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        // nginx and friends: do not buffer the stream.
        'x-accel-buffering': 'no',
      })
      .send(out);
    out.write(`retry: 2000\n: events of job ${jobId}\n\n`);

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
            out.write(sseMessage(e.sequence, e.type, JSON.stringify(body)));
          }
          // The end: a terminal revision with nothing after it (yet). A later admin retry would be a new stream.
          if (isTerminal(stored.record.status) && m.info.pending === 0) break;
        }
      } catch (err) {
        this.logger.warn({ err, jobId }, 'event stream ended by an error');
      } finally {
        close();
      }
    })();
  }

  onModuleDestroy(): void {
    for (const close of [...this.closers]) close();
  }
}
