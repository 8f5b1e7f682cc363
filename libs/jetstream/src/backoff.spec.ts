import { Backoff } from './backoff';

describe('Backoff', () => {
  it('doubles up to the cap, each delay within [½, 1] of its ceiling, and restarts after a success', () => {
    let r = 0;
    const b = new Backoff({ initialMs: 100, maxMs: 1_000, random: () => r });
    expect([b.next(), b.next(), b.next(), b.next(), b.next()]).toEqual([50, 100, 200, 400, 500]);
    r = 1;
    expect(b.next()).toBe(1_000);
    expect(b.attempts).toBe(6);
    b.reset();
    expect(b.next()).toBe(100);
  });

  it('never exceeds the cap however many failures', () => {
    const b = new Backoff({ initialMs: 1, maxMs: 5_000 });
    let max = 0;
    for (let i = 0; i < 200; i++) max = Math.max(max, b.next());
    expect(max).toBeLessThanOrEqual(5_000);
    expect(max).toBeGreaterThanOrEqual(2_500);
  });
});

describe('Backoff without jitter', () => {
  it('gives the ceilings themselves', () => {
    const b = new Backoff({ initialMs: 200, maxMs: 1_000, jitter: false, random: () => 0 });
    expect([b.next(), b.next(), b.next(), b.next()]).toEqual([200, 400, 800, 1_000]);
  });
});
