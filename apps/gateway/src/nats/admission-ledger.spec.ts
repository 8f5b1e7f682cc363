import { AdmissionLedger, PENDING_ACCEPT_MAX_AGE_MS } from './admission-ledger';

describe('AdmissionLedger', () => {
  let now = 1_000;
  const ledger = () => new AdmissionLedger(() => now);

  it('counts admissions per tenant until a broadcast reaches their sequence', () => {
    const l = ledger();
    const a = l.admit('t1', 2);
    const b = l.admit('t2', 1);
    expect([l.total, l.of('t1'), l.of('t2')]).toEqual([3, 2, 1]);
    l.written(a, 10);
    l.written(b, 12);
    l.onBroadcast(11);
    expect([l.total, l.of('t1'), l.of('t2')]).toEqual([1, 0, 1]);
    l.onBroadcast(12);
    expect(l.total).toBe(0);
  });

  it('never counts a job twice when the broadcast that includes it arrives before the write is acknowledged', () => {
    const l = ledger();
    const a = l.admit('t1', 1);
    // The record is stored at sequence 7; the leader applies it and broadcasts before the gateway sees the ack.
    l.onBroadcast(7);
    expect(l.total).toBe(1);
    l.written(a, 7);
    expect(l.total).toBe(0);
    expect(l.of('t1')).toBe(0);
  });

  it('keeps counting an admission whose write is beyond the last broadcast', () => {
    const l = ledger();
    l.onBroadcast(7);
    const a = l.admit('t1', 1);
    l.written(a, 8);
    expect(l.total).toBe(1);
  });

  it('forgets withdrawn admissions at once, and unacknowledged ones after the maximum age', () => {
    const l = ledger();
    const a = l.admit('t1', 3);
    l.admit('t1', 1);
    l.withdraw(a);
    l.withdraw(a);
    expect(l.of('t1')).toBe(1);
    l.onBroadcast(5);
    expect(l.total).toBe(1);
    now += PENDING_ACCEPT_MAX_AGE_MS + 1;
    l.onBroadcast(5);
    expect(l.total).toBe(0);
  });

  it('drops everything on a broadcast without appliedSeq (an older scheduler counts by other means)', () => {
    const l = ledger();
    l.admit('t1', 4);
    l.onBroadcast(undefined);
    expect(l.total).toBe(0);
  });
});
