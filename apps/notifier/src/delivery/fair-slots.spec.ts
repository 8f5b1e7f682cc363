import { FairSlots, type Release } from './fair-slots';

describe('FairSlots', () => {
  it('hands out free slots at once and never more than its capacity', async () => {
    const slots = new FairSlots(2);
    const a = await slots.acquire('a');
    await slots.acquire('a');
    expect(slots.inUse).toBe(2);
    let third: Release | undefined;
    void slots.acquire('b').then((r) => (third = r));
    await Promise.resolve();
    expect(third).toBeUndefined();
    a();
    a(); // a second release of the same slot changes nothing
    await Promise.resolve();
    expect(third).toBeDefined();
    expect(slots.inUse).toBe(2);
    expect(slots.heldBy('b')).toBe(1);
  });

  it('serves waiting tenants round-robin, whatever one of them has queued', async () => {
    const slots = new FairSlots(1);
    const first = await slots.acquire('noisy');
    const order: string[] = [];
    const releases: Release[] = [];
    const want = (t: string) =>
      void slots.acquire(t).then((r) => {
        order.push(t);
        releases.push(r);
      });
    // The noisy tenant queues 100 before the quiet ones queue one each.
    for (let i = 0; i < 100; i++) want('noisy');
    want('quiet1');
    want('quiet2');
    first();
    for (let i = 0; i < 6; i++) {
      await new Promise((r) => setImmediate(r));
      releases.shift()!();
    }
    await new Promise((r) => setImmediate(r));
    // One turn each: the quiet tenants are served within one round, not after the noisy tenant's 100.
    expect(order.slice(0, 4)).toEqual(['noisy', 'quiet1', 'quiet2', 'noisy']);
  });

  it('a tenant holding many slots does not block another when a slot frees', async () => {
    const slots = new FairSlots(4);
    const held = await Promise.all([1, 2, 3, 4].map(() => slots.acquire('a')));
    let bGot = false;
    const aMore = [1, 2, 3].map(() => slots.acquire('a'));
    void slots.acquire('b').then(() => (bGot = true));
    held[0]!();
    await new Promise((r) => setImmediate(r));
    // 'a' waited first, so it had the first turn; the next free slot is b's, before a's other two waiters.
    expect(bGot).toBe(false);
    held[1]!();
    await new Promise((r) => setImmediate(r));
    expect(bGot).toBe(true);
    expect(slots.heldBy('b')).toBe(1);
    expect(slots.waitingTenants).toBe(1);
    void aMore;
  });
});
