import {
  BUCKETS,
  bucketDeclarations,
  CONFIG_KEYS,
  INITIAL_QUEUE_CONFIG,
  InvalidQueueConfigError,
  type QueueConfigRecord,
} from '@gantry/contracts';
import { encodeJson, NatsHandle, provision, QueueConfigStore } from '@gantry/jetstream';
import { NatsServer, waitFor } from '@gantry/testing';
import { createLogger } from '@gantry/telemetry';

const logger = createLogger('queue-config-test', 'silent');

describe('QueueConfigStore on a real nats-server', () => {
  let server: NatsServer;
  let nats: NatsHandle;

  beforeAll(async () => {
    server = await NatsServer.start();
    nats = await NatsHandle.connect({ servers: [server.url], name: 'queue-config-test', logger });
    await provision(nats, { buckets: [bucketDeclarations().config] }, logger);
  });
  afterAll(async () => {
    await nats?.drain();
    await server?.dispose();
  });

  it('creates the record from the initial one, updates it in place, and every watcher sees each write', async () => {
    const writer = await QueueConfigStore.open(nats, logger);
    const reader = await QueueConfigStore.open(nats, logger);
    const seen: QueueConfigRecord[] = [];
    await reader.watch((c) => seen.push(c));

    const initial: QueueConfigRecord = { ...INITIAL_QUEUE_CONFIG, maxQueueSize: 50 };
    const first = await writer.update({ paused: true }, initial, new Date(1_000));
    expect(first).toEqual({
      paused: true,
      draining: false,
      maxQueueSize: 50,
      updatedAt: new Date(1_000).toISOString(),
    });
    // The stored record wins over `initial` from now on.
    const second = await writer.update({ maxConcurrentJobs: 0 }, INITIAL_QUEUE_CONFIG, new Date(2_000));
    expect(second).toMatchObject({ paused: true, maxQueueSize: 50, maxConcurrentJobs: 0 });
    await waitFor(() => seen.length === 2, { what: 'both records watched' });
    expect(seen).toEqual([first, second]);

    // A late watcher starts from the stored record.
    const late = await QueueConfigStore.open(nats, logger);
    const lateSeen: QueueConfigRecord[] = [];
    await late.watch((c) => lateSeen.push(c));
    await waitFor(() => lateSeen.length === 1, { what: 'the stored record' });
    expect(lateSeen[0]).toEqual(second);
    await Promise.all([reader.stop(), late.stop()]);
  });

  it('refuses out-of-bounds caps before writing anything', async () => {
    const store = await QueueConfigStore.open(nats, logger);
    const kv = await nats.kvm.open(BUCKETS.config);
    const before = (await kv.get(CONFIG_KEYS.queue))?.revision;
    for (const patch of [
      { maxQueueSize: 0 },
      { maxConcurrentJobs: -1 },
      { maxConcurrentJobs: 1.5 },
      { maxQueueSize: 1e9 },
    ])
      await expect(store.update(patch, INITIAL_QUEUE_CONFIG, new Date())).rejects.toBeInstanceOf(
        InvalidQueueConfigError,
      );
    expect((await kv.get(CONFIG_KEYS.queue))?.revision).toBe(before);
  });

  it('loses no update when writers race (compare-and-set, read again)', async () => {
    const stores = await Promise.all([1, 2, 3, 4].map(() => QueueConfigStore.open(nats, logger)));
    await Promise.all(stores.map((s, i) => s.update({ maxConcurrentJobs: 100 + i }, INITIAL_QUEUE_CONFIG, new Date())));
    await stores[0]!.update({ draining: true }, INITIAL_QUEUE_CONFIG, new Date());
    const kv = await nats.kvm.open(BUCKETS.config);
    const stored = (await kv.get(CONFIG_KEYS.queue))!.json<QueueConfigRecord>();
    // The flags written before the race survive every racer's write, and one racer's cap is last.
    expect(stored).toMatchObject({ paused: true, draining: true, maxQueueSize: 50 });
    expect([100, 101, 102, 103]).toContain(stored.maxConcurrentJobs);
  });

  it('skips a record it cannot decode and keeps watching', async () => {
    const kv = await nats.kvm.open(BUCKETS.config);
    const store = await QueueConfigStore.open(nats, logger);
    const seen: QueueConfigRecord[] = [];
    await store.watch((c) => seen.push(c));
    await waitFor(() => seen.length === 1, { what: 'the stored record' });
    await kv.put(CONFIG_KEYS.queue, encodeJson({ paused: 'yes', draining: false, updatedAt: 'x' }));
    await kv.put(CONFIG_KEYS.queue, encodeJson({ paused: false, draining: false, maxQueueSize: -3, updatedAt: 'x' }));
    const good: QueueConfigRecord = { paused: false, draining: false, updatedAt: new Date(5).toISOString() };
    await kv.put(CONFIG_KEYS.queue, encodeJson(good));
    await waitFor(() => seen.length === 2, { what: 'the good record' });
    expect(seen[1]).toEqual(good);
    await store.stop();
  });
});
