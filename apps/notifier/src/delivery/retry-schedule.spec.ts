import { afterFailure, maxAttempts, retryAfterCapMs } from './retry-schedule';

const delays = [1_000, 5_000, 30_000];

describe('afterFailure', () => {
  it('follows WEBHOOK_RETRY_DELAYS_MS with jitter within ±20 %', () => {
    for (const [made, base] of [
      [1, 1_000],
      [2, 5_000],
      [3, 30_000],
    ] as const) {
      const low = afterFailure({ attemptsMade: made, delaysMs: delays, random: () => 0 });
      const high = afterFailure({ attemptsMade: made, delaysMs: delays, random: () => 1 });
      expect(low).toEqual({ kind: 'retry', delayMs: base * 0.8 });
      expect(high).toEqual({ kind: 'retry', delayMs: base * 1.2 });
    }
  });

  it('dead-letters after delays + 1 attempts', () => {
    expect(maxAttempts(delays)).toBe(4);
    expect(afterFailure({ attemptsMade: 4, delaysMs: delays })).toEqual({ kind: 'dead-letter' });
    expect(afterFailure({ attemptsMade: 1, delaysMs: [] })).toEqual({ kind: 'dead-letter' });
  });

  it('honours a longer Retry-After, capped by the longest configured delay', () => {
    expect(afterFailure({ attemptsMade: 1, delaysMs: delays, retryAfterMs: 20_000, random: () => 0.5 })).toEqual({
      kind: 'retry',
      delayMs: 20_000,
    });
    expect(afterFailure({ attemptsMade: 1, delaysMs: delays, retryAfterMs: 10, random: () => 0.5 })).toEqual({
      kind: 'retry',
      delayMs: 1_000,
    });
    expect(retryAfterCapMs(delays)).toBe(60_000);
    expect(
      afterFailure({ attemptsMade: 1, delaysMs: [1_000, 3_600_000], retryAfterMs: 86_400_000, random: () => 0.5 }),
    ).toEqual({ kind: 'retry', delayMs: 3_600_000 });
  });

  it('dead-letters a permanent refusal at once', () => {
    expect(afterFailure({ attemptsMade: 1, delaysMs: delays, permanent: true })).toEqual({ kind: 'dead-letter' });
  });
});
