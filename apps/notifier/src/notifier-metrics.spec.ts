import { OTHER_TENANTS, parkedPerTenant } from './notifier-metrics';

describe('parkedPerTenant (gantry_webhook_parked_tenant)', () => {
  it('sums the endpoints of each tenant', () => {
    const got = parkedPerTenant({
      'gantry.v1.webhook_parked.ta.h1': 3,
      'gantry.v1.webhook_parked.ta.h2': 4,
      'gantry.v1.webhook_parked.tb.h1': 1,
    });
    expect(got).toEqual(
      new Map([
        ['ta', 7],
        ['tb', 1],
      ]),
    );
  });

  it('keeps the tenants with the most parked and sums the rest under one series (bounded cardinality)', () => {
    const subjects: Record<string, number> = {};
    for (let i = 0; i < 50; i++) subjects[`gantry.v1.webhook_parked.t${i}.h`] = i + 1;
    const got = parkedPerTenant(subjects, 3);
    expect([...got.keys()]).toEqual(['t49', 't48', 't47', OTHER_TENANTS]);
    expect(got.get(OTHER_TENANTS)).toBe((47 * 48) / 2);
    expect([...got.values()].reduce((a, b) => a + b, 0)).toBe((50 * 51) / 2);
  });

  it('has no series when nothing is parked', () => {
    expect(parkedPerTenant({})).toEqual(new Map());
  });
});
