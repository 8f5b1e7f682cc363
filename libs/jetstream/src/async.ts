/**
 * The async helpers every service uses instead of hand-written copies: a bounded-concurrency map, a retry with the
 * shared `Backoff`, a sleep that an abort signal ends, and waiters that are woken by events rather than polled with
 * sleeps (`Watermark` for "applied up to n", `Pulse` for "something changed, look again").
 *
 * Written here rather than taken from p-map / p-retry: those are ESM-only (Jest runs CommonJS here and would need
 * them transformed), and each helper is a few lines whose exact semantics (errors in input order, no jitter where a
 * caller needs fixed delays) matter more than their breadth.
 */
import { Backoff, type BackoffOptions } from './backoff';

/**
 * Maps `items` through `fn` with at most `concurrency` calls in flight; results are in input order. The first
 * rejection rejects the whole map (calls already started still run to their end; no new ones start).
 */
export async function mapBounded<T, R>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const lane = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        out[i] = await fn(items[i]!, i);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(0, Math.min(Math.floor(concurrency), items.length)) }, lane));
  return out;
}

/** Waits `ms`; an aborted `signal` ends the wait early with its reason. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason as Error);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export interface RetryOptions {
  /** Calls in all, the first included. */
  attempts: number;
  backoff: BackoffOptions;
  /** Whether this error is worth another attempt (default: every error). */
  retryable?: (err: unknown) => boolean;
  signal?: AbortSignal;
}

/** Calls `fn` until it resolves, waiting `backoff` between attempts; rethrows the last error. */
export async function retry<T>(fn: (attempt: number) => Promise<T>, o: RetryOptions): Promise<T> {
  const backoff = new Backoff(o.backoff);
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= o.attempts || (o.retryable && !o.retryable(err))) throw err;
      await sleep(backoff.next(), o.signal);
    }
  }
}

/**
 * A value that only grows (e.g. the last stream sequence applied) and the callers waiting for it to reach a target.
 * Waiters are woken by `advance`, never by polling.
 */
export class Watermark {
  private current: number;
  private readonly waiting = new Set<{ target: number; resolve: (reached: boolean) => void }>();

  constructor(initial = 0) {
    this.current = initial;
  }

  get value(): number {
    return this.current;
  }

  /** Raises the mark (a lower value is ignored) and wakes the waiters it satisfies. */
  advance(to: number): void {
    if (to <= this.current) return;
    this.current = to;
    for (const w of this.waiting) {
      if (w.target <= to) {
        this.waiting.delete(w);
        w.resolve(true);
      }
    }
  }

  /** Resolves true once the mark is at least `target`, or false when `timeoutMs` is over first. */
  reached(target: number, timeoutMs: number): Promise<boolean> {
    if (this.current >= target) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const w = {
        target,
        resolve: (ok: boolean) => {
          clearTimeout(timer);
          resolve(ok);
        },
      };
      const timer = setTimeout(() => {
        this.waiting.delete(w);
        resolve(false);
      }, timeoutMs);
      this.waiting.add(w);
    });
  }
}

/**
 * "Something changed": `notify()` wakes whoever waits in `next()`. A notify with nobody waiting is remembered until the
 * next `next()`, so a change that lands between a check and the wait is not lost.
 */
export class Pulse {
  private pending = false;
  private waiter: (() => void) | undefined;

  notify(): void {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w();
    } else this.pending = true;
  }

  /** Resolves true on the next notify (or one already pending), false after `timeoutMs`. */
  next(timeoutMs: number): Promise<boolean> {
    if (this.pending) {
      this.pending = false;
      return Promise.resolve(true);
    }
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(
        () => {
          this.waiter = undefined;
          resolve(false);
        },
        Math.max(0, timeoutMs),
      );
      this.waiter = () => {
        clearTimeout(timer);
        resolve(true);
      };
    });
  }
}
