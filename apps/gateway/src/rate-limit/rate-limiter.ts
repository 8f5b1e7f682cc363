/**
 * A submit rate limit shared by every gateway replica without a KV round trip per request.
 *
 * The limit is a sliding-window counter (the estimate Cloudflare and others use): in window `w` (fixed, one
 * `windowMs` long) at fraction `f` of it, a subject may have reserved at most `limit − prev × (1 − f)` where `prev` is
 * what was reserved in window `w − 1`; so no 60 s span admits much more than `limit`, and a burst at a window boundary
 * cannot double it. The shared state is one counter per subject and window in a KV bucket (see {@link QuotaStore}).
 *
 * Replicas do not increment that counter per request. Each **reserves quota in chunks** with a compare-and-set and
 * spends it locally; it fetches the next chunk in the background when half of the current one is spent, so a steady
 * stream of submits never waits for the store. Chunks grow (1, 2, 4 …) while a subject keeps spending them, up to
 * `maxChunk`, and shrink again when a window ends with most of one unused. The price is precision on the safe side:
 * quota reserved by one replica and not spent is unavailable to the others until the window ends, so a client whose
 * requests are spread over N replicas may be refused up to N × `maxChunk` early; it is never admitted beyond the limit.
 *
 * A subject over its limit is answered locally (no store call) until the time its quota may have grown back, at most a
 * second later. When the store fails, the limiter fails open and says so through `onError`: the submit itself needs
 * NATS and will answer 503 if NATS is really away.
 */

/** The shared counters. One per (subject, window): the quota reserved by all replicas together. */
export interface QuotaStore {
  /**
   * Reserves up to `want` units in `window`, never taking the window's total above `cap`.
   * Returns what was granted (0 … want) and the total after the grant.
   */
  reserve(subject: string, window: number, want: number, cap: number): Promise<{ granted: number; total: number }>;
  /** The total reserved in a window (0 when none). */
  total(subject: string, window: number): Promise<number>;
}

export interface RateLimitOptions {
  /** Requests per window. */
  limit: number;
  windowMs: number;
  /** Largest chunk one replica reserves at once (default limit / 20, between 1 and 1000). */
  maxChunk?: number;
  /** Subjects remembered at once (oldest dropped first). */
  maxSubjects?: number;
  onError?: (err: unknown) => void;
}

export type RateLimitDecision = { allowed: true } | { allowed: false; retryAfterSeconds: number };

interface SubjectState {
  window: number;
  /** Reserved for `window` by this replica and not spent. */
  tokens: number;
  chunk: number;
  /** Total reserved in `window − 1` (the sliding estimate's weight); undefined until read. */
  prev: number | undefined;
  /** Last known total of `window` across replicas. */
  total: number;
  reserving: Promise<number> | undefined;
  /** Requests on this replica waiting for the next reservation (a burst is served by one, large enough). */
  waiting: number;
  /** Until then, refuse without asking the store. */
  refuseUntil: number;
}

export class SharedRateLimiter {
  private readonly subjects = new Map<string, SubjectState>();
  private readonly maxChunk: number;
  private readonly maxSubjects: number;

  constructor(
    private readonly store: QuotaStore,
    private readonly now: () => number,
    private readonly o: RateLimitOptions,
  ) {
    this.maxChunk = Math.max(1, o.maxChunk ?? Math.min(1_000, Math.floor(o.limit / 20)));
    this.maxSubjects = o.maxSubjects ?? 100_000;
  }

  /** Takes one unit of `subject`'s quota. Resolves at once while this replica holds reserved quota. */
  async take(subject: string): Promise<RateLimitDecision> {
    for (let round = 0; round < 8; round++) {
      const now = this.now();
      const st = this.state(subject, now);
      if (st.tokens > 0) {
        st.tokens--;
        if (st.tokens <= st.chunk / 2 && !st.reserving) void this.reserve(subject, st);
        return { allowed: true };
      }
      if (now < st.refuseUntil) return this.refuse(st, now);
      const window = st.window;
      st.waiting++;
      let granted: number;
      try {
        granted = await (st.reserving ?? this.reserve(subject, st));
      } finally {
        st.waiting--;
      }
      if (granted === 0 && st.tokens === 0 && st.window === window) {
        const refusal = this.refuse(st, this.now());
        st.refuseUntil = this.now() + Math.min(1_000, refusal.retryAfterSeconds * 1_000);
        return refusal;
      }
    }
    // Quota keeps arriving but concurrent requests on this replica keep taking it first: a rare race; refuse briefly.
    return { allowed: false, retryAfterSeconds: 1 };
  }

  private state(subject: string, now: number): SubjectState {
    const window = Math.floor(now / this.o.windowMs);
    let st = this.subjects.get(subject);
    if (!st) {
      if (this.subjects.size >= this.maxSubjects) this.evict(window);
      st = {
        window,
        tokens: 0,
        chunk: 1,
        prev: undefined,
        total: 0,
        reserving: undefined,
        waiting: 0,
        refuseUntil: 0,
      };
      this.subjects.set(subject, st);
    } else if (st.window !== window) {
      // A new window: unspent tokens belonged to the old one. Shrink the chunk when most of one went unused.
      if (st.tokens > st.chunk / 2) st.chunk = Math.max(1, Math.floor(st.chunk / 2));
      st.window = window;
      st.tokens = 0;
      st.total = 0;
      st.refuseUntil = 0;
      st.reserving = undefined;
      // What this replica knew of the old window misses other replicas' chunks: the next reservation reads it.
      st.prev = undefined;
    }
    return st;
  }

  private evict(window: number): void {
    for (const [k, s] of this.subjects) {
      if (s.window < window - 1) this.subjects.delete(k);
    }
    // Still full (a flood of distinct subjects within one window): drop the oldest.
    const excess = this.subjects.size - this.maxSubjects + 1;
    if (excess > 0) {
      let n = 0;
      for (const k of this.subjects.keys()) {
        if (n++ >= excess) break;
        this.subjects.delete(k);
      }
    }
  }

  /** The sliding cap for the window at time `now`. */
  private cap(st: SubjectState, now: number): number {
    const f = (now - st.window * this.o.windowMs) / this.o.windowMs;
    return Math.max(0, Math.floor(this.o.limit - (st.prev ?? 0) * (1 - f)));
  }

  private reserve(subject: string, st: SubjectState): Promise<number> {
    const window = st.window;
    const self: { task?: Promise<number> } = {};
    const task = (async (): Promise<number> => {
      // Let `st.reserving = task` below run first, so that `finally` can tell whether it is still the current one.
      await Promise.resolve();
      try {
        if (st.prev === undefined) st.prev = await this.store.total(subject, window - 1);
        // Yield once more so that the requests of a burst arriving together are counted as waiting.
        await Promise.resolve();
        const want = Math.max(st.chunk, st.waiting);
        const { granted, total } = await this.store.reserve(subject, window, want, this.cap(st, this.now()));
        if (st.window !== window) return 0;
        st.total = total;
        st.tokens += granted;
        if (granted === want) st.chunk = Math.min(this.maxChunk, st.chunk * 2);
        return granted;
      } catch (err) {
        this.o.onError?.(err);
        // Fail open for this chunk: the store is away, and so, most likely, is the durable write of the submit.
        if (st.window !== window) return 0;
        st.tokens += st.chunk;
        return st.chunk;
      } finally {
        if (st.reserving === self.task) st.reserving = undefined;
      }
    })();
    self.task = task;
    st.reserving = task;
    return task;
  }

  /** A refusal with the time after which one more unit may fit under the sliding cap. */
  private refuse(st: SubjectState, now: number): { allowed: false; retryAfterSeconds: number } {
    const W = this.o.windowMs;
    const f = (now - st.window * W) / W;
    const n = st.total;
    const prev = st.prev ?? 0;
    const limit = this.o.limit;
    let waitMs: number;
    if (n + 1 <= limit && prev > 0) {
      // limit − prev × (1 − f*) ≥ n + 1
      const fStar = 1 - (limit - n - 1) / prev;
      waitMs = Math.max(0, (fStar - f) * W);
    } else {
      // Not in this window: in the next one, prev' = n, so limit − n × (1 − f') ≥ 1.
      const fNext = n > 0 ? Math.max(0, 1 - (limit - 1) / n) : 0;
      waitMs = (1 - f) * W + fNext * W;
    }
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1_000)) };
  }
}
