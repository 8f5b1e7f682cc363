import { SharedRateLimiter, type QuotaStore } from './rate-limiter';

/** The shared counters, in memory (the port the KV store implements; the KV store itself is tested against NATS). */
class MemoryQuotaStore implements QuotaStore {
  readonly counters = new Map<string, number>();
  reserveCalls = 0;
  totalCalls = 0;
  failing = false;

  async reserve(subject: string, window: number, want: number, cap: number) {
    this.reserveCalls++;
    if (this.failing) throw new Error('store down');
    const k = `${subject}.${window}`;
    const cur = this.counters.get(k) ?? 0;
    const granted = Math.max(0, Math.min(want, cap - cur));
    this.counters.set(k, cur + granted);
    return { granted, total: cur + granted };
  }

  async total(subject: string, window: number) {
    this.totalCalls++;
    if (this.failing) throw new Error('store down');
    return this.counters.get(`${subject}.${window}`) ?? 0;
  }
}

const W = 60_000;

async function admitted(l: SharedRateLimiter, subject: string, n: number): Promise<number> {
  let ok = 0;
  for (let i = 0; i < n; i++) if ((await l.take(subject)).allowed) ok++;
  return ok;
}

describe('SharedRateLimiter', () => {
  let now: number;
  const clock = () => now;
  beforeEach(() => {
    now = 1_000 * W; // the start of a window
  });

  it('admits up to the limit in a window and refuses the rest with a Retry-After', async () => {
    const store = new MemoryQuotaStore();
    const l = new SharedRateLimiter(store, clock, { limit: 100, windowMs: W });
    expect(await admitted(l, 'k', 150)).toBe(100);
    const d = await l.take('k');
    expect(d.allowed).toBe(false);
    if (!d.allowed) {
      expect(d.retryAfterSeconds).toBeGreaterThanOrEqual(1);
      expect(d.retryAfterSeconds).toBeLessThanOrEqual(120);
    }
  });

  it('keeps subjects apart', async () => {
    const l = new SharedRateLimiter(new MemoryQuotaStore(), clock, { limit: 10, windowMs: W });
    expect(await admitted(l, 'a', 20)).toBe(10);
    expect(await admitted(l, 'b', 20)).toBe(10);
  });

  it('never admits more than the limit across replicas sharing the store', async () => {
    const store = new MemoryQuotaStore();
    const replicas = [0, 1, 2].map(() => new SharedRateLimiter(store, clock, { limit: 300, windowMs: W }));
    let ok = 0;
    for (let i = 0; i < 900; i++) if ((await replicas[i % 3]!.take('k')).allowed) ok++;
    expect(ok).toBeLessThanOrEqual(300);
    // Unspent chunks on the other replicas are the only loss: at most replicas × maxChunk (300 / 20 = 15).
    expect(ok).toBeGreaterThanOrEqual(300 - 3 * 15);
  });

  it('reserves in growing chunks: a steady stream makes few store calls', async () => {
    const store = new MemoryQuotaStore();
    const l = new SharedRateLimiter(store, clock, { limit: 1_000_000, windowMs: W });
    expect(await admitted(l, 'k', 5_000)).toBe(5_000);
    // 1 + 2 + 4 + … + 1000 (maxChunk) then chunks of 1000: a dozen calls or so, not 5000.
    expect(store.reserveCalls).toBeLessThan(25);
  });

  it('answers requests from the chunk in hand while the store is slow (refills in the background)', async () => {
    const store = new MemoryQuotaStore();
    let gate: Promise<void> = Promise.resolve();
    let open: () => void = () => undefined;
    const slow: QuotaStore = {
      total: (s, w) => store.total(s, w),
      reserve: async (s, w, want, cap) => {
        await gate;
        return store.reserve(s, w, want, cap);
      },
    };
    const l = new SharedRateLimiter(slow, clock, { limit: 1_000_000, windowMs: W, maxChunk: 64 });
    expect(await admitted(l, 'k', 100)).toBe(100);
    // Freeze the store: takes served from the chunk in hand settle anyway.
    gate = new Promise<void>((r) => (open = r));
    const calls = store.reserveCalls;
    let settled = 0;
    const pending = Array.from({ length: 20 }, () => l.take('k').then((d) => (settled++, d)));
    await new Promise((r) => setImmediate(r));
    expect(settled).toBeGreaterThan(0);
    expect(store.reserveCalls).toBe(calls);
    open();
    const all = await Promise.all(pending);
    expect(all.every((d) => d.allowed)).toBe(true);
  });

  it('slides: right after a full window little is admitted, and it grows back during the next', async () => {
    const store = new MemoryQuotaStore();
    const l = new SharedRateLimiter(store, clock, { limit: 100, windowMs: W, maxChunk: 1 });
    expect(await admitted(l, 'k', 100)).toBe(100);
    now += W; // start of the next window: the previous one weighs fully
    expect(await admitted(l, 'k', 10)).toBe(0);
    now += W / 2; // halfway: about half the limit is free again
    const half = await admitted(l, 'k', 100);
    expect(half).toBeGreaterThanOrEqual(49);
    expect(half).toBeLessThanOrEqual(51);
    now += 2 * W; // long idle: the full limit again
    expect(await admitted(l, 'k', 150)).toBe(100);
  });

  it('answers refusals locally for a while instead of asking the store each time', async () => {
    const store = new MemoryQuotaStore();
    const l = new SharedRateLimiter(store, clock, { limit: 5, windowMs: W, maxChunk: 1 });
    await admitted(l, 'k', 5);
    expect((await l.take('k')).allowed).toBe(false);
    const calls = store.reserveCalls;
    for (let i = 0; i < 100; i++) expect((await l.take('k')).allowed).toBe(false);
    expect(store.reserveCalls).toBe(calls);
  });

  it('fails open when the store is down, and reports it', async () => {
    const store = new MemoryQuotaStore();
    store.failing = true;
    const errors: unknown[] = [];
    const l = new SharedRateLimiter(store, clock, { limit: 5, windowMs: W, onError: (e) => errors.push(e) });
    expect(await admitted(l, 'k', 3)).toBe(3);
    expect(errors.length).toBeGreaterThan(0);
  });

  it('forgets old subjects when it holds too many', async () => {
    const store = new MemoryQuotaStore();
    const l = new SharedRateLimiter(store, clock, { limit: 5, windowMs: W, maxSubjects: 10 });
    for (let i = 0; i < 50; i++) expect((await l.take(`s${i}`)).allowed).toBe(true);
    expect((l as unknown as { subjects: Map<string, unknown> }).subjects.size).toBeLessThanOrEqual(10);
  });
});

describe('SharedRateLimiter under a burst', () => {
  it('serves a burst of concurrent requests at cold start without spurious refusals', async () => {
    const store = new MemoryQuotaStore();
    const l = new SharedRateLimiter(store, () => 5 * W, { limit: 600, windowMs: W });
    const all = await Promise.all(Array.from({ length: 400 }, () => l.take('k')));
    expect(all.filter((d) => d.allowed).length).toBe(400);
    const more = await Promise.all(Array.from({ length: 400 }, () => l.take('k')));
    expect(more.filter((d) => d.allowed).length).toBe(200);
  });
});
