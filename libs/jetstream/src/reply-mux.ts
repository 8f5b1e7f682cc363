/**
 * JetStream requests (acked publishes, direct reads) without nats.js's per-request cost. `nc.request`, which
 * `js.publish` and `jsm.direct.getMessage` use, builds `new RequestError("cancelled")` with a stack trace after every
 * answered request (`RequestOne.resolver` calls `cancel()`, which rejects its already-settled promise with a fresh
 * error; no option turns it off), and adds a timer, a random token and a Request object per call: 3–7 % of each
 * service's CPU on the hot paths (docs/performance.md, "Our own publish path").
 *
 * Here a request is a plain publish whose reply subject lies under ONE wildcard subscription per connection
 * (`<inbox>.*`, made on first use; nats.js re-subscribes it after a reconnect), the pending requests are a Map keyed by
 * the reply token, and ONE interval sweeps the expired ones. Callers get what nats.js gives them, errors included:
 * a no-responders reply (status 503, empty body) rejects with the RequestError/NoRespondersError pair `nc.request`
 * builds, an expired request with `TimeoutError`, a closed or draining connection with `ClosedConnectionError` /
 * `DrainingConnectionError` at once (never left to the timeout).
 */
import {
  createInbox,
  errors as natsErrors,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  type Subscription,
} from '@nats-io/nats-core';

/** How often expired requests are looked for: a request times out between `timeoutMs` and `timeoutMs + SWEEP_MS`. */
export const SWEEP_MS = 100;

interface Pending {
  readonly subject: string;
  readonly deadline: number;
  readonly resolve: (m: Msg) => void;
  readonly reject: (e: Error) => void;
}

export interface MuxRequestOptions {
  headers?: MsgHdrs | undefined;
  timeoutMs: number;
}

export class ReplyMux {
  private sub: Subscription | undefined;
  private prefix = '';
  private next = 0;
  private readonly pending = new Map<string, Pending>();
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly o: { inboxPrefix?: string | undefined; sweepMs?: number } = {},
  ) {
    void this.watchPermissionErrors();
  }

  /** Requests sent and not yet answered, timed out or rejected. */
  get size(): number {
    return this.pending.size;
  }

  /** Publishes `payload` to `subject` with a reply subject of ours; resolves with the first reply. */
  request(subject: string, payload: Uint8Array, o: MuxRequestOptions): Promise<Msg> {
    if (this.nc.isClosed()) return Promise.reject(new natsErrors.ClosedConnectionError());
    if (this.nc.isDraining()) return Promise.reject(new natsErrors.DrainingConnectionError());
    if (!(o.timeoutMs >= 1)) {
      return Promise.reject(natsErrors.InvalidArgumentError.format('timeout', 'must be greater than 0'));
    }
    let prefix: string;
    try {
      prefix = this.subscribed();
    } catch (err) {
      return Promise.reject(err as Error);
    }
    // A counter, not a random token: the inbox is random already, and a token is never reused.
    const token = (this.next++).toString(36);
    return new Promise<Msg>((resolve, reject) => {
      this.pending.set(token, { subject, deadline: Date.now() + o.timeoutMs, resolve, reject });
      try {
        this.nc.publish(
          subject,
          payload,
          o.headers ? { reply: prefix + token, headers: o.headers } : { reply: prefix + token },
        );
      } catch (err) {
        this.pending.delete(token);
        reject(err as Error);
        return;
      }
      if (!this.sweeper) {
        this.sweeper = setInterval(() => this.sweep(), this.o.sweepMs ?? SWEEP_MS);
        // Pending requests never hold the process open by themselves: the connection does while it is open, and its
        // close rejects them.
        this.sweeper.unref();
      }
    });
  }

  /** The reply prefix, subscribing `<inbox>.*` first if there is no live subscription. */
  private subscribed(): string {
    if (this.sub && !this.sub.isClosed()) return this.prefix;
    const prefix = `${createInbox(this.o.inboxPrefix)}.`;
    const sub = this.nc.subscribe(`${prefix}*`, { callback: (err, msg) => this.onReply(err, msg) });
    this.sub = sub;
    this.prefix = prefix;
    void sub.closed.then((err) => this.onClosed(sub, err));
    return prefix;
  }

  /**
   * A publish the server refuses (`-ERR 'Permissions Violation for Publish to …'`) reaches the client only as a status
   * error naming the subject; nats.js rejects the request to that subject with it, and so do we (the oldest one: the
   * server sends one error per refused publish). Ends when the connection closes.
   */
  private async watchPermissionErrors(): Promise<void> {
    for await (const s of this.nc.status()) {
      if (s.type !== 'error' || !(s.error instanceof natsErrors.PermissionViolationError)) continue;
      const pe = s.error;
      if (pe.operation !== 'publish') continue;
      for (const [token, p] of this.pending) {
        if (p.subject !== pe.subject) continue;
        this.pending.delete(token);
        p.reject(new natsErrors.RequestError(pe.message, { cause: pe }));
        break;
      }
    }
  }

  private onReply(err: Error | null, msg: Msg): void {
    if (err) {
      // The subscription itself failed (e.g. a permissions violation): nothing can be answered any more.
      this.rejectAll(new natsErrors.RequestError(err.message, { cause: err }));
      return;
    }
    const token = msg.subject.substring(this.prefix.length);
    const p = this.pending.get(token);
    if (!p) return; // Timed out already, or a reply to an earlier subscription.
    this.pending.delete(token);
    if (msg.data.length === 0 && msg.headers?.code === 503) {
      // What nc.request rejects with (noAsyncTraces): callers tell it apart with `isNoResponders()`.
      const cause = new natsErrors.NoRespondersError(p.subject);
      p.reject(new natsErrors.RequestError(cause.message, { cause }));
      return;
    }
    p.resolve(msg);
  }

  private onClosed(sub: Subscription, err: void | Error): void {
    if (this.sub !== sub) return;
    this.sub = undefined;
    // We never unsubscribe it: it ends with an error of its own (a permissions violation), with a drain, or with the
    // connection's close (which closes the subscriptions before `isClosed()` turns true).
    const why = err
      ? new natsErrors.RequestError(err.message, { cause: err })
      : this.nc.isDraining()
        ? new natsErrors.DrainingConnectionError()
        : new natsErrors.ClosedConnectionError();
    this.rejectAll(why);
  }

  private rejectAll(err: Error): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) p.reject(err);
    this.stopSweep();
  }

  private sweep(): void {
    const now = Date.now();
    for (const [token, p] of this.pending) {
      if (p.deadline > now) continue;
      this.pending.delete(token);
      p.reject(new natsErrors.TimeoutError());
    }
    if (this.pending.size === 0) this.stopSweep();
  }

  private stopSweep(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
  }
}

const muxes = new WeakMap<NatsConnection, ReplyMux>();

/** The connection's one reply mux (made on first use). */
export function replyMux(nc: NatsConnection, inboxPrefix?: string): ReplyMux {
  let mux = muxes.get(nc);
  if (!mux) {
    mux = new ReplyMux(nc, { inboxPrefix });
    muxes.set(nc, mux);
  }
  return mux;
}
