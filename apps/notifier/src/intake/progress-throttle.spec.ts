import { progressVerdict, type ProgressMark } from './progress-throttle';

const mark = (at: number, eventAt: number, event: string): ProgressMark => ({ at, eventAt, event });

describe('progressVerdict', () => {
  it('sends the first progress of a job', () => {
    expect(progressVerdict(undefined, mark(0, 0, '1.3'), 1_000)).toBe('send');
  });
  it('throttles within the interval, in wall time or in event time', () => {
    const last = mark(10_000, 10_000, '1.3');
    expect(progressVerdict(last, mark(10_500, 11_500, '1.4'), 1_000)).toBe('throttle');
    // A backlog: events far apart but handled together.
    expect(progressVerdict(last, mark(11_500, 10_200, '1.4'), 1_000)).toBe('throttle');
    // An older event handled after a newer one.
    expect(progressVerdict(last, mark(12_000, 9_000, '1.2'), 1_000)).toBe('throttle');
    expect(progressVerdict(last, mark(11_000, 11_000, '1.4'), 1_000)).toBe('send');
  });
  it('lets the same event through again (redelivery; the broker de-duplicates)', () => {
    expect(progressVerdict(mark(10_000, 10_000, '1.3'), mark(10_001, 10_000, '1.3'), 1_000)).toBe('resend');
  });
});
