import { DurationStats } from './eta';

describe('DurationStats (estimatedWaitSeconds)', () => {
  it('is null before anything was measured and ignores nonsense durations', () => {
    const d = new DurationStats();
    expect(d.estimate('p', 3, 2, 0)).toBeNull();
    d.observe('p', Number.NaN);
    d.observe('p', -1);
    expect(d.mean('p')).toBeUndefined();
  });

  it('fills free runners first, then waits whole rounds of the mean duration', () => {
    const d = new DurationStats();
    d.observe('p', 10);
    expect(d.estimate('p', 0, 4, 1)).toBe(0);
    expect(d.estimate('p', 1, 4, 2)).toBe(0);
    expect(d.estimate('p', 0, 4, 0)).toBe(10);
    expect(d.estimate('p', 4, 4, 0)).toBe(20);
    expect(d.estimate('p', 5, 4, 2)).toBe(10);
    expect(d.estimate('p', 5, 0, 0)).toBeNull();
  });

  it('follows recent durations (exponentially weighted)', () => {
    const d = new DurationStats(0.5);
    d.observe('p', 10);
    d.observe('p', 20);
    expect(d.mean('p')).toBe(15);
    expect(d.mean('other')).toBeUndefined();
  });
});
