import 'reflect-metadata';
import { Controller, Module, type INestMicroservice } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Ctx, Payload } from '@nestjs/microservices';
import {
  anyJson,
  defineChannel,
  defineRpc,
  int,
  literal,
  ms,
  object,
  str,
  type ConsumerDeclaration,
  type StreamDeclaration,
} from '@gantry/contracts';
import { NatsServer, waitFor, Deferred } from '@gantry/testing';
import { activeIds, createLogger, createRegistry, inSpan, startTelemetry } from '@gantry/telemetry';
import {
  ensureStream,
  JetStreamClientProxy,
  JetStreamContext,
  JetStreamHandler,
  JetStreamServer,
  NatsHandle,
  NO_REPLY,
  PoisonMessageError,
  publishJson,
  RetryLaterError,
  rpcCall,
  RpcClient,
  rpcRequest,
  RpcError,
  RpcHandler,
  RpcUnavailableError,
  type ConsumerBinding,
} from '@gantry/jetstream';
import { firstValueFrom } from 'rxjs';

const logger = createLogger('transport-test', 'silent');
const STREAM = 'TEST_WORK';

const stream: StreamDeclaration = {
  name: STREAM,
  subjects: ['test.work.>'],
  retention: 'workqueue',
  storage: 'file',
  discard: 'old',
  max_age: 0,
  max_msgs: -1,
  max_bytes: -1,
  max_msgs_per_subject: -1,
  max_msg_size: -1,
  duplicate_window: ms(120_000),
  allow_direct: true,
  num_replicas: 1,
};

function consumer(name: string, ackWaitMs = 30_000): ConsumerDeclaration {
  return {
    stream: STREAM,
    durable_name: name,
    filter_subject: `test.work.${name}`,
    deliver_policy: 'all',
    ack_policy: 'explicit',
    ack_wait: ms(ackWaitMs),
    max_deliver: -1,
    max_ack_pending: 1000,
    inactive_threshold: 0,
  };
}

/** Any JSON: the bindings that test settlement, not payload checks. */
const anyChannel = defineChannel<unknown>({
  name: 'test-any',
  subject: 'test.work.>',
  version: 1,
  transport: 'stream',
  parse: anyJson,
});

interface Order {
  v: 1;
  id: string;
  qty: number;
}
const orderGuard = object<Order>({ v: literal(1), id: str, qty: int });
const orders = defineChannel<Order>({
  name: 'test-orders',
  subject: 'test.work.typed',
  version: 1,
  transport: 'stream',
  parse: orderGuard,
});

const ECHO = defineRpc<{ text: string }, { echoed: string }>({
  name: 'test.echo',
  subject: 'test.rpc.echo',
  version: 1,
  parseRequest: object<{ text: string }>({ text: str }),
  parseReply: object<{ echoed: string }>({ echoed: str }),
});
const noRequest = object<Record<string, never>>({});
const SILENT = defineRpc<Record<string, never>, null>({
  name: 'test.silent',
  subject: 'test.rpc.silent',
  version: 1,
  parseRequest: noRequest,
  parseReply: (v) => v as null,
});
const REFUSE = defineRpc<Record<string, never>, null>({
  name: 'test.refuse',
  subject: 'test.rpc.refuse',
  version: 1,
  parseRequest: noRequest,
  parseReply: (v) => v as null,
});
/** Served with a reply that breaks the declaration (a server of another contract version). */
const DRIFTED = defineRpc<Record<string, never>, { count: number }>({
  name: 'test.drifted',
  subject: 'test.rpc.drifted',
  version: 1,
  parseRequest: noRequest,
  parseReply: object<{ count: number }>({ count: int }),
});
const DRIFTED_SERVER = defineRpc<Record<string, never>, { count: string }>({
  name: 'test.drifted',
  subject: 'test.rpc.drifted',
  version: 1,
  parseRequest: noRequest,
  parseReply: object<{ count: string }>({ count: str }),
});

interface Seen {
  data: unknown;
  deliveryCount: number;
  at: number;
  traceId?: string;
}

/** Records what each binding saw and lets a test script the handler's behaviour. */
class Probe {
  readonly seen: Record<string, Seen[]> = {};
  behaviour: Record<string, (ctx: JetStreamContext, data: unknown) => Promise<unknown> | unknown> = {};
  running = 0;
  maxRunning = 0;
  record(binding: string, data: unknown, ctx: JetStreamContext) {
    (this.seen[binding] ??= []).push({ data, deliveryCount: ctx.deliveryCount, at: Date.now(), ...activeIds() });
  }
}
const probe = new Probe();

@Controller()
class TestHandlers {
  private async run(binding: string, data: unknown, ctx: JetStreamContext) {
    probe.record(binding, data, ctx);
    probe.running++;
    probe.maxRunning = Math.max(probe.maxRunning, probe.running);
    try {
      return await probe.behaviour[binding]?.(ctx, data);
    } finally {
      probe.running--;
    }
  }
  @JetStreamHandler('acked', anyChannel) acked(@Payload() d: unknown, @Ctx() c: JetStreamContext) {
    return this.run('acked', d, c);
  }
  @JetStreamHandler('naked', anyChannel) naked(@Payload() d: unknown, @Ctx() c: JetStreamContext) {
    return this.run('naked', d, c);
  }
  @JetStreamHandler('termed', anyChannel) termed(@Payload() d: unknown, @Ctx() c: JetStreamContext) {
    return this.run('termed', d, c);
  }
  @JetStreamHandler('expiring', anyChannel) expiring(@Payload() d: unknown, @Ctx() c: JetStreamContext) {
    return this.run('expiring', d, c);
  }
  @JetStreamHandler('long', anyChannel) long(@Payload() d: unknown, @Ctx() c: JetStreamContext) {
    return this.run('long', d, c);
  }
  @JetStreamHandler('bounded', anyChannel) bounded(@Payload() d: unknown, @Ctx() c: JetStreamContext) {
    return this.run('bounded', d, c);
  }
  @JetStreamHandler('fair', anyChannel) fair(@Payload() d: unknown, @Ctx() c: JetStreamContext) {
    return this.run('fair', d, c);
  }
  @JetStreamHandler('typed', orders) typed(@Payload() d: Order, @Ctx() c: JetStreamContext) {
    return this.run('typed', d, c);
  }
  @RpcHandler(ECHO) echo(@Payload() d: { text: string }) {
    return { echoed: d.text };
  }
  @RpcHandler(SILENT) silent(): typeof NO_REPLY {
    return NO_REPLY;
  }
  @RpcHandler(REFUSE) refuse(): null {
    throw new RpcError(409, 'Conflict', 'not now');
  }
  @RpcHandler(DRIFTED_SERVER) drifted() {
    return { count: 'seven' };
  }
}

@Module({ controllers: [TestHandlers] })
class TestModule {}

describe('JetStream transport (real nats-server)', () => {
  let server: NatsServer;
  let nats: NatsHandle;
  let app: INestMicroservice;
  let strategy: JetStreamServer;

  const bindings: Record<string, ConsumerBinding> = {
    acked: { consumer: consumer('acked'), maxInFlight: 4 },
    naked: { consumer: consumer('naked'), maxInFlight: 4 },
    termed: { consumer: consumer('termed', 1_000), maxInFlight: 4, heartbeatMs: 0 },
    expiring: { consumer: consumer('expiring', 1_000), maxInFlight: 4, heartbeatMs: 0, pullExpiresMs: 1_000 },
    long: { consumer: consumer('long', 1_000), maxInFlight: 4, heartbeatMs: 250 },
    bounded: { consumer: consumer('bounded'), maxInFlight: 2 },
    // Reads ahead 100, runs one at a time, turns round-robin over the Test-Key header.
    fair: {
      consumer: consumer('fair'),
      maxInFlight: 100,
      maxBytesInFlight: 1024 * 1024,
      maxMessageBytes: 1024,
      fair: { key: (h) => h?.get('Test-Key') ?? '', concurrency: 1 },
    },
    typed: { consumer: consumer('typed', 1_000), maxInFlight: 4, heartbeatMs: 0 },
  };
  const registry = createRegistry('transport-test');

  beforeAll(async () => {
    startTelemetry('transport-test');
    server = await NatsServer.start();
    nats = await NatsHandle.connect({ servers: [server.url], name: 'transport-test', logger });
    await ensureStream(nats.jsm, stream, logger);
    strategy = new JetStreamServer({ nats, bindings, logger, drainTimeoutMs: 10_000, registry });
    app = await NestFactory.createMicroservice(TestModule, { strategy, logger: false });
    await app.listen();
  });

  afterAll(async () => {
    await app?.close();
    await nats?.drain();
    await server?.dispose();
  });

  const publish = (name: string, data: unknown) => publishJson(nats.js, `test.work.${name}`, data);
  const ackPending = async (name: string) => (await nats.jsm.consumers.info(STREAM, name)).num_ack_pending;
  const pending = async (name: string) => (await nats.jsm.consumers.info(STREAM, name)).num_pending;

  it('acks a message after its handler succeeds, removing it from the work queue', async () => {
    await publish('acked', { n: 1 });
    await waitFor(() => probe.seen['acked']?.length === 1, { what: 'delivery' });
    await waitFor(async () => (await ackPending('acked')) === 0 && (await pending('acked')) === 0, { what: 'ack' });
    const info = await nats.jsm.streams.info(STREAM, { subjects_filter: 'test.work.acked' });
    expect(info.state.subjects?.['test.work.acked'] ?? 0).toBe(0);
    expect(probe.seen['acked']![0]!.data).toEqual({ n: 1 });
  });

  it('naks with the delay a handler asks for, then redelivers', async () => {
    probe.behaviour['naked'] = (ctx) => {
      if (ctx.deliveryCount === 1) throw new RetryLaterError('not yet', { delayMs: 700 });
    };
    await publish('naked', { n: 2 });
    const seen = await waitFor(() => (probe.seen['naked']?.length === 2 ? probe.seen['naked'] : undefined), {
      what: 'redelivery',
    });
    expect(seen[1]!.deliveryCount).toBe(2);
    expect(seen[1]!.at - seen[0]!.at).toBeGreaterThanOrEqual(600);
    await waitFor(async () => (await ackPending('naked')) === 0, { what: 'final ack' });
  });

  it('terminates a poison message and never redelivers it', async () => {
    probe.behaviour['termed'] = () => {
      throw new PoisonMessageError('cannot ever process this');
    };
    await publish('termed', { n: 3 });
    await nats.nc.publish('test.work.termed', new TextEncoder().encode('not json'));
    await waitFor(() => probe.seen['termed']?.length === 1, { what: 'first delivery' });
    await waitFor(async () => (await ackPending('termed')) === 0, { what: 'term' });
    // A terminated message leaves the work queue for good: nothing is left that could ever be redelivered.
    await waitFor(
      async () => {
        const info = await nats.jsm.streams.info(STREAM, { subjects_filter: 'test.work.termed' });
        return (info.state.subjects?.['test.work.termed'] ?? 0) === 0;
      },
      { what: 'terminated messages gone from the stream' },
    );
    expect(await pending('termed')).toBe(0);
    expect(probe.seen['termed']).toHaveLength(1);
  });

  it('terminates every payload that breaks its channel contract before the handler runs, logs and counts it', async () => {
    const enc = new TextEncoder();
    const malformed: [string, Uint8Array][] = [
      ['not JSON', enc.encode('{"v":1,')],
      ['empty', new Uint8Array(0)],
      ['wrong version', enc.encode(JSON.stringify({ v: 2, id: 'a', qty: 1 }))],
      ['missing field', enc.encode(JSON.stringify({ v: 1, qty: 1 }))],
      ['wrong type', enc.encode(JSON.stringify({ v: 1, id: 'a', qty: '1' }))],
      ['not an object', enc.encode('[1,2]')],
    ];
    for (const [, data] of malformed) await nats.js.publish('test.work.typed', data);
    await publish('typed', { v: 1, id: 'good', qty: 2 });
    // The well-formed one behind them is handled; none of the malformed ever reaches the handler.
    await waitFor(() => probe.seen['typed']?.length === 1, { what: 'the valid order' });
    await waitFor(() => strategy.poisoned()['typed'] === malformed.length, { what: 'every poison counted' });
    // Terminated, not left for redelivery: the work queue holds none of them any more (AckWait is 1 s here, so a
    // message left pending would come back and be counted again).
    await waitFor(
      async () => {
        const info = await nats.jsm.streams.info(STREAM, { subjects_filter: 'test.work.typed' });
        return (info.state.subjects?.['test.work.typed'] ?? 0) === 0 && (await ackPending('typed')) === 0;
      },
      { what: 'poison messages gone from the work queue' },
    );
    expect(await pending('typed')).toBe(0);
    expect(probe.seen['typed']).toEqual([expect.objectContaining({ data: { v: 1, id: 'good', qty: 2 } })]);
    expect(strategy.poisoned()['typed']).toBe(malformed.length);
    const metric = await registry.getSingleMetricAsString('gantry_transport_poison_messages_total');
    expect(metric).toContain(
      `gantry_transport_poison_messages_total{binding="typed",service="transport-test"} ${malformed.length}`,
    );
  });

  it('redelivers a message whose handler neither settles nor heartbeats within AckWait', async () => {
    const release = new Deferred();
    probe.behaviour['expiring'] = (ctx) => (ctx.deliveryCount === 1 ? release.promise : undefined);
    await publish('expiring', { n: 4 });
    const seen = await waitFor(() => (probe.seen['expiring']?.length === 2 ? probe.seen['expiring'] : undefined), {
      what: 'redelivery after AckWait',
    });
    expect(seen[1]!.deliveryCount).toBe(2);
    expect(seen[1]!.at - seen[0]!.at).toBeGreaterThanOrEqual(900);
    release.resolve();
  });

  it('keeps a long message with working() heartbeats (no redelivery past AckWait)', async () => {
    probe.behaviour['long'] = async () => {
      const started = Date.now();
      await waitFor(() => Date.now() - started >= 3_000 || undefined, { intervalMs: 100, timeoutMs: 5_000 });
    };
    await publish('long', { n: 5 });
    await waitFor(() => probe.seen['long']?.length === 1, { what: 'delivery' });
    await waitFor(async () => (await ackPending('long')) === 0 && probe.running === 0, {
      what: 'completion',
      timeoutMs: 10_000,
    });
    expect(probe.seen['long']).toHaveLength(1);
  });

  it('never runs more handlers of a binding than its maxInFlight', async () => {
    const gate = new Deferred();
    probe.maxRunning = 0;
    probe.behaviour['bounded'] = () => gate.promise;
    for (let i = 0; i < 6; i++) await publish('bounded', { i });
    await waitFor(() => probe.seen['bounded']?.length === 2, { what: 'two deliveries' });
    // The broker holds the other four: pending, not delivered.
    await waitFor(async () => (await pending('bounded')) === 4, { what: 'four still pending' });
    expect(await ackPending('bounded')).toBe(2);
    gate.resolve();
    await waitFor(() => probe.seen['bounded']?.length === 6, { what: 'all six' });
    expect(probe.maxRunning).toBe(2);
  });

  it('with fair turns, reads ahead and starts handlers round-robin over the keys (a quiet key overtakes a flood)', async () => {
    const gate = new Deferred();
    probe.maxRunning = 0;
    probe.behaviour['fair'] = () => gate.promise;
    const send = (key: string, i: number) =>
      publishJson(nats.js, 'test.work.fair', { key, i }, { headers: { 'Test-Key': key } });
    for (let i = 0; i < 10; i++) await send('flood', i);
    for (let i = 0; i < 2; i++) await send('quiet', i);
    await waitFor(() => probe.seen['fair']?.length === 1, { what: 'the first flood message running' });
    // Every message is read ahead (handed out, held for its turn), though only one handler runs.
    await waitFor(async () => (await ackPending('fair')) === 12 && (await pending('fair')) === 0, {
      what: 'all twelve read ahead',
    });
    expect(probe.seen['fair']).toHaveLength(1);
    gate.resolve();
    await waitFor(() => probe.seen['fair']?.length === 12, { what: 'all twelve handled' });
    const order = probe.seen['fair']!.map((x) => x.data as { key: string; i: number });
    // flood 0 ran first; then the keys alternate, so both quiet messages start among the first five, not after ten.
    expect(order.slice(0, 5)).toEqual([
      { key: 'flood', i: 0 },
      { key: 'flood', i: 1 },
      { key: 'quiet', i: 0 },
      { key: 'flood', i: 2 },
      { key: 'quiet', i: 1 },
    ]);
    // A key's own messages keep their order.
    expect(order.filter((x) => x.key === 'flood').map((x) => x.i)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(probe.maxRunning).toBe(1);
    await waitFor(async () => (await ackPending('fair')) === 0, { what: 'all acked' });
  });

  it('carries W3C trace context from a publish to its handler', async () => {
    let publisherTrace: string | undefined;
    await inSpan('test-root', {}, async () => {
      publisherTrace = activeIds().traceId;
      await publish('acked', { n: 'traced' });
    });
    const seen = await waitFor(() => probe.seen['acked']?.find((s) => (s.data as { n?: string }).n === 'traced'), {
      what: 'traced delivery',
    });
    expect(publisherTrace).toMatch(/^[0-9a-f]{32}$/);
    expect(seen.traceId).toBe(publisherTrace);
  });

  it('answers request/reply, stays silent on NO_REPLY, and maps RpcError', async () => {
    await expect(rpcRequest(nats.nc, 'test.rpc.echo', { text: 'hi' }, { timeoutMs: 2_000 })).resolves.toEqual({
      echoed: 'hi',
    });
    await expect(rpcRequest(nats.nc, 'test.rpc.silent', {}, { timeoutMs: 300 })).rejects.toBeInstanceOf(
      RpcUnavailableError,
    );
    await expect(rpcRequest(nats.nc, 'test.rpc.refuse', {}, { timeoutMs: 2_000 })).rejects.toMatchObject({
      status: 409,
    });
    const client = new JetStreamClientProxy({ nats, timeoutMs: 2_000 });
    await expect(firstValueFrom(client.send('test.rpc.echo', { text: 'proxy' }))).resolves.toEqual({ echoed: 'proxy' });
    const ack = await firstValueFrom(client.emit('test.work.acked', { n: 'emitted' }));
    expect(ack).toMatchObject({ stream: STREAM });
    await waitFor(() => probe.seen['acked']?.some((s) => (s.data as { n?: string }).n === 'emitted'), {
      what: 'emitted event',
    });
  });

  it('checks requests and replies against the RPC declaration', async () => {
    // A malformed request gets a 400 naming the bad field; the handler never runs.
    await expect(rpcRequest(nats.nc, 'test.rpc.echo', { text: 7 }, { timeoutMs: 2_000 })).rejects.toMatchObject({
      status: 400,
      detail: 'test.echo request: text: expected a string',
    });
    await expect(rpcRequest(nats.nc, 'test.rpc.echo', 'hi', { timeoutMs: 2_000 })).rejects.toMatchObject({
      status: 400,
      detail: 'test.echo request: payload: expected an object',
    });
    const garbage = await nats.nc.request('test.rpc.echo', new TextEncoder().encode('{'), { timeout: 2_000 });
    expect(garbage.json()).toMatchObject({ ok: false, error: { status: 400 } });
    // The typed client: typed request, checked reply.
    const client = new RpcClient({ connection: () => nats.nc, timeoutMs: 2_000 });
    const echoed: { echoed: string } = await client.call(ECHO, { text: 'typed' });
    expect(echoed).toEqual({ echoed: 'typed' });
    await expect(client.call(SILENT, {}, { timeoutMs: 300 })).rejects.toBeInstanceOf(RpcUnavailableError);
    await expect(client.call(REFUSE)).rejects.toMatchObject({ status: 409 });
    // A reply that breaks the declaration is a clear 502, not a mistyped value.
    await expect(rpcCall(nats.nc, DRIFTED, {}, { timeoutMs: 2_000 })).rejects.toMatchObject({
      status: 502,
      detail: 'the reply does not match its contract (test.drifted reply: count: expected an integer)',
    });
  });

  it('drains on close: stops pulling, finishes in-flight handlers, acks them', async () => {
    const gate = new Deferred();
    let finished = false;
    probe.behaviour['acked'] = async () => {
      await gate.promise;
      finished = true;
    };
    const before = probe.seen['acked']?.length ?? 0;
    await publish('acked', { n: 'in-flight' });
    await waitFor(() => (probe.seen['acked']?.length ?? 0) === before + 1, { what: 'in-flight delivery' });
    const closing = strategy.close();
    await publish('acked', { n: 'after-close' });
    gate.resolve();
    await closing;
    expect(finished).toBe(true);
    expect(await ackPending('acked')).toBe(0);
    // The message published during shutdown was never pulled: it waits for the next consumer.
    expect(await pending('acked')).toBe(1);
    expect(probe.seen['acked']!.some((s) => (s.data as { n?: string }).n === 'after-close')).toBe(false);
  });
});
