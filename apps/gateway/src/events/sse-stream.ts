/**
 * The one way this gateway opens a Server-Sent Events response, shared by every SSE route (a job's events, the
 * queue's state): take an event-stream slot ({@link SseSlots}) before anything is awaited, set the stream's source up
 * while watching for the client leaving, then send the headers, the `retry:` line and a comment, keep the stream
 * alive with a comment line every SSE_KEEPALIVE_MS, and give everything back exactly once however it ends.
 */
import { PassThrough } from 'node:stream';
import { Inject, Injectable } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config';
import { HttpMetrics } from '../http/http-metrics';
import { SseSlots } from './sse-slots';

/** An open event stream. */
export interface SseStream<T> {
  /** What `setup` produced. */
  readonly value: T;
  /** Writes SSE text (whole messages or comments); nothing once the stream is closed. */
  write(text: string): void;
  /** Ends the stream: idempotent. Runs on the client going away, and when the route or the gateway ends it. */
  close(): void;
}

export interface SseOpenOptions<T> {
  /** The API key id the slot is counted against. */
  keyId: string;
  /** What to poll instead, named in a refusal (429, 503). */
  poll: string;
  /** The comment sent after the `retry:` line, naming the stream. */
  comment: string;
  /** Sets the stream's source up (a consumer, a first read). Its error refuses the stream (the slot is given back). */
  setup: () => Promise<T>;
  /** Called with what `setup` produced when the client left while it ran: nothing is sent, release it. */
  discard?: (value: T) => void;
  /** Called once when the stream closes, however (after the slot is given back and the body ended). */
  onClose?: (stream: SseStream<T>) => void;
}

@Injectable()
export class SseStreams {
  constructor(
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
    @Inject(SseSlots) private readonly slots: SseSlots,
    @Inject(HttpMetrics) private readonly metrics: HttpMetrics,
  ) {}

  /**
   * Opens an event stream into `reply`, or answers `undefined` when the client left before it could be set up (the
   * slot is given back and `discard` called). The slot is taken synchronously, before anything is awaited (the cap
   * holds under concurrent requests: {@link SseSlots.take} throws the 503 / 429 problem), and released on every way
   * out: the client going away before the stream is set up (the socket's `close` is listened to first, and checked
   * again once `setup` is done), an error in `setup`, the client going away mid-stream, and `close()`.
   */
  async open<T>(reply: FastifyReply, o: SseOpenOptions<T>): Promise<SseStream<T> | undefined> {
    const release = this.slots.take(o.keyId, o.poll);
    const socket = reply.raw;
    let gone = false;
    const onEarlyClose = () => {
      gone = true;
      release();
    };
    socket.once('close', onEarlyClose);
    let value: T;
    try {
      value = await o.setup();
    } catch (err) {
      socket.off('close', onEarlyClose);
      release();
      throw err;
    }
    socket.off('close', onEarlyClose);
    if (gone || socket.destroyed || socket.req.destroyed) {
      // The client left while the stream was being set up: nothing to send it.
      release();
      o.discard?.(value);
      return undefined;
    }
    const out = new PassThrough();
    let closed = false;
    const keepalive = setInterval(() => out.write(': keepalive\n\n'), this.config.SSE_KEEPALIVE_MS);
    const stream: SseStream<T> = {
      value,
      write: (text) => {
        if (!closed) out.write(text);
      },
      close: () => {
        if (closed) return;
        closed = true;
        clearInterval(keepalive);
        release();
        this.metrics.sseStreams.dec();
        out.end();
        o.onClose?.(stream);
      },
    };
    this.metrics.sseStreams.inc();
    socket.on('close', stream.close);
    void reply
      .status(200)
      .headers({
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        // nginx and friends: do not buffer the stream.
        'x-accel-buffering': 'no',
      })
      .send(out);
    out.write(`retry: 2000\n: ${o.comment}\n\n`);
    return stream;
  }
}
