/**
 * A replay whose dead-letter lookup fails is not "no such failed webhook", against a real nats-server that is stopped
 * and started again: an unknown id is a 404 (the broker's no-message answer), but while the broker is away a replay
 * of an entry that exists answers 503 (it answered 404 until v1.1: the lookup took every error for "absent"), queues
 * nothing and removes nothing; once NATS is back the same replay works.
 */
import { DEFAULT_TOPOLOGY, STREAMS, streamDeclarations, type WebhookDelivery } from '@gantry/contracts';
import { NatsHandle, RpcError, provision } from '@gantry/jetstream';
import { NatsServer, waitFor } from '@gantry/testing';
import { createLogger, createRegistry } from '@gantry/telemetry';
import { DeadLetterService } from '../src/dead-letters/dead-letter.service';
import { DeliveryQueue } from '../src/delivery/tenant-lanes';
import { NotifierMetrics } from '../src/notifier-metrics';

const logger = createLogger('replay-read-errors-test', 'silent');

describe('webhook replay lookup while nats-server is down (real nats-server)', () => {
  let server: NatsServer;
  let nats: NatsHandle;

  beforeAll(async () => {
    server = await NatsServer.start();
    nats = await NatsHandle.connect({ servers: [server.url], name: 'replay-read-errors-test', logger, timeoutMs: 500 });
    const s = streamDeclarations();
    await provision(nats, { streams: [s.webhooks, s.webhookDlq], buckets: [] }, logger);
  });
  afterAll(async () => {
    await nats?.drain().catch(() => undefined);
    await server?.dispose();
  });

  it('404 only for an absent entry; 503 changing nothing while the broker fails; the replay works after', async () => {
    const service = new DeadLetterService(
      nats,
      new NotifierMetrics(createRegistry('notifier-test'), () => nats),
      logger,
      new DeliveryQueue(nats, DEFAULT_TOPOLOGY, logger),
    );
    const delivery: WebhookDelivery = {
      v: 1,
      webhookId: 'msg_replay_read_errors',
      jobId: 'job-1',
      tenant: 'acme',
      type: 'job.completed',
      url: 'http://127.0.0.1:9/hook',
      attempts: 5,
      notBefore: Date.now(),
      body: { type: 'job.completed', timestamp: new Date().toISOString(), sequence: 3, generation: 1, data: {} },
    };
    await service.record(delivery, { attempts: 5, lastStatus: 500 });
    const [entry] = (await service.list({ limit: 10 })).items;
    expect(entry).toBeDefined();

    // A real "not found".
    await expect(service.replay('999')).rejects.toMatchObject({ status: 404 });

    await server.stop();
    try {
      const err = await service.replay(entry!.id).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(RpcError);
      expect(err).toMatchObject({ status: 503 });
    } finally {
      await server.restart();
    }

    // Nothing changed: the entry is still there and nothing was queued.
    const jsm = nats.jsm;
    await waitFor(
      () =>
        jsm.streams.info(STREAMS.webhookDlq).then(
          () => true,
          () => false,
        ),
      { what: 'NATS to be back', timeoutMs: 30_000, intervalMs: 200 },
    );
    expect((await service.list({ limit: 10 })).items.map((i) => i.id)).toEqual([entry!.id]);
    expect((await jsm.streams.info(STREAMS.webhooks)).state.messages).toBe(0);

    // And the same replay works now.
    expect(await service.replay(entry!.id)).toMatchObject({ id: entry!.id, webhookId: delivery.webhookId });
    expect((await jsm.streams.info(STREAMS.webhooks)).state.messages).toBe(1);
    expect((await service.list({ limit: 10 })).items).toEqual([]);
  }, 90_000);
});
