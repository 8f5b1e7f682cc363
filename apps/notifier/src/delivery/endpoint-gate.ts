/**
 * Bounded work per endpoint (one URL origin), per notifier replica:
 *
 * - at most `concurrency` attempts in flight and `queueLimit` deliveries waiting in memory for a slot; any further
 *   delivery is deferred back to the stream (`nak` with a delay) for about as long as the endpoint needs to work off
 *   what is ahead of it, so a backlog is not redelivered over and over;
 * - a circuit breaker: after `failureThreshold` consecutive failed attempts the circuit opens. While it is open the
 *   endpoint gets one request at a time (the probe: a delivery that is due goes out when nothing else to the endpoint
 *   is in flight); every other due delivery waits for the probe's verdict, in memory (`queueLimit`) or in the stream
 *   (deferred, at most `cooldownMs`), and **no attempt is counted for waiting** (API.md §5: an attempt counts only when
 *   a request was sent). A probe's 2xx closes the circuit and the waiting deliveries go out at once; a failed probe
 *   hands the turn to the next due delivery. The delivery service dead-letters a delivery that waited out its whole
 *   schedule's time budget (see `timeBudgetMs`).
 *
 * A dead or hanging endpoint therefore costs at most `concurrency + queueLimit` handler slots for one timeout, then
 * one request at a time: never the other endpoints' turn. Plain class with an injected clock so it is unit-tested.
 */

export interface EndpointGateOptions {
  concurrency: number;
  queueLimit: number;
  /** Consecutive failures that open the circuit; 0 disables the circuit. */
  failureThreshold: number;
  /** Longest a due delivery waits in the stream for an open circuit's verdict before it checks again. */
  cooldownMs: number;
  /** Upper bound of one attempt, used to estimate how long a busy endpoint stays busy. */
  timeoutMs: number;
  /** Longest deferral of a delivery waiting for a busy endpoint. */
  maxDeferMs?: number;
  now?: () => number;
  random?: () => number;
}

/** The decision for one delivery that is due. */
export type Admission =
  /**
   * Attempt now; call `done` exactly once with the outcome, or `release` instead when no request is sent after all
   * (the slot is freed, no verdict is recorded).
   */
  | { kind: 'attempt'; probe: boolean; done: (ok: boolean, status?: number) => void; release: () => void }
  /**
   * The endpoint is busy, or its circuit is open and a probe is out: put the delivery back for `delayMs` (no attempt
   * counted). `circuit` is set when it waits for an open circuit's verdict.
   */
  | { kind: 'defer'; delayMs: number; circuit?: { failures: number; lastStatus?: number } };

interface Waiter {
  resolve: (a: Admission) => void;
  bypassCircuit: boolean;
}

interface EndpointState {
  inFlight: number;
  /** Start times of the attempts in flight, by attempt number. */
  started: Map<number, number>;
  waiters: Waiter[];
  consecutiveFailures: number;
  lastStatus?: number;
  probing: boolean;
  /** Smoothed attempt duration (ms); undefined until the first attempt finished. */
  latencyMs: number | undefined;
  /** The fastest attempt seen lately (ms), drifting up 2 % per attempt. */
  fastestMs: number | undefined;
  /** Deliveries deferred and (at the measured pace) not yet worked off: a virtual queue behind the real one. */
  deferredAhead: number;
  /** When `deferredAhead` was last brought up to date. */
  deferredAt: number;
  /** Epoch ms of the last successful attempt; 0 = none yet. */
  lastSuccessAt: number;
  lastUsed: number;
}

const MIN_DEFER_MS = 100;

export class EndpointGate {
  private readonly endpoints = new Map<string, EndpointState>();
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly maxDeferMs: number;
  private attempts = 0;

  constructor(private readonly o: EndpointGateOptions) {
    this.now = o.now ?? Date.now;
    this.random = o.random ?? Math.random;
    this.maxDeferMs = o.maxDeferMs ?? 60_000;
  }

  private state(key: string): EndpointState {
    let s = this.endpoints.get(key);
    if (!s) {
      s = {
        inFlight: 0,
        started: new Map(),
        waiters: [],
        consecutiveFailures: 0,
        probing: false,
        latencyMs: undefined,
        fastestMs: undefined,
        deferredAhead: 0,
        deferredAt: 0,
        lastSuccessAt: 0,
        lastUsed: this.now(),
      };
      this.endpoints.set(key, s);
    }
    return s;
  }

  /**
   * Decides what to do with a due delivery to `key`; waits (bounded) when the endpoint is busy. `bypassCircuit` is
   * for an operator's replay: it is sent even while the circuit is open (as a probe), within the slot limit.
   */
  acquire(key: string, bypassCircuit = false): Promise<Admission> {
    const s = this.state(key);
    s.lastUsed = this.now();
    const now = this.now();
    const immediate = this.decide(key, s, now, bypassCircuit);
    if (immediate) return Promise.resolve(immediate);
    if (s.waiters.length < this.o.queueLimit) {
      return new Promise((resolve) => s.waiters.push({ resolve, bypassCircuit }));
    }
    if (this.isOpen(s) && !bypassCircuit) {
      return Promise.resolve({
        kind: 'defer',
        delayMs: this.circuitDelay(s, now),
        circuit: {
          failures: s.consecutiveFailures,
          ...(s.lastStatus !== undefined ? { lastStatus: s.lastStatus } : {}),
        },
      });
    }
    return Promise.resolve({ kind: 'defer', delayMs: this.deferDelay(s, now) });
  }

  private isOpen(s: EndpointState): boolean {
    return this.o.failureThreshold > 0 && s.consecutiveFailures >= this.o.failureThreshold;
  }

  /** An admission that needs no slot wait, or undefined when all slots are busy. */
  private decide(key: string, s: EndpointState, now: number, bypassCircuit: boolean): Admission | undefined {
    if (bypassCircuit) return s.inFlight < this.o.concurrency ? this.start(key, s, now, true, false) : undefined;
    if (this.isOpen(s)) {
      // Open: one request at a time. This delivery is the probe unless one (or an attempt begun before the circuit
      // opened) is still out; then it waits for that verdict.
      if (s.probing || s.inFlight > 0) return undefined;
      s.probing = true;
      return this.start(key, s, now, true);
    }
    if (s.inFlight >= this.o.concurrency) return undefined;
    return this.start(key, s, now, false);
  }

  /** `holdsProbe`: this attempt is the half-open probe (the one allowed while the circuit waits for a verdict). */
  private start(key: string, s: EndpointState, startedAt: number, probe: boolean, holdsProbe = probe): Admission {
    s.inFlight++;
    const id = ++this.attempts;
    s.started.set(id, startedAt);
    let settled = false;
    return {
      kind: 'attempt',
      probe,
      done: (ok, status) => {
        if (settled) return;
        settled = true;
        this.finish(key, s, id, probe, holdsProbe, ok, status);
      },
      release: () => {
        if (settled) return;
        settled = true;
        s.inFlight--;
        s.started.delete(id);
        if (holdsProbe) s.probing = false;
        this.wake(key, s, this.now());
      },
    };
  }

  private finish(
    key: string,
    s: EndpointState,
    id: number,
    probe: boolean,
    holdsProbe: boolean,
    ok: boolean,
    status?: number,
  ) {
    const now = this.now();
    const startedAt = s.started.get(id) ?? now;
    s.inFlight--;
    s.started.delete(id);
    s.lastUsed = now;
    const sample = Math.max(1, now - startedAt);
    s.latencyMs = s.latencyMs === undefined ? sample : 0.7 * s.latencyMs + 0.3 * sample;
    s.fastestMs = s.fastestMs === undefined ? sample : Math.min(sample, s.fastestMs * 1.02);
    if (holdsProbe) s.probing = false;
    if (ok) {
      s.lastSuccessAt = now;
      s.consecutiveFailures = 0;
      delete s.lastStatus;
    } else {
      s.consecutiveFailures++;
      if (status !== undefined) s.lastStatus = status;
      else delete s.lastStatus;
    }
    this.wake(key, s, now);
  }

  /** Hands free slots (or an opened circuit's verdict) to the deliveries waiting in memory, in arrival order. */
  private wake(key: string, s: EndpointState, now: number): void {
    while (s.waiters.length > 0) {
      const a = this.decide(key, s, now, s.waiters[0]!.bypassCircuit);
      if (!a) return;
      s.waiters.shift()!.resolve(a);
    }
  }

  /**
   * How long a delivery that finds the endpoint busy waits in the stream: until the endpoint has, at its measured
   * pace, worked off what is in flight, waiting, and deferred before it (a virtual queue), ±20 %, at least 100 ms, at
   * most `maxDeferMs`. A backlog is spread out instead of being redelivered every fixed interval; the pace is
   * estimated on the fast side, so the endpoint is not left idle while its deliveries wait (the cost: some deliveries
   * are deferred a few times). Until the endpoint has proved healthy (a success and no failure since), a delivery
   * comes back after about one timeout at most: by then the attempts in flight have had their verdict, and if they
   * opened the circuit it fails fast on its schedule rather than waiting out a deferral sized for a healthy endpoint.
   */
  private deferDelay(s: EndpointState, now: number): number {
    if (s.latencyMs === undefined) {
      // Nothing measured yet (a new endpoint, or one whose first attempts hang): come back after about as long as
      // the oldest attempt has been out (at least 100 ms), widely spread. A fast endpoint is measured by then; a
      // hanging one is re-checked ever later (0.1 s, 0.2 s, 0.4 s …) until its first timeouts give a verdict.
      let oldest = now;
      for (const t of s.started.values()) oldest = Math.min(oldest, t);
      const wait = Math.min(this.o.timeoutMs * 1.5, Math.max(MIN_DEFER_MS, now - oldest));
      return Math.max(MIN_DEFER_MS, this.jitter(wait, 0.5));
    }
    // Measured durations include this process's own queueing while it works through a burst, which would spread a
    // healthy backlog far too thin (an idle endpoint while its deliveries wait out long deferrals). Erring fast only
    // costs a second deferral for some deliveries, so the estimate is the fastest attempt seen lately.
    const perAttempt = Math.min(this.o.timeoutMs, s.fastestMs ?? s.latencyMs);
    const perSlot = perAttempt / this.o.concurrency;
    // The virtual queue drains at the current estimate, so an early, pessimistic estimate (the first attempts of a
    // burst are slow: connection set-up, this process busy taking the burst in) is not carried forward.
    s.deferredAhead = Math.max(0, s.deferredAhead - (now - s.deferredAt) / perSlot) + 1;
    s.deferredAt = now;
    const healthy = s.lastSuccessAt > 0 && s.consecutiveFailures === 0;
    const cap = healthy ? this.maxDeferMs : Math.min(this.maxDeferMs, this.o.timeoutMs * 1.5);
    const delay = Math.min(cap, (s.inFlight + s.waiters.length + s.deferredAhead) * perSlot);
    return Math.max(MIN_DEFER_MS, this.jitter(delay, 0.2));
  }

  /**
   * How long a due delivery waits in the stream while the circuit is open: behind the probe and whatever waits before
   * it, at one request at a time at the endpoint's measured pace (a virtual queue, so a dead endpoint's backlog is not
   * redelivered in a burst), at most `cooldownMs` (a waiting delivery re-checks at least that often).
   */
  private circuitDelay(s: EndpointState, now: number): number {
    const perRequest = Math.min(this.o.timeoutMs, s.latencyMs ?? this.o.timeoutMs);
    s.deferredAhead = Math.max(0, s.deferredAhead - (now - s.deferredAt) / perRequest) + 1;
    s.deferredAt = now;
    const delay = Math.min(this.o.cooldownMs, (s.inFlight + s.waiters.length + s.deferredAhead) * perRequest);
    return Math.max(MIN_DEFER_MS, this.jitter(delay, 0.2));
  }

  private jitter(ms: number, fraction: number): number {
    const spread = ms * fraction;
    return Math.max(0, Math.round(ms - spread + this.random() * 2 * spread));
  }

  /** Endpoints whose circuit is open now (for a gauge). */
  openCircuits(): number {
    let n = 0;
    for (const s of this.endpoints.values()) if (this.isOpen(s)) n++;
    return n;
  }

  /** Forgets endpoints idle for `idleMs` with nothing in flight (bounded memory with many endpoints). */
  prune(idleMs: number): number {
    const now = this.now();
    let removed = 0;
    for (const [key, s] of this.endpoints) {
      if (s.inFlight === 0 && s.waiters.length === 0 && now - s.lastUsed >= idleMs) {
        this.endpoints.delete(key);
        removed++;
      }
    }
    return removed;
  }

  get size(): number {
    return this.endpoints.size;
  }
}
