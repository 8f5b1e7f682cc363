import { Pulse, Watermark, mapBounded, retry, sleep } from './async';

describe('mapBounded', () => {
  it('keeps input order and never runs more than the bound at once', async () => {
    let inFlight = 0;
    let peak = 0;
    const out = await mapBounded([5, 1, 4, 2, 3, 0], 2, async (n, i) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      await sleep(n * 3);
      inFlight--;
      return `${i}:${n}`;
    });
    expect(out).toEqual(['0:5', '1:1', '2:4', '3:2', '4:3', '5:0']);
    expect(peak).toBe(2);
  });

  it('rejects with the first error and starts nothing after it', async () => {
    const started: number[] = [];
    await expect(
      mapBounded([1, 2, 3, 4, 5], 1, async (n) => {
        started.push(n);
        if (n === 2) throw new Error('two');
        return n;
      }),
    ).rejects.toThrow('two');
    expect(started).toEqual([1, 2]);
  });

  it('maps an empty list', async () => {
    expect(await mapBounded([], 4, async () => 1)).toEqual([]);
  });
});

describe('retry', () => {
  it('retries until success, at most `attempts` calls', async () => {
    let calls = 0;
    const v = await retry(
      async () => {
        if (++calls < 3) throw new Error('flaky');
        return 'ok';
      },
      { attempts: 3, backoff: { initialMs: 1, maxMs: 2 } },
    );
    expect([v, calls]).toEqual(['ok', 3]);
    calls = 0;
    await expect(
      retry(
        async () => {
          calls++;
          throw new Error(`fail ${calls}`);
        },
        { attempts: 3, backoff: { initialMs: 1, maxMs: 2 } },
      ),
    ).rejects.toThrow('fail 3');
  });

  it('stops at once on an error that is not retryable', async () => {
    let calls = 0;
    await expect(
      retry(
        async () => {
          calls++;
          throw new Error('final');
        },
        { attempts: 5, backoff: { initialMs: 1, maxMs: 2 }, retryable: () => false },
      ),
    ).rejects.toThrow('final');
    expect(calls).toBe(1);
  });
});

describe('sleep', () => {
  it('ends early with the reason when aborted', async () => {
    const ac = new AbortController();
    const p = sleep(60_000, ac.signal);
    ac.abort(new Error('stop'));
    await expect(p).rejects.toThrow('stop');
  });
});

describe('Watermark', () => {
  it('wakes a waiter when the mark reaches its target, not before', async () => {
    const w = new Watermark(3);
    expect(await w.reached(3, 1)).toBe(true);
    let done = false;
    const waiting = w.reached(10, 60_000).then((ok) => {
      done = true;
      return ok;
    });
    w.advance(9);
    await Promise.resolve();
    expect(done).toBe(false);
    w.advance(5); // lower: ignored
    expect(w.value).toBe(9);
    w.advance(10);
    expect(await waiting).toBe(true);
  });

  it('answers false after the timeout', async () => {
    expect(await new Watermark().reached(1, 10)).toBe(false);
  });
});

describe('Pulse', () => {
  it('remembers a notify that came before the wait, and times out without one', async () => {
    const p = new Pulse();
    p.notify();
    expect(await p.next(60_000)).toBe(true);
    expect(await p.next(10)).toBe(false);
    const waiting = p.next(60_000);
    p.notify();
    expect(await waiting).toBe(true);
  });
});
