import { EndpointGate, type Admission } from './endpoint-gate';

function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

function gate(over: Partial<ConstructorParameters<typeof EndpointGate>[0]> = {}, c = clock()) {
  return {
    c,
    g: new EndpointGate({
      concurrency: 2,
      queueLimit: 1,
      failureThreshold: 3,
      cooldownMs: 5_000,
      timeoutMs: 10_000,
      now: c.now,
      random: () => 0.5,
      ...over,
    }),
  };
}

function attempt(a: Admission): Extract<Admission, { kind: 'attempt' }> {
  if (a.kind !== 'attempt') throw new Error(`expected an attempt, got ${a.kind}`);
  return a;
}

describe('EndpointGate', () => {
  it('bounds attempts in flight per endpoint, queues a few in memory, defers the rest', async () => {
    const { g } = gate();
    const a1 = attempt(await g.acquire('https://a.example'));
    attempt(await g.acquire('https://a.example'));
    let queued: Admission | undefined;
    void g.acquire('https://a.example').then((a) => (queued = a));
    const deferred = await g.acquire('https://a.example');
    expect(deferred.kind).toBe('defer');
    // Another endpoint is not affected at all.
    expect((await g.acquire('https://b.example')).kind).toBe('attempt');
    expect(queued).toBeUndefined();
    a1.done(true, 204);
    await Promise.resolve();
    expect(queued?.kind).toBe('attempt');
  });

  it('defers a backlog progressively (a virtual queue), not all to the same instant', async () => {
    const { g, c } = gate({ queueLimit: 0 });
    const a = attempt(await g.acquire('e'));
    c.advance(400);
    a.done(true); // measured latency: 400 ms per attempt
    attempt(await g.acquire('e'));
    attempt(await g.acquire('e'));
    const delays: number[] = [];
    for (let i = 0; i < 20; i++) {
      const d = await g.acquire('e');
      if (d.kind !== 'defer') throw new Error('expected defer');
      delays.push(d.delayMs);
    }
    for (let i = 1; i < delays.length; i++) expect(delays[i]!).toBeGreaterThan(delays[i - 1]!);
    // 20 deliveries behind 2 in flight at 400 ms per attempt over 2 slots: the last one waits (2 + 20) × 200 ms.
    expect(delays.at(-1)!).toBe(4_400);
  });

  it('uses the age of a hanging attempt as the latency estimate, but re-checks an unproven endpoint after ~1 timeout', async () => {
    const { g, c } = gate({ concurrency: 1, queueLimit: 0 });
    attempt(await g.acquire('hang'));
    c.advance(8_000);
    const d = await g.acquire('hang');
    expect(d.kind === 'defer' && d.delayMs).toBeGreaterThanOrEqual(8_000);
    const delays: number[] = [];
    for (let i = 0; i < 50; i++) {
      const x = await g.acquire('hang');
      if (x.kind === 'defer') delays.push(x.delayMs);
    }
    // Never longer than 1.5 timeouts (+20 % jitter) while the endpoint has not answered once.
    expect(Math.max(...delays)).toBeLessThanOrEqual(10_000 * 1.5 * 1.2);
  });

  it("defers a healthy endpoint's backlog up to maxDeferMs", async () => {
    const { g, c } = gate({ concurrency: 1, queueLimit: 0, maxDeferMs: 60_000 });
    const a = attempt(await g.acquire('busy'));
    c.advance(1_000);
    a.done(true);
    attempt(await g.acquire('busy'));
    let last = 0;
    for (let i = 0; i < 500; i++) {
      const x = await g.acquire('busy');
      if (x.kind === 'defer') last = x.delayMs;
    }
    expect(last).toBeGreaterThan(40_000);
    expect(last).toBeLessThanOrEqual(60_000 * 1.2);
  });

  it('does not carry an early, slow estimate forward: the virtual queue drains at the current pace', async () => {
    const { g, c } = gate({ concurrency: 2, queueLimit: 0 });
    const first = attempt(await g.acquire('e'));
    c.advance(1_000);
    first.done(true); // a slow first attempt (connection set-up, a busy process)
    const held = [attempt(await g.acquire('e')), attempt(await g.acquire('e'))];
    const early: number[] = [];
    for (let i = 0; i < 50; i++) {
      const d = await g.acquire('e');
      if (d.kind === 'defer') early.push(d.delayMs);
    }
    expect(Math.max(...early)).toBeGreaterThan(20_000);
    // Then the endpoint shows its real pace: 5 ms per attempt.
    for (const a of held) {
      c.advance(5);
      a.done(true);
    }
    for (let i = 0; i < 10; i++) {
      const a = attempt(await g.acquire('e'));
      c.advance(5);
      a.done(true);
    }
    c.advance(1_000);
    attempt(await g.acquire('e'));
    attempt(await g.acquire('e'));
    const later = await g.acquire('e');
    expect(later.kind === 'defer' && later.delayMs).toBeLessThanOrEqual(120);
  });

  it('opens the circuit after consecutive failures: one request at a time, the others wait without an attempt', async () => {
    const { g } = gate({ concurrency: 4, queueLimit: 0 });
    for (let i = 0; i < 3; i++) attempt(await g.acquire('e')).done(false, 503);
    expect(g.openCircuits()).toBe(1);
    // Nothing in flight: the next due delivery is the probe (a real request, so a counted attempt).
    const probe = attempt(await g.acquire('e'));
    expect(probe.probe).toBe(true);
    // While the probe is out, every other due delivery waits for its verdict: no attempt, the last status kept.
    const waiting = await g.acquire('e');
    expect(waiting).toMatchObject({ kind: 'defer', circuit: { failures: 3, lastStatus: 503 } });
    probe.done(false, 503);
    // A failed probe hands the turn to the next due delivery at once (its schedule, not a cooldown, decides when).
    const probe2 = attempt(await g.acquire('e'));
    expect(probe2.probe).toBe(true);
    expect((await g.acquire('e')).kind).toBe('defer');
    probe2.done(true, 200);
    expect(g.openCircuits()).toBe(0);
    for (let i = 0; i < 4; i++) expect((await g.acquire('e')).kind).toBe('attempt');
  });

  it('waits for attempts begun before the circuit opened before it probes', async () => {
    const { g } = gate({ concurrency: 4, queueLimit: 0, failureThreshold: 2 });
    const slow = attempt(await g.acquire('e'));
    for (let i = 0; i < 2; i++) attempt(await g.acquire('e')).done(false, 500);
    expect((await g.acquire('e')).kind).toBe('defer');
    slow.done(false);
    expect(attempt(await g.acquire('e')).probe).toBe(true);
  });

  it("spreads an open circuit's waiting backlog at one request per measured attempt, at most the cooldown", async () => {
    const { g, c } = gate({ concurrency: 4, queueLimit: 0, failureThreshold: 1, cooldownMs: 5_000 });
    const first = attempt(await g.acquire('e'));
    c.advance(1_000);
    first.done(false); // 1 s per attempt measured
    attempt(await g.acquire('e')); // the probe, out
    const delays: number[] = [];
    for (let i = 0; i < 8; i++) {
      const d = await g.acquire('e');
      if (d.kind !== 'defer' || !d.circuit) throw new Error('expected a circuit wait');
      delays.push(d.delayMs);
    }
    for (let i = 1; i < 4; i++) expect(delays[i]!).toBeGreaterThan(delays[i - 1]!);
    expect(Math.max(...delays)).toBeLessThanOrEqual(5_000 * 1.2);
    expect(delays[0]!).toBeGreaterThanOrEqual(1_000);
  });

  it('gives deliveries waiting in memory their turn, one at a time, when a circuit opens meanwhile', async () => {
    const { g } = gate({ concurrency: 1, queueLimit: 2, failureThreshold: 1 });
    const a = attempt(await g.acquire('e'));
    const w1 = g.acquire('e');
    const w2 = g.acquire('e');
    let second: Admission | undefined;
    void w2.then((x) => (second = x));
    a.done(false, 500);
    const p1 = attempt(await w1);
    expect(p1.probe).toBe(true);
    await Promise.resolve();
    expect(second).toBeUndefined(); // still waiting for the first probe's verdict
    p1.done(false, 500);
    expect(attempt(await w2).probe).toBe(true);
  });

  it('never opens with failureThreshold 0', async () => {
    const { g } = gate({ failureThreshold: 0 });
    for (let i = 0; i < 10; i++) attempt(await g.acquire('e')).done(false);
    expect((await g.acquire('e')).kind).toBe('attempt');
  });

  it('a success resets the failure count; done() twice counts once', async () => {
    const { g } = gate();
    const a = attempt(await g.acquire('e'));
    a.done(false);
    a.done(false);
    attempt(await g.acquire('e')).done(false);
    attempt(await g.acquire('e')).done(true);
    for (let i = 0; i < 2; i++) attempt(await g.acquire('e')).done(false);
    expect((await g.acquire('e')).kind).toBe('attempt');
  });

  it('forgets idle endpoints', async () => {
    const { g, c } = gate();
    attempt(await g.acquire('x')).done(true);
    attempt(await g.acquire('y')).done(true);
    c.advance(60_000);
    expect(g.prune(30_000)).toBe(2);
    expect(g.size).toBe(0);
  });
});

describe('EndpointGate replay bypass', () => {
  it('lets a replay through an open circuit (within the slot limit) and closes it on success', async () => {
    const { g } = gate({ concurrency: 1 });
    for (let i = 0; i < 3; i++) attempt(await g.acquire('e')).done(false, 500);
    const held = attempt(await g.acquire('e')); // the probe
    held.done(false, 500);
    const replay = attempt(await g.acquire('e', true));
    expect(replay.probe).toBe(true);
    // The slot limit still holds for it.
    const second = g.acquire('e', true);
    replay.done(true, 200);
    expect((await second).kind).toBe('attempt');
    expect(g.openCircuits()).toBe(0);
  });
});
