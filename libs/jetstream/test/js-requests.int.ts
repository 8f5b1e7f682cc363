/**
 * Our own JetStream request path (reply-mux.ts, js-requests.ts) against a real nats-server: acked publishes and
 * direct reads answer what `js.publish` / `jsm.direct.getMessage` answer — the same values and the same error
 * classes, so the predicates in errors.ts classify them unchanged — and no request is left pending, whatever happens
 * to the server or the connection.
 */
import {
  AckPolicy,
  JetStreamApiError,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type JsMsg,
  type PubAck,
} from '@nats-io/jetstream';
import { jserrors } from '@nats-io/jetstream/internal';
import { errors as natsErrors, headers as natsHeaders, type MsgHdrs, type Subscription } from '@nats-io/nats-core';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NatsServer, waitFor, within } from '@gantry/testing';
import { context, ROOT_CONTEXT, trace } from '@opentelemetry/api';
import { contextFromTraceparent, createLogger, spansRecorded, startTelemetry, tracer } from '@gantry/telemetry';
import {
  directGet,
  JetStreamContext,
  isNatsUnavailable,
  isWrongLastSequence,
  jsPublish,
  leaderGet,
  NatsHandle,
  publishEncoded,
  publishJson,
  replyMux,
  SWEEP_MS,
} from '@gantry/jetstream';

const logger = createLogger('js-requests-test', 'silent');
const STREAM = 'HPUB';
const NO_DIRECT = 'HPUB_NODIRECT';
const enc = (s: string) => new TextEncoder().encode(s);

/** The rejection of `p`, failing the test if it resolves. */
async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

describe('JetStream publishes and direct reads over the reply mux (real nats-server)', () => {
  let server: NatsServer;
  let nats: NatsHandle;

  beforeAll(async () => {
    server = await NatsServer.start();
    nats = await NatsHandle.connect({ servers: [server.url], name: 'js-requests-test', logger });
    await nats.jsm.streams.add({ name: STREAM, subjects: ['hpub.>'], storage: StorageType.File, allow_direct: true });
    await nats.jsm.streams.add({ name: NO_DIRECT, subjects: ['nodirect.>'], storage: StorageType.File });
  }, 60_000);

  afterAll(async () => {
    await nats?.drain();
    await server?.dispose();
  });

  it('acks with the fields js.publish gives (stream, seq, duplicate false), through the mux', async () => {
    const mux = replyMux(nats.nc);
    const p = jsPublish(nats.js, 'hpub.ack.a', enc('one'));
    expect(mux.size).toBe(1); // our path, not js.publish
    const ours = await p;
    const theirs = await nats.js.publish('hpub.ack.b', enc('two'));
    expect(ours).toEqual({ stream: STREAM, seq: theirs.seq - 1, duplicate: false });
    expect(Object.keys(ours).sort()).toEqual(Object.keys(theirs).sort());
    expect(mux.size).toBe(0);
    // Nothing to say in headers: a plain PUB, stored with no header block.
    expect((await nats.jsm.streams.getMessage(STREAM, { seq: ours.seq }))?.header.keys() ?? []).toEqual([]);
  });

  it('publishJson sends the caller headers and the msg id and answers duplicate: true for a repeat', async () => {
    const first = await publishJson(nats.js, 'hpub.dup', { n: 1 }, { msgID: 'dup-1', headers: { 'X-Gantry': 'yes' } });
    const again = await publishJson(nats.js, 'hpub.dup', { n: 1 }, { msgID: 'dup-1' });
    expect(first.duplicate).toBe(false);
    expect(again).toEqual({ stream: STREAM, seq: first.seq, duplicate: true });
    const stored = await nats.jsm.streams.getMessage(STREAM, { seq: first.seq });
    expect(stored?.header.get('Nats-Msg-Id')).toBe('dup-1');
    expect(stored?.header.get('X-Gantry')).toBe('yes');
  });

  it('a compare-and-set that lost (subject or stream sequence) rejects with the JetStreamApiError isWrongLastSequence accepts', async () => {
    const a = await jsPublish(nats.js, 'hpub.cas.x', enc('v1'), { expect: { lastSubjectSequence: 0 } });
    const b = await jsPublish(nats.js, 'hpub.cas.x', enc('v2'), { expect: { lastSubjectSequence: a.seq } });
    expect(b.seq).toBeGreaterThan(a.seq);
    const stale = await rejection(
      jsPublish(nats.js, 'hpub.cas.x', enc('v3'), { expect: { lastSubjectSequence: a.seq } }),
    );
    expect(stale).toBeInstanceOf(JetStreamApiError);
    expect(isWrongLastSequence(stale)).toBe(true);
    expect(isNatsUnavailable(stale)).toBe(false);
    const exists = await rejection(
      publishEncoded(nats.js, 'hpub.cas.x', enc('v0'), { expect: { lastSubjectSequence: 0 } }),
    );
    expect(isWrongLastSequence(exists)).toBe(true);
    const stream = await rejection(jsPublish(nats.js, 'hpub.cas.y', enc('s'), { expect: { lastSequence: 1 } }));
    expect(isWrongLastSequence(stream)).toBe(true);
    expect((await nats.jsm.streams.getMessage(STREAM, { last_by_subj: 'hpub.cas.x' }))?.seq).toBe(b.seq);
  });

  it('a subject no stream captures rejects as js.publish does: JetStreamNotEnabled caused by a no-responders RequestError', async () => {
    const ours = await rejection(jsPublish(nats.js, 'nostream.here', enc('x')));
    const theirs = await rejection(nats.js.publish('nostream.here', enc('x')));
    for (const err of [ours, theirs]) {
      expect(err).toBeInstanceOf(jserrors.JetStreamNotEnabled);
      expect(err.cause).toBeInstanceOf(natsErrors.RequestError);
      expect((err.cause as InstanceType<typeof natsErrors.RequestError>).isNoResponders()).toBe(true);
      expect(isNatsUnavailable(err)).toBe(true);
    }
    expect(ours.message).toBe(theirs.message);
    expect(replyMux(nats.nc).size).toBe(0);
  });

  it('a subject a plain subscriber takes but never answers times out (TimeoutError) within timeout + sweep', async () => {
    const silent: Subscription = nats.nc.subscribe('hpub_silent.>', { callback: () => undefined });
    await nats.nc.flush();
    try {
      const timeoutMs = 400;
      const started = Date.now();
      const p = publishEncoded(nats.js, 'hpub_silent.x', enc('x'), { timeoutMs });
      await waitFor(() => replyMux(nats.nc).size === 1, { what: 'the request pending' });
      const err = await rejection(p);
      const took = Date.now() - started;
      expect(err).toBeInstanceOf(natsErrors.TimeoutError);
      expect(isNatsUnavailable(err)).toBe(true);
      expect(took).toBeGreaterThanOrEqual(timeoutMs - 5);
      // The sweep adds at most SWEEP_MS; the rest is slack for a loaded machine.
      expect(took).toBeLessThan(timeoutMs + SWEEP_MS + 2_000);
      expect(replyMux(nats.nc).size).toBe(0);
    } finally {
      silent.unsubscribe();
    }
  });

  it('a client whose publish / direct getMessage is wrapped (a Proxy, as tests inject failures) gets its own method', async () => {
    const calls: string[] = [];
    const js = new Proxy(nats.js, {
      get(target, prop, receiver) {
        if (prop !== 'publish') return Reflect.get(target, prop, receiver) as unknown;
        return (subject: string, _payload: unknown, o?: { headers?: MsgHdrs }) => {
          calls.push(subject);
          seen = o?.headers;
          return Promise.reject(new Error('injected'));
        };
      },
    });
    let seen: MsgHdrs | undefined;
    await expect(
      publishJson(js, 'hpub.wrapped', { n: 1 }, { msgID: 'w-1', headers: { 'X-Gantry': 'wrapped' } }),
    ).rejects.toThrow('injected');
    // The wrapped method gets nats.js's own header object (its whole interface), holding what ours held.
    expect(typeof seen?.hasError).toBe('boolean');
    expect(seen?.get('X-Gantry')).toBe('wrapped');
    const direct = new Proxy(nats.jsm.direct, {
      get(target, prop, receiver) {
        if (prop !== 'getMessage') return Reflect.get(target, prop, receiver) as unknown;
        return (stream: string) => {
          calls.push(stream);
          return Promise.resolve(null);
        };
      },
    });
    const jsm = Object.assign(Object.create(nats.jsm) as typeof nats.jsm, { direct });
    await jsPublish(nats.js, 'hpub.wrapped', enc('x'));
    expect(await directGet(jsm, STREAM, { last_by_subj: 'hpub.wrapped' })).toBeNull();
    expect(calls).toEqual(['hpub.wrapped', STREAM]);
  });

  it('5,000 concurrent publishes are all acked, each once, and leave nothing pending', async () => {
    const n = 5_000;
    const acks: PubAck[] = await Promise.all(
      Array.from({ length: n }, (_, i) => jsPublish(nats.js, `hpub.many.${i % 50}`, enc(String(i)))),
    );
    expect(new Set(acks.map((a) => a.seq)).size).toBe(n);
    expect(acks.every((a) => a.stream === STREAM && a.duplicate === false)).toBe(true);
    expect(replyMux(nats.nc).size).toBe(0);
    const info = await nats.jsm.streams.info(STREAM, { subjects_filter: 'hpub.many.>' });
    expect(Object.values(info.state.subjects ?? {}).reduce((s, c) => s + c, 0)).toBe(n);
  }, 60_000);

  it('directGet by subject answers what jsm.direct.getMessage answers, and null when the subject has no message', async () => {
    const h = natsHeaders();
    h.set('X-Kind', 'direct');
    const ack = await jsPublish(nats.js, 'hpub.direct.a', enc('{"v":1}'), { headers: h });
    const ours = await directGet(nats.jsm, STREAM, { last_by_subj: 'hpub.direct.a' });
    const theirs = await nats.jsm.direct.getMessage(STREAM, { last_by_subj: 'hpub.direct.a' });
    expect(ours).not.toBeNull();
    expect(ours!.seq).toBe(ack.seq);
    expect(ours!.subject).toBe('hpub.direct.a');
    expect(new TextDecoder().decode(ours!.data)).toBe('{"v":1}');
    expect(ours!.json()).toEqual({ v: 1 });
    expect(ours!.header.get('X-Kind')).toBe('direct');
    expect(ours!.time.getTime()).toBe(theirs!.time.getTime());
    expect(ours!.seq).toBe(theirs!.seq);
    expect(await directGet(nats.jsm, STREAM, { last_by_subj: 'hpub.direct.none' })).toBeNull();
    // By sequence (a JSON body on the stream's DIRECT.GET subject).
    expect((await directGet(nats.jsm, STREAM, { seq: ack.seq }))?.subject).toBe('hpub.direct.a');
    expect(replyMux(nats.nc).size).toBe(0);
  });

  it('directGet on a stream without direct gets rejects as jsm.direct.getMessage does (same class, unavailable)', async () => {
    await jsPublish(nats.js, 'nodirect.a', enc('x'));
    // Nobody answers there (2.9.10: a timeout): a short API timeout keeps the test short.
    const jsm = await jetstreamManager(nats.nc, { timeout: 500, checkAPI: false });
    const ours = await rejection(directGet(jsm, NO_DIRECT, { last_by_subj: 'nodirect.a' }));
    const theirs = await rejection(jsm.direct.getMessage(NO_DIRECT, { last_by_subj: 'nodirect.a' }));
    expect(ours.constructor).toBe(theirs.constructor);
    expect(ours.cause?.constructor).toBe(theirs.cause?.constructor);
    for (const err of [ours, theirs]) expect(isNatsUnavailable(err)).toBe(true);
    expect(replyMux(nats.nc).size).toBe(0);
  });

  it('leaderGet answers what jsm.streams.getMessage answers (the newest revision), null for none, its errors otherwise', async () => {
    await jsPublish(nats.js, 'hpub.leader.a', enc('{"v":1}'));
    const ack = await jsPublish(nats.js, 'hpub.leader.a', enc('{"v":2,"s":"é\\u0000"}'));
    const ours = await leaderGet(nats.jsm, STREAM, { last_by_subj: 'hpub.leader.a' });
    const theirs = await nats.jsm.streams.getMessage(STREAM, { last_by_subj: 'hpub.leader.a' });
    expect(ours).not.toBeNull();
    expect(ours!.seq).toBe(ack.seq);
    expect(ours!.seq).toBe(theirs!.seq);
    expect(ours!.subject).toBe('hpub.leader.a');
    expect(Buffer.from(ours!.data).equals(Buffer.from(theirs!.data))).toBe(true);
    expect(new TextDecoder().decode(ours!.data)).toBe('{"v":2,"s":"é\\u0000"}');
    expect(ours!.time.getTime()).toBe(theirs!.time.getTime());
    expect((await leaderGet(nats.jsm, STREAM, { seq: ack.seq - 1 }))!.data).toEqual(enc('{"v":1}'));
    expect(await leaderGet(nats.jsm, STREAM, { last_by_subj: 'hpub.leader.none' })).toBeNull();
    expect(await nats.jsm.streams.getMessage(STREAM, { last_by_subj: 'hpub.leader.none' })).toBeNull();
    // A stream that does not exist: the same class as the client's (StreamNotFoundError), not "no message".
    const missing = await rejection(leaderGet(nats.jsm, 'HPUB_MISSING', { last_by_subj: 'x.y' }));
    const theirMissing = await rejection(nats.jsm.streams.getMessage('HPUB_MISSING', { last_by_subj: 'x.y' }));
    expect(missing).toBeInstanceOf(JetStreamApiError);
    expect(missing.constructor).toBe(theirMissing.constructor);
    expect(replyMux(nats.nc).size).toBe(0);
  });
});

describe('confirmed acks over the reply mux (JetStreamContext.ackAck, real nats-server)', () => {
  let server: NatsServer;
  let nats: NatsHandle;
  const WQ = 'ACKQ';

  beforeAll(async () => {
    server = await NatsServer.start();
    nats = await NatsHandle.connect({ servers: [server.url], name: 'ackack-test', logger });
    await nats.jsm.streams.add({
      name: WQ,
      subjects: ['ackq.>'],
      storage: StorageType.File,
      retention: RetentionPolicy.Workqueue,
    });
    await nats.jsm.consumers.add(WQ, { durable_name: 'w', ack_policy: AckPolicy.Explicit, ack_wait: 30_000_000_000 });
  }, 60_000);

  afterAll(async () => {
    await nats?.drain();
    await server?.dispose();
  });

  it('resolves once the broker recorded the ack (the work-queue message is gone), with no request left pending, and settles once', async () => {
    for (let i = 0; i < 20; i++) await publishJson(nats.js, `ackq.${i}`, { i });
    const consumer = await nats.js.consumers.get(WQ, 'w');
    const msgs = await consumer.fetch({ max_messages: 20, expires: 5_000 });
    const contexts: JetStreamContext[] = [];
    for await (const m of msgs) {
      contexts.push(new JetStreamContext(m, 'w', nats.nc));
      if (contexts.length === 20) break;
    }
    const before = replyMux(nats.nc).size;
    const acks = contexts.map((c) => c.ackAck(10_000));
    // Through the connection's reply mux (not nats.js's ackAck): each ack is a pending mux request until answered.
    expect(replyMux(nats.nc).size).toBe(before + 20);
    expect(await Promise.all(acks)).toEqual(Array(20).fill(true));
    // Confirmed: the broker has removed every acked message from the work queue by the time the acks resolved.
    expect((await nats.jsm.streams.info(WQ)).state.messages).toBe(0);
    expect((await nats.jsm.consumers.info(WQ, 'w')).num_ack_pending).toBe(0);
    expect(replyMux(nats.nc).size).toBe(before);
    // Settled once: a second ackAck or a nak changes nothing.
    expect(await contexts[0]!.ackAck()).toBe(true);
    contexts[0]!.nak();
    expect(contexts[0]!.settled).toBe('ack');
  });

  it("rejects when the broker never answers (the ack subject is not a consumer's), by its timeout", async () => {
    const nc = nats.nc;
    const reply = `ackq-none.${Date.now()}`;
    const fake = { reply, ackAck: () => Promise.resolve(false) } as unknown as JsMsg;
    const silent = nc.subscribe(reply);
    try {
      const started = Date.now();
      const err = await rejection(new JetStreamContext(fake, 'w', nc).ackAck(300));
      expect(err).toBeInstanceOf(natsErrors.TimeoutError);
      expect(Date.now() - started).toBeLessThan(300 + SWEEP_MS + 2_000);
    } finally {
      silent.unsubscribe();
    }
  });
});

describe('the reply mux when the server or the connection goes away (real nats-server)', () => {
  let server: NatsServer;

  beforeAll(async () => {
    server = await NatsServer.start();
    const setup = await NatsHandle.connect({ servers: [server.url], name: 'js-requests-setup', logger });
    await setup.jsm.streams.add({ name: STREAM, subjects: ['hpub.>'], storage: StorageType.File, allow_direct: true });
    await setup.drain();
  }, 60_000);

  afterAll(async () => {
    await server?.dispose();
  });

  it('a closed connection rejects the pending requests at once with ClosedConnectionError, and later ones too', async () => {
    const nats = await NatsHandle.connect({ servers: [server.url], name: 'js-requests-close', logger });
    const silent = nats.nc.subscribe('hpub_silent.>', { callback: () => undefined });
    await nats.nc.flush();
    const pending = Array.from({ length: 3 }, (_, i) =>
      rejection(jsPublish(nats.js, `hpub_silent.${i}`, enc('x'), { timeout: 60_000 })),
    );
    expect(replyMux(nats.nc).size).toBe(3);
    silent.unsubscribe();
    await nats.nc.close();
    // Long before the 60 s timeout.
    const errs = await within(Promise.all(pending), 10_000, 'pending requests rejected on close');
    for (const err of errs) {
      expect(err).toBeInstanceOf(natsErrors.ClosedConnectionError);
      expect(isNatsUnavailable(err)).toBe(true);
    }
    expect(replyMux(nats.nc).size).toBe(0);
    const later = await rejection(jsPublish(nats.js, 'hpub.after', enc('x')));
    expect(later).toBeInstanceOf(natsErrors.ClosedConnectionError);
  }, 30_000);

  it('a draining connection rejects new requests with DrainingConnectionError and settles the pending ones', async () => {
    const nats = await NatsHandle.connect({ servers: [server.url], name: 'js-requests-drain', logger });
    nats.nc.subscribe('hpub_silent.>', { callback: () => undefined });
    await nats.nc.flush();
    const pending = rejection(jsPublish(nats.js, 'hpub_silent.d', enc('x'), { timeout: 60_000 }));
    const drained = nats.nc.drain();
    const during = await rejection(jsPublish(nats.js, 'hpub.during', enc('x')));
    expect(during).toBeInstanceOf(natsErrors.DrainingConnectionError);
    const err = await within(pending, 10_000, 'pending request settled by the drain');
    expect(isNatsUnavailable(err)).toBe(true);
    await drained;
    expect(replyMux(nats.nc).size).toBe(0);
  }, 30_000);

  it('a server stopped mid-flight: the pending publish rejects by its timeout (not hanging); after the restart the same connection publishes again', async () => {
    const nats = await NatsHandle.connect({ servers: [server.url], name: 'js-requests-restart', logger });
    try {
      const before = await jsPublish(nats.js, 'hpub.restart', enc('before'));
      const silent = nats.nc.subscribe('hpub_silent.>', { callback: () => undefined });
      await nats.nc.flush();
      const timeout = 1_500;
      const inFlight = rejection(jsPublish(nats.js, 'hpub_silent.r', enc('x'), { timeout }));
      await server.stop();
      const err = await within(inFlight, timeout + SWEEP_MS + 5_000, 'the in-flight publish rejected');
      expect(err).toBeInstanceOf(natsErrors.TimeoutError);
      expect(isNatsUnavailable(err)).toBe(true);
      expect(replyMux(nats.nc).size).toBe(0);
      silent.unsubscribe();
      await server.restart();
      // The reply subscription is nats.js's to re-establish after the reconnect; JetStream needs a moment to recover.
      const after = await waitFor(
        async () => {
          try {
            return await jsPublish(nats.js, 'hpub.restart', enc('after'), { timeout: 1_000 });
          } catch (e) {
            if (isNatsUnavailable(e)) return undefined;
            throw e;
          }
        },
        { timeoutMs: 30_000, intervalMs: 100, what: 'a publish acked after the restart' },
      );
      expect(after.seq).toBeGreaterThan(before.seq);
      const read = await directGet(nats.jsm, STREAM, { last_by_subj: 'hpub.restart' });
      expect(read?.seq).toBe(after.seq);
      expect(read?.string()).toBe('after');
    } finally {
      await nats.drain();
    }
  }, 60_000);
});

describe('a publish the server refuses (permissions) (real nats-server)', () => {
  let server: NatsServer;
  let nats: NatsHandle;

  beforeAll(async () => {
    // A user allowed everything but publishing to hpub.denied.>; a config file of our own carries the permissions.
    const dir = mkdtempSync(join(tmpdir(), 'gantry-hpub-perm-'));
    const conf = join(dir, 'perm.conf');
    writeFileSync(
      conf,
      'authorization {\n  users = [\n    { user: "perm", password: "perm-pass", permissions: { publish: { allow: [">"], deny: ["hpub.denied.>"] }, subscribe: { allow: [">"] } } }\n  ]\n}\n',
    );
    server = await NatsServer.start({ args: ['-c', conf] });
    nats = await NatsHandle.connect({
      servers: [server.url],
      name: 'js-requests-perm',
      logger,
      auth: { NATS_USER: 'perm', NATS_PASSWORD: 'perm-pass' },
    });
    await nats.jsm.streams.add({ name: STREAM, subjects: ['hpub.>'], storage: StorageType.File });
  }, 60_000);

  afterAll(async () => {
    await nats?.drain();
    await server?.dispose();
  });

  it('rejects at once, as js.publish does: a RequestError caused by the PermissionViolationError', async () => {
    const timeout = 20_000;
    const ours = await within(
      rejection(jsPublish(nats.js, 'hpub.denied.x', enc('x'), { timeout })),
      10_000,
      'the refused publish rejected before its timeout',
    );
    const theirs = await rejection(nats.js.publish('hpub.denied.x', enc('x'), { timeout }));
    for (const err of [ours, theirs]) {
      expect(err).toBeInstanceOf(natsErrors.RequestError);
      expect(err.cause).toBeInstanceOf(natsErrors.PermissionViolationError);
    }
    expect(replyMux(nats.nc).size).toBe(0);
    // An allowed subject still works on the same connection.
    expect((await jsPublish(nats.js, 'hpub.allowed', enc('y'))).stream).toBe(STREAM);
  }, 30_000);
});

describe('the trace context of a publish when nothing is exported (id-only spans, real nats-server)', () => {
  const STREAM_T = 'HPUB_TRACE';
  const PARENT = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
  let server: NatsServer;
  let nats: NatsHandle;
  let stop: () => Promise<void>;

  beforeAll(async () => {
    // As a service that exports nothing starts its telemetry.
    stop = startTelemetry('js-requests-trace-test', {}).shutdown;
    server = await NatsServer.start();
    nats = await NatsHandle.connect({ servers: [server.url], name: 'js-requests-trace-test', logger });
    await nats.jsm.streams.add({ name: STREAM_T, subjects: ['htrace.>'], storage: StorageType.File });
  }, 60_000);
  afterAll(async () => {
    await nats?.drain();
    await server?.dispose();
    await stop?.();
  });

  const stored = async (seq: number) => (await nats.jsm.streams.getMessage(STREAM_T, { seq }))!.header;
  const parts = (tp: string) => tp.split('-');

  it("writes a child of a stored traceparent after the caller's headers: the parent's trace, a span id of its own", async () => {
    expect(spansRecorded()).toBe(false);
    const a = await publishJson(
      nats.js,
      'htrace.a',
      { n: 1 },
      { headers: { 'X-One': '1' }, parentTrace: { traceparent: PARENT } },
    );
    const h = await stored(a.seq);
    expect(h.keys()).toEqual(['X-One', 'traceparent']);
    const [v, traceId, spanId, flags] = parts(h.get('traceparent'));
    expect([v, traceId, flags]).toEqual(['00', '0af7651916cd43dd8448eb211c80319c', '01']);
    expect(spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(spanId).not.toBe('b7ad6b7169203331');
  });

  it('takes the active span as the parent when given none, and starts a new trace when there is none', async () => {
    const active = tracer().startSpan('handler', {}, contextFromTraceparent(PARENT));
    const a = await context.with(trace.setSpan(ROOT_CONTEXT, active), () => publishJson(nats.js, 'htrace.b', { n: 2 }));
    expect(parts((await stored(a.seq)).get('traceparent'))[1]).toBe('0af7651916cd43dd8448eb211c80319c');
    const b = await publishJson(nats.js, 'htrace.c', { n: 3 });
    const root = parts((await stored(b.seq)).get('traceparent'));
    expect(root[1]).toMatch(/^[0-9a-f]{32}$/);
    expect(root[1]).not.toBe('0af7651916cd43dd8448eb211c80319c');
  });

  it('keeps a stored trace state (through the propagator, which parses it)', async () => {
    const a = await publishJson(
      nats.js,
      'htrace.d',
      { n: 4 },
      { parentTrace: { traceparent: PARENT, tracestate: 'vendor=a' } },
    );
    const h = await stored(a.seq);
    expect(parts(h.get('traceparent'))[1]).toBe('0af7651916cd43dd8448eb211c80319c');
    expect(h.get('tracestate')).toBe('vendor=a');
  });
});
