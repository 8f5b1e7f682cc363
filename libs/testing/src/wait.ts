/** Bounded waits for tests: poll a condition or await an event, failing with a clear message at the deadline. */

export class WaitTimeoutError extends Error {
  override readonly name = 'WaitTimeoutError';
  readonly code = 'WAIT_TIMEOUT';
}

export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /** Describes what was awaited, for the timeout message. */
  what?: string;
}

const tick = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Polls `probe` until it returns a value other than `undefined`/`false` (or stops throwing) and returns it.
 * Throws {@link WaitTimeoutError} with the last error or value at the deadline.
 */
export async function waitFor<T>(
  probe: () => T | Promise<T>,
  o: WaitOptions = {},
): Promise<Exclude<T, undefined | false>> {
  const deadline = Date.now() + (o.timeoutMs ?? 10_000);
  const interval = o.intervalMs ?? 25;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v as Exclude<T, undefined | false>;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) {
      const detail = last instanceof Error ? last.message : JSON.stringify(last);
      throw new WaitTimeoutError(
        `timed out after ${o.timeoutMs ?? 10_000} ms waiting for ${o.what ?? 'condition'} (last: ${detail})`,
      );
    }
    await tick(interval);
  }
}

/** Rejects when `p` does not settle in time. */
export async function within<T>(p: Promise<T>, timeoutMs: number, what = 'promise'): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new WaitTimeoutError(`${what} did not settle within ${timeoutMs} ms`)),
          timeoutMs,
        );
      }),
    ]);
  } finally {
    if (timer) clearTimeout(timer);
  }
}

export class Deferred<T = void> {
  resolve!: (v: T) => void;
  reject!: (e: unknown) => void;
  readonly promise = new Promise<T>((res, rej) => {
    this.resolve = res;
    this.reject = rej;
  });
}
