/**
 * One socket write per event-loop turn instead of one per message burst.
 *
 * nats.js hands its transport a frame whenever its outbound buffer has something at the end of a microtask
 * checkpoint, and the Node transport writes each frame with its own `socket.write` (a `write` system call). A service
 * that settles many jobs in one turn of the event loop (each job's publish in its own async chain) made several writes
 * per turn: `writeBuffer` was ≈ 10 % of the worker's CPU (docs/performance.md, "Writes per turn"). This corks the
 * socket at the first frame of a turn and uncorks it in that turn's check phase (`setImmediate`), so Node sends the
 * turn's frames in one `writev`. Nothing waits longer than the rest of the current turn, the order is unchanged, and
 * `socket.end()` (close, drain) uncorks first.
 *
 * The transport is nats.js's own object, replaced on every reconnect: {@link coalesceWrites} wraps the current one and
 * is called again after each reconnect (a turn's frames written meanwhile simply go out one by one, as before).
 */

interface CorkableSocket {
  cork(): void;
  uncork(): void;
  destroyed?: boolean;
}

interface WrappableTransport {
  socket?: CorkableSocket;
  send(frame: Uint8Array): void;
}

const WRAPPED = Symbol('gantry.coalesced');

/** The connection's current transport, if it is the Node transport this knows how to wrap. */
function transportOf(nc: unknown): WrappableTransport | undefined {
  const t = (nc as { protocol?: { transport?: unknown } }).protocol?.transport as WrappableTransport | undefined;
  if (!t || typeof t.send !== 'function') return undefined;
  const s = t.socket;
  if (!s || typeof s.cork !== 'function' || typeof s.uncork !== 'function') return undefined;
  return t;
}

/**
 * Wraps the connection's current transport so that a turn's frames leave in one write. Returns false when the
 * connection has no transport of the known shape (another transport, a client version that changed it): then
 * nothing is changed and every frame is written as nats.js writes it.
 */
export function coalesceWrites(nc: unknown): boolean {
  const t = transportOf(nc);
  if (!t) return false;
  const marked = t as WrappableTransport & { [WRAPPED]?: true };
  if (marked[WRAPPED]) return true;
  marked[WRAPPED] = true;
  const socket = t.socket!;
  const send = t.send.bind(t);
  let corked = false;
  const uncork = () => {
    corked = false;
    socket.uncork();
  };
  t.send = (frame: Uint8Array) => {
    if (!corked && !socket.destroyed) {
      corked = true;
      socket.cork();
      setImmediate(uncork);
    }
    send(frame);
  };
  return true;
}
