/**
 * The KEDA demand gauge against a real nats-server: the pending count of consumer `demand_<pool>` (what KEDA's
 * nats-jetstream scaler reads) follows the queued depth of the pool, capped, up and down, and after a takeover.
 */
import { CONSUMERS, STREAMS, streamDeclarations } from '@gantry/contracts';
import { NatsHandle, provision } from '@gantry/jetstream';
import { NatsServer } from '@gantry/testing';
import { createLogger } from '@gantry/telemetry';
import { DemandGauge } from '../src/demand/demand-gauge';

const logger = createLogger('demand-test', 'silent');

describe('DemandGauge (real nats-server)', () => {
  let server: NatsServer;
  let nats: NatsHandle;

  beforeAll(async () => {
    server = await NatsServer.start();
    nats = await NatsHandle.connect({ servers: [server.url], name: 'demand-test', logger });
    await provision(nats, { streams: [streamDeclarations().demand] }, logger);
  });

  afterAll(async () => {
    await nats?.drain();
    await server?.dispose();
  });

  const pending = async (pool: string) =>
    (await nats.jsm.consumers.info(STREAMS.demand, CONSUMERS.demand(pool))).num_pending;

  it('keeps each pool’s consumer pending count equal to its queued depth, capped', async () => {
    const gauge = new DemandGauge(nats, 50, logger);
    await gauge.reset();
    await gauge.update(
      new Map([
        ['default', 7],
        ['gpu', 0],
      ]),
    );
    expect(await pending('default')).toBe(7);
    expect(await pending('gpu')).toBe(0);
    await gauge.update(
      new Map([
        ['default', 3],
        ['gpu', 500],
      ]),
    );
    expect(await pending('default')).toBe(3);
    expect(await pending('gpu')).toBe(50);
    await gauge.update(new Map([['default', 12]]));
    expect(await pending('default')).toBe(12);
    // A pool that is no longer reported drops to zero.
    expect(await pending('gpu')).toBe(0);

    // A new leader does not know its predecessor's last value: it rewrites the gauge.
    const successor = new DemandGauge(nats, 50, logger);
    await successor.reset();
    await successor.update(new Map([['default', 4]]));
    expect(await pending('default')).toBe(4);
    const info = await nats.jsm.streams.info(STREAMS.demand);
    expect(info.state.messages).toBe(4);
  });

  it('coalesces a burst into at most one write pass per second, showing the newest depth within that second', async () => {
    const gauge = new DemandGauge(nats, 1_000, logger, 1_000);
    await gauge.reset();
    await gauge.update(new Map([['burst', 0]]));
    const before = (await nats.jsm.streams.info(STREAMS.demand)).state.last_seq;
    // A quiet gauge writes a report at once...
    let t0 = performance.now();
    await gauge.update(new Map([['burst', 5]]));
    expect(await pending('burst')).toBe(5);
    // ...then, within the second, 200 reports rising to 400 and falling back to 30 are one trailing pass.
    const reports: Promise<void>[] = [];
    for (let d = 6; d <= 400; d += 2) reports.push(gauge.update(new Map([['burst', d]])));
    t0 = performance.now();
    reports.push(gauge.update(new Map([['burst', 30]])));
    await Promise.all(reports);
    const shownAfterMs = performance.now() - t0;
    expect(await pending('burst')).toBe(30);
    // Published units: 5, then 25 — not the 395 the swing up to 400 would have cost one report at a time.
    const after = (await nats.jsm.streams.info(STREAMS.demand)).state.last_seq;
    expect(after - before).toBe(30);
    // Shown within the interval (1 s) plus the write itself; the bound is loose for a loaded machine.
    expect(shownAfterMs).toBeLessThan(3_000);
    expect(shownAfterMs).toBeGreaterThan(500);

    // Stopped (a stand-down): a report waiting for its pass is dropped, not written by a deposed leader.
    const waiting = gauge.update(new Map([['burst', 90]]));
    gauge.stop();
    await waiting;
    const stillAt = (await nats.jsm.streams.info(STREAMS.demand)).state.last_seq;
    // A negative can only be checked over a window: past the moment the dropped pass was due (the interval).
    await new Promise<void>((resolve) => setTimeout(resolve, 1_500));
    expect((await nats.jsm.streams.info(STREAMS.demand)).state.last_seq).toBe(stillAt);
    expect(await pending('burst')).toBe(30);
  });
});
