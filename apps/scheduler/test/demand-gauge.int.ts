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
});
