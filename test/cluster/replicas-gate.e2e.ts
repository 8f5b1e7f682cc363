/**
 * NATS_REPLICAS > 1 is refused on servers older than 2.11.0 (replicated streams there do not enforce compare-and-set
 * when a write is applied: a job could run twice). Every service exits 69 at boot with a message that says why and
 * what to do, before it creates anything. Runs against the nats-server on the PATH; on a server ≥ 2.11 there is
 * nothing to refuse, and test/cluster/r3.e2e.ts runs instead.
 */
import { NatsHandle, versionAtLeast } from '@gantry/jetstream';
import { GantryCluster, natsServerVersion, within, type ServiceName } from '@gantry/testing';
import { createLogger } from '@gantry/telemetry';

const version = natsServerVersion();
const SERVICES: ServiceName[] = ['scheduler', 'gpu-worker', 'notifier', 'gateway'];

(versionAtLeast(version, '2.11.0') ? describe.skip : describe)(`NATS_REPLICAS=3 on nats-server ${version}`, () => {
  let cluster: GantryCluster;
  beforeAll(async () => {
    cluster = await GantryCluster.start({ manual: true, env: { NATS_REPLICAS: '3' } });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it.each(SERVICES)('%s refuses to start: exit 69 and why, having created nothing', async (service) => {
    const p = cluster.spawn(service, service === 'gateway' ? { GATEWAY_PORT: '0' } : {});
    expect(await within(p.exited(), 60_000, `${service} to exit`)).toBe(69);
    const out = p.raw.join('\n');
    expect(out).toContain(`NATS_REPLICAS=3 needs nats-server >= 2.11.0 (connected: ${version})`);
    expect(out).toContain('or run NATS_REPLICAS=1');

    const nats = await NatsHandle.connect({
      servers: [cluster.nats.url],
      name: 'replicas-gate-check',
      logger: createLogger('e2e', 'silent'),
    });
    try {
      const names: string[] = [];
      for await (const s of nats.jsm.streams.list()) names.push(s.config.name);
      expect(names).toEqual([]);
    } finally {
      await nats.drain();
    }
  });
});
