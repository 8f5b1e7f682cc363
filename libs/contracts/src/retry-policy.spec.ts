import { nextRetryDelayMs, withJitter } from './retry-policy';

describe('retry policy', () => {
  it('uses the delay for the retry number and repeats the last one', () => {
    const d = [30_000, 120_000, 300_000];
    expect(nextRetryDelayMs(d, 1)).toBe(30_000);
    expect(nextRetryDelayMs(d, 2)).toBe(120_000);
    expect(nextRetryDelayMs(d, 3)).toBe(300_000);
    expect(nextRetryDelayMs(d, 9)).toBe(300_000);
    expect(nextRetryDelayMs(d, 0)).toBe(30_000);
    expect(nextRetryDelayMs([], 3)).toBe(0);
  });

  it('keeps jitter within ±fraction', () => {
    expect(withJitter(1_000, 0.2, () => 0)).toBe(800);
    expect(withJitter(1_000, 0.2, () => 1)).toBe(1_200);
    expect(withJitter(1_000, 0.2, () => 0.5)).toBe(1_000);
    for (let i = 0; i < 1_000; i++) {
      const v = withJitter(5_000, 0.2);
      expect(v).toBeGreaterThanOrEqual(4_000);
      expect(v).toBeLessThanOrEqual(6_000);
    }
  });
});
