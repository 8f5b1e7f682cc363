/**
 * A Nest custom transport over JetStream durable pull consumers (events) and core NATS request/reply (messages).
 *
 * - `@EventPattern('<binding>')` handlers are bound to a durable consumer declared in the server's `bindings`.
 *   The server pulls only as many messages as the binding has free handler slots (`maxInFlight`), calls `working()`
 *   on a timer while a handler runs, and settles each message explicitly: the handler may ack/nak/term through its
 *   {@link JetStreamContext}; otherwise success → ack, {@link RetryLaterError} → nak(delay),
 *   {@link PoisonMessageError} → term, any other error → nak with backoff.
 * - Every event handler declares its channel (`@JetStreamHandler(binding, CHANNELS.x)`); the server decodes each
 *   payload through it before the handler runs. A payload that is not JSON or fails the channel's check is poison:
 *   terminated at once (never redelivered), logged with the reason, and counted ({@link JetStreamServer.poisoned},
 *   `gantry_transport_poison_messages_total`).
 * - `@RpcHandler(rpc)` handlers answer core NATS requests with an {@link RpcReply} envelope; a request that fails the
 *   RPC's request check gets a 400 naming the bad field. A handler returns {@link NO_REPLY} to stay silent (e.g. a
 *   standby scheduler).
 * - Every message is processed inside a consumer/server span whose parent is the W3C context in its headers.
 * - `close()` stops pulling, waits for in-flight handlers (bounded), then drains the subscriptions.
 */
import { Server, type CustomTransportStrategy, type MessageHandler } from '@nestjs/microservices';
import type { Consumer, ConsumerMessages, JsMsg } from '@nats-io/jetstream';
import type { Msg, MsgHdrs, Subscription } from '@nats-io/transport-node';
import { PayloadError, type Channel, type ConsumerDeclaration, type Rpc } from '@gantry/contracts';
import {
  ATTR,
  Counter,
  extractTrace,
  inSpan,
  processAttributes,
  spansRecorded,
  recordError,
  SpanKind,
  type Logger,
  type Registry,
} from '@gantry/telemetry';
import { lastValueFrom } from 'rxjs';
import { decodePayload } from './codec';
import type { NatsHandle } from './connection';
import { JetStreamContext, NatsRpcContext } from './context';
import type { HandlerExtras } from './decorators';
import { isNotFound, RpcError } from './errors';
import { NO_REPLY } from './no-reply';
import { ensureConsumer } from './provision';
import { replyError, replyOk } from './rpc';
import { settleAfterFailure } from './settle';

export { NO_REPLY };

export interface ConsumerBinding {
  consumer: ConsumerDeclaration;
  /** Handlers running at once for this binding; the server never pulls more than the free ones. */
  maxInFlight: number;
  /**
   * Payload bytes of the messages held at once (running or waiting for their turn); unset = unbounded. A pull asks
   * for no more messages than fit in the free bytes at `maxMessageBytes` each (at least one), so the bound is passed
   * by at most one message as long as messages are no larger than that.
   */
  maxBytesInFlight?: number;
  /**
   * The largest message expected on this consumer (e.g. a job record of MAX_JOB_BYTES), which sizes the pulls under
   * `maxBytesInFlight`; default the largest message the server accepts (1 MiB unless configured), which keeps the
   * bound strict but pulls few messages at a time. A larger message than this still goes through.
   */
  maxMessageBytes?: number;
  /** `working()` period while a handler runs; default a third of the consumer's AckWait; 0 = never. */
  heartbeatMs?: number;
  /** Long-poll length of one pull (at least 1 s, the client minimum). */
  pullExpiresMs?: number;
  /**
   * Decides from the headers alone whether the handler needs a message; one it does not need is acked at once,
   * without decoding its payload or opening a span (e.g. the notifier skipping revisions of jobs with no callback).
   */
  wants?: (headers: MsgHdrs | undefined) => boolean;
  /**
   * Fair turns across keys (e.g. tenants): at most `concurrency` handlers run at once, started round-robin over the
   * keys of the messages held — one per key per turn, a key's own messages in the order received. The messages not
   * yet started are held undecoded (renewed with `working()`, counted in `maxInFlight`/`maxBytesInFlight`), so reading
   * ahead is cheap and a key with few messages is not queued behind the thousands of another key read before them.
   * The key comes from the headers alone (no decoding). Unset: every message pulled starts its handler at once.
   */
  fair?: { key: (headers: MsgHdrs | undefined) => string; concurrency: number };
}

export interface JetStreamServerOptions {
  nats: NatsHandle;
  bindings: Record<string, ConsumerBinding>;
  logger: Logger;
  /** Queue group for `@MessagePattern` subscriptions (each request answered once). Unset = every replica answers. */
  rpcQueueGroup?: string;
  /** How long `close()` waits for in-flight handlers. */
  drainTimeoutMs?: number;
  /** Where to count poison messages (`gantry_transport_poison_messages_total{binding}`); unset = not exported. */
  registry?: Registry;
}

function extrasOf(handler: MessageHandler): HandlerExtras {
  return (handler.extras ?? {}) as HandlerExtras;
}

interface Loop {
  binding: string;
  stop(): void;
  done: Promise<void>;
  inFlight(): number;
}

/**
 * Messages held for their key's turn: one FIFO per key, the keys' rotation in map order (a key served with more
 * waiting moves to the back). Hand-written (a few lines): p-queue / p-limit order by arrival or priority, not by key.
 */
class FairHold {
  private readonly queues = new Map<string, JsMsg[]>();
  private held = 0;

  get size(): number {
    return this.held;
  }

  push(key: string, m: JsMsg): void {
    const q = this.queues.get(key);
    if (q) q.push(m);
    else this.queues.set(key, [m]);
    this.held++;
  }

  /** The next message in turn, or undefined when none is held. */
  shift(): JsMsg | undefined {
    const first = this.queues.entries().next();
    if (first.done) return undefined;
    const [key, q] = first.value;
    const m = q.shift()!;
    this.queues.delete(key);
    if (q.length > 0) this.queues.set(key, q);
    this.held--;
    return m;
  }

  all(): JsMsg[] {
    return [...this.queues.values()].flat();
  }

  clear(): void {
    this.queues.clear();
    this.held = 0;
  }
}

export class JetStreamServer extends Server implements CustomTransportStrategy {
  private readonly loops: Loop[] = [];
  private readonly subs: Subscription[] = [];
  private readonly rpcTasks = new Set<Promise<void>>();
  private readonly poison = new Map<string, number>();
  private readonly poisonCounter?: Counter;
  private closing = false;

  constructor(private readonly options: JetStreamServerOptions) {
    super();
    if (options.registry) {
      this.poisonCounter = new Counter({
        name: 'gantry_transport_poison_messages_total',
        help: 'Messages terminated without reaching their handler: the payload broke its channel contract',
        labelNames: ['binding'],
        registers: [options.registry],
      });
    }
  }

  /** Poison messages terminated so far, per binding. */
  poisoned(): Record<string, number> {
    return Object.fromEntries(this.poison);
  }

  override on(): never {
    throw new Error('JetStreamServer does not emit transport events; watch NatsHandle status instead');
  }

  override unwrap<T>(): T {
    return this.options.nats.nc as T;
  }

  override listen(callback: (err?: unknown) => void): void {
    this.start().then(
      () => callback(),
      (err: unknown) => callback(err),
    );
  }

  private async start(): Promise<void> {
    for (const [pattern, handler] of this.messageHandlers) {
      if (handler.isEventHandler) {
        const binding = this.options.bindings[pattern];
        if (!binding) throw new Error(`@EventPattern('${pattern}') has no consumer binding in JetStreamServer options`);
        if (handler.next) throw new Error(`binding ${pattern} has two handlers; give each consumer exactly one`);
        const channel = extrasOf(handler).channel;
        if (!channel)
          throw new Error(`binding ${pattern} declares no channel; use @JetStreamHandler(binding, channel)`);
        await ensureConsumer(this.options.nats.jsm, binding.consumer, this.options.logger);
        const consumer = await this.options.nats.js.consumers.get(
          binding.consumer.stream,
          binding.consumer.durable_name,
        );
        this.loops.push(this.pullLoop(pattern, binding, consumer, handler, channel));
      } else {
        const rpc = extrasOf(handler).rpc;
        if (!rpc) throw new Error(`@MessagePattern('${pattern}') declares no RPC; use @RpcHandler(rpc)`);
        const sub = this.options.nats.nc.subscribe(
          pattern,
          this.options.rpcQueueGroup ? { queue: this.options.rpcQueueGroup } : {},
        );
        this.subs.push(sub);
        void this.rpcLoop(sub, pattern, handler, rpc);
      }
    }
  }

  /**
   * After a failed pull: if the durable consumer is gone (deleted by an operator, or by the scheduler declaring this
   * worker lost while it was cut off), create it again from its declaration, so the process serves again instead of
   * pulling from nothing forever.
   */
  private async recoverConsumer(binding: ConsumerBinding, current: Consumer): Promise<Consumer> {
    const { jsm, js } = this.options.nats;
    try {
      await jsm.consumers.info(binding.consumer.stream, binding.consumer.durable_name);
      return current;
    } catch (err) {
      if (!isNotFound(err)) return current;
    }
    await ensureConsumer(jsm, binding.consumer, this.options.logger);
    this.options.logger.warn(
      { stream: binding.consumer.stream, consumer: binding.consumer.durable_name },
      'durable consumer was gone; created it again',
    );
    return js.consumers.get(binding.consumer.stream, binding.consumer.durable_name);
  }

  private pullLoop(
    pattern: string,
    binding: ConsumerBinding,
    initial: Consumer,
    handler: MessageHandler,
    channel: Channel<unknown>,
  ): Loop {
    const log = this.options.logger;
    const ackWaitMs = binding.consumer.ack_wait / 1_000_000;
    const heartbeatMs = binding.heartbeatMs ?? Math.max(100, Math.floor(ackWaitMs / 3));
    let stopped = false;
    let current: ConsumerMessages | undefined;
    let inFlight = 0;
    let bytesInFlight = 0;
    const maxBytes = binding.maxBytesInFlight;
    let wake: (() => void) | undefined;
    const slotFreed = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    const idle = new Set<Promise<void>>();
    const fair = binding.fair;
    const hold = new FairHold();
    let running = 0;
    // Held messages are renewed like running ones (a running handler's are renewed by handleJs).
    const renew =
      fair && heartbeatMs > 0
        ? setInterval(() => {
            for (const m of hold.all()) m.working();
          }, heartbeatMs)
        : undefined;

    const start = (m: JsMsg) => {
      const size = m.data.length;
      running++;
      const task = this.handleJs(pattern, m, handler, channel, heartbeatMs).finally(() => {
        running--;
        inFlight--;
        bytesInFlight -= size;
        idle.delete(task);
        startInTurn();
        slotFreed();
      });
      idle.add(task);
    };
    const startInTurn = () => {
      while (!stopped && fair && running < fair.concurrency) {
        const next = hold.shift();
        if (!next) return;
        start(next);
      }
    };

    let consumer = initial;
    const done = (async () => {
      let failures = 0;
      while (!stopped) {
        const free = binding.maxInFlight - inFlight;
        if (free <= 0 || (maxBytes !== undefined && bytesInFlight >= maxBytes)) {
          await new Promise<void>((r) => (wake = r));
          continue;
        }
        try {
          current = await consumer.fetch({
            max_messages:
              maxBytes === undefined
                ? free
                : Math.min(free, this.batchWithin(maxBytes - bytesInFlight, binding.maxMessageBytes)),
            expires: Math.max(1_000, binding.pullExpiresMs ?? 5_000),
          });
          for await (const m of current) {
            if (binding.wants && !binding.wants(m.headers)) {
              m.ack();
              continue;
            }
            inFlight++;
            bytesInFlight += m.data.length;
            if (fair) {
              hold.push(fair.key(m.headers), m);
              startInTurn();
            } else {
              start(m);
            }
          }
          failures = 0;
        } catch (err) {
          if (stopped) break;
          failures++;
          const delay = Math.min(5_000, 100 * 2 ** Math.min(failures, 6));
          log.warn({ binding: pattern, err: String(err), retryInMs: delay }, 'pull failed; retrying');
          await new Promise((r) => setTimeout(r, delay));
          if (!stopped) consumer = await this.recoverConsumer(binding, consumer).catch(() => consumer);
        }
      }
      // Held messages never started go back at once (another replica may take them), not after AckWait.
      for (const m of hold.all()) m.nak();
      hold.clear();
      if (renew) clearInterval(renew);
      await Promise.allSettled([...idle]);
    })();

    return {
      binding: pattern,
      inFlight: () => inFlight,
      done,
      stop: () => {
        stopped = true;
        current?.stop();
        slotFreed();
      },
    };
  }

  /**
   * Messages one pull may ask for so that messages of the largest expected size fit in `bytes` (at least one). The
   * client cannot combine a message and a byte limit in one pull, so the byte bound is kept by the batch size.
   */
  private batchWithin(bytes: number, largestExpected?: number): number {
    const largest = largestExpected ?? this.options.nats.nc.info?.max_payload ?? 1024 * 1024;
    return Math.max(1, Math.floor(bytes / largest));
  }

  private async handleJs(
    pattern: string,
    m: JsMsg,
    handler: MessageHandler,
    channel: Channel<unknown>,
    heartbeatMs: number,
  ): Promise<void> {
    const ctx = new JetStreamContext(m, pattern, this.options.nats.nc);
    const parent = extractTrace(m.headers);
    // Id-only spans keep no attributes: not built at all.
    const attributes = spansRecorded()
      ? processAttributes(m.subject, {
          [ATTR.consumer]: pattern,
          [ATTR.deliveryCount]: m.info.deliveryCount,
          [ATTR.streamSeq]: m.seq,
          ...(m.headers?.get('Nats-Msg-Id') ? { [ATTR.messageId]: m.headers.get('Nats-Msg-Id') } : {}),
        })
      : undefined;
    await inSpan(
      `${m.subject} process`,
      { kind: SpanKind.CONSUMER, parent, ...(attributes ? { attributes } : {}) },
      async (span) => {
        let data: unknown;
        try {
          data = decodePayload(channel, m.data);
        } catch (err) {
          recordError(span, err);
          this.terminatePoison(pattern, ctx, m, err);
          return;
        }
        const timer = heartbeatMs > 0 ? setInterval(() => ctx.working(), heartbeatMs) : undefined;
        try {
          await lastValueFrom(this.transformToObservable(await handler(data, ctx)), { defaultValue: undefined });
          ctx.ack();
        } catch (err) {
          recordError(span, err);
          settleAfterFailure(ctx, m, err, {
            logger: this.options.logger,
            item: 'message',
            onPoison: () => this.countPoison(pattern),
          });
        } finally {
          if (timer) clearInterval(timer);
        }
      },
    );
  }

  private countPoison(binding: string): void {
    this.poison.set(binding, (this.poison.get(binding) ?? 0) + 1);
    this.poisonCounter?.inc({ binding });
  }

  /** A payload that breaks its channel contract: it can never be processed, by this handler or any other. */
  private terminatePoison(pattern: string, ctx: JetStreamContext, m: JsMsg, err: unknown): void {
    this.countPoison(pattern);
    this.options.logger.error(
      {
        binding: pattern,
        subject: m.subject,
        seq: m.seq,
        deliveryCount: m.info.deliveryCount,
        reason: err instanceof Error ? err.message : String(err),
      },
      'poison message: the payload breaks its channel contract; terminating it',
    );
    ctx.term();
  }

  private async rpcLoop(
    sub: Subscription,
    pattern: string,
    handler: MessageHandler,
    rpc: Rpc<unknown, unknown>,
  ): Promise<void> {
    for await (const m of sub) {
      const task = this.handleRpc(pattern, m, handler, rpc).finally(() => this.rpcTasks.delete(task));
      this.rpcTasks.add(task);
    }
  }

  private async handleRpc(pattern: string, m: Msg, handler: MessageHandler, rpc: Rpc<unknown, unknown>): Promise<void> {
    const parent = extractTrace(m.headers);
    await inSpan(
      `${pattern} process`,
      { kind: SpanKind.SERVER, parent, attributes: processAttributes(m.subject) },
      async (span) => {
        if (!m.reply) return;
        let data: unknown;
        try {
          data = decodePayload({ name: `${rpc.name} request`, parse: (v) => rpc.parseRequest(v) }, m.data);
        } catch (err) {
          const reason = err instanceof PayloadError ? err.message : String(err);
          this.options.logger.warn({ subject: m.subject, reason }, 'refused a malformed request');
          replyError(m, 400, 'Bad request', reason);
          return;
        }
        try {
          const out = await lastValueFrom(this.transformToObservable(await handler(data, new NatsRpcContext(m))), {
            defaultValue: undefined,
          });
          if (out === NO_REPLY) return;
          replyOk(m, out);
        } catch (err) {
          if (err instanceof RpcError) {
            replyError(m, err.status, err.title, err.detail);
            return;
          }
          recordError(span, err);
          this.options.logger.error({ err, subject: m.subject }, 'request handler failed');
          replyError(m, 500, 'Internal error', err instanceof Error ? err.message : String(err));
        }
      },
    );
  }

  /** Handlers currently running, per binding (for readiness and shutdown logs). */
  inFlight(): Record<string, number> {
    return Object.fromEntries(this.loops.map((l) => [l.binding, l.inFlight()]));
  }

  override async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    for (const l of this.loops) l.stop();
    const timeout = this.options.drainTimeoutMs ?? 30_000;
    const all = Promise.allSettled([...this.loops.map((l) => l.done), ...this.rpcTasks]);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([all, new Promise((r) => (timer = setTimeout(r, timeout)))]);
    if (timer) clearTimeout(timer);
    await Promise.allSettled(this.subs.map((s) => s.drain()));
  }
}
