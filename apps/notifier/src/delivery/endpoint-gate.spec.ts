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

  it('opens the circuit after consecutive failures, fails fast, then sends exactly one probe after the cooldown', async () => {
    const { g, c } = gate({ concurrency: 4 });
    for (let i = 0; i < 3; i++) attempt(await g.acquire('e')).done(false, 503);
    expect(g.openCircuits()).toBe(1);
    const fast = await g.acquire('e');
    expect(fast).toMatchObject({ kind: 'short-circuit', lastStatus: 503 });
    c.advance(5_000 * 1.2 + 1);
    const probe = attempt(await g.acquire('e'));
    expect(probe.probe).toBe(true);
    // While the probe is out, others still fail fast (one probe, not a stampede).
    expect((await g.acquire('e')).kind).toBe('short-circuit');
    probe.done(false);
    expect((await g.acquire('e')).kind).toBe('short-circuit');
    c.advance(5_000 * 1.2 + 1);
    const probe2 = attempt(await g.acquire('e'));
    probe2.done(true, 200);
    expect(g.openCircuits()).toBe(0);
    expect((await g.acquire('e')).kind).toBe('attempt');
  });

  it('gives deliveries waiting in memory the verdict of a circuit that opens meanwhile', async () => {
    const { g } = gate({ concurrency: 1, queueLimit: 2, failureThreshold: 1 });
    const a = attempt(await g.acquire('e'));
    const waiting = [g.acquire('e'), g.acquire('e')];
    a.done(false, 500);
    const verdicts = await Promise.all(waiting);
    expect(verdicts.map((v) => v.kind)).toEqual(['short-circuit', 'short-circuit']);
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
    expect((await g.acquire('e')).kind).toBe('short-circuit');
    const replay = attempt(await g.acquire('e', true));
    expect(replay.probe).toBe(true);
    // The slot limit still holds for it.
    const second = g.acquire('e', true);
    replay.done(true, 200);
    expect((await second).kind).toBe('attempt');
    expect(g.openCircuits()).toBe(0);
  });
});
