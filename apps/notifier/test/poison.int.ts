/**
 * Payloads that break their channel contract, published into the notifier's real streams and sent to its RPCs: each
 * is terminated as poison before any handler sees it (logged with the reason, counted), never redelivered, and the
 * notifier goes on serving the well-formed messages behind it.
 */
import { CONSUMERS, STREAMS, SUBJECTS, type FailedListReply } from '@gantry/contracts';
import { encodeJson, rpcRequest } from '@gantry/jetstream';
import { waitFor, WebhookReceiver } from '@gantry/testing';
import type { RunningNotifier } from '../src/notifier.app';
import { metricValue, NotifierHarness } from './harness';

describe('notifier: malformed payloads are poison (real NATS)', () => {
  let h: NotifierHarness;
  let notifier: RunningNotifier;
  let receiver: WebhookReceiver;

  beforeAll(async () => {
    h = await NotifierHarness.start();
    notifier = await h.replica();
    receiver = await WebhookReceiver.start(0);
  });
  afterAll(async () => {
    await receiver?.close();
    await h?.stop();
  });

  const poisoned = async (binding: string) =>
    metricValue(await h.metrics(notifier), 'gantry_transport_poison_messages_total', { binding });
  const settled = async (stream: string, consumer: string) => {
    const info = await h.client.jsm.consumers.info(stream, consumer);
    return info.num_pending + info.num_ack_pending === 0;
  };

  it('terminates malformed job events on the intake and delivers the good event behind them', async () => {
    const { event } = await h.event({ type: 'job.queued' });
    const malformed = [
      new TextEncoder().encode('not json'),
      new Uint8Array(0),
      encodeJson({ ...event, job: { ...event.job, status: 'exploded' } }),
      encodeJson({ ...event, job: { ...event.job, callbackUrl: 42 } }),
      encodeJson({ type: 'job.completed' }),
      encodeJson([event]),
    ];
    for (const data of malformed) await h.client.js.publish(SUBJECTS.job('poisonjob'), data);
    const good = await h.event({ type: 'job.completed', sequence: 3, callbackUrl: `${receiver.url}/ok` });
    await waitFor(() => receiver.received.length === 1, { what: 'the good webhook', timeoutMs: 20_000 });
    expect(receiver.received[0]!.headers['webhook-id']).toBe(good.webhookId);
    await waitFor(async () => (await poisoned('intake')) === malformed.length, { what: 'every poison counted' });
    await waitFor(() => settled(STREAMS.jobs, CONSUMERS.notifierIntake), { what: 'the intake settled' });
    expect(await poisoned('intake')).toBe(malformed.length);
  });

  it('terminates malformed deliveries: never sent, never retried, never dead-lettered', async () => {
    const url = `${receiver.url}/poison`;
    const delivery = {
      v: 1,
      webhookId: 'msg_poison_1_1',
      jobId: 'poison',
      tenant: 'default',
      type: 'job.completed',
      url,
      attempts: 0,
      notBefore: 0,
      body: { type: 'job.completed', timestamp: new Date().toISOString(), sequence: 1, generation: 1, data: {} },
    };
    const malformed = [
      new TextEncoder().encode('{'),
      encodeJson({ ...delivery, v: 0 }),
      encodeJson({ ...delivery, url: undefined }),
      encodeJson({ ...delivery, body: null }),
      encodeJson({ ...delivery, attempts: 'none' }),
    ];
    for (const data of malformed) await h.client.js.publish(SUBJECTS.webhook('poisonendpoint'), data);
    await waitFor(async () => (await poisoned('deliveries')) === malformed.length, { what: 'every poison counted' });
    // Terminated on a WorkQueue stream: nothing of them is left that could be redelivered.
    await waitFor(
      async () => {
        const subject = SUBJECTS.webhook('poisonendpoint');
        const info = await h.client.jsm.streams.info(STREAMS.webhooks, { subjects_filter: subject });
        return (info.state.subjects?.[subject] ?? 0) === 0 && settled(STREAMS.webhooks, CONSUMERS.notifierDeliveries);
      },
      { what: 'the poison deliveries gone' },
    );
    expect(receiver.received.filter((r) => r.path === '/poison')).toEqual([]);
    const failed = await h.rpc<FailedListReply>('failed-list', { limit: 500 });
    expect(failed.items.filter((i) => i.url === url)).toEqual([]);
  });

  it('answers a 400 naming the bad field to an RPC request that breaks its declaration', async () => {
    const call = (op: 'failed-list' | 'replay', payload: unknown) =>
      rpcRequest(h.client.nc, SUBJECTS.notifierRpc(op), payload, { timeoutMs: 5_000 });
    await expect(call('failed-list', { limit: 'ten' })).rejects.toMatchObject({
      status: 400,
      detail: 'notifier.failed-list request: limit: expected an integer',
    });
    await expect(call('failed-list', {})).rejects.toMatchObject({ status: 400 });
    await expect(call('replay', { id: 7 })).rejects.toMatchObject({
      status: 400,
      detail: 'notifier.replay request: id: expected a string',
    });
  });
});
