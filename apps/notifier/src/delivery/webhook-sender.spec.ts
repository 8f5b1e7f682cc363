import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { WebhookDelivery } from '@gantry/contracts';
import { freePort, WebhookReceiver } from '@gantry/testing';
import { Webhook } from 'standardwebhooks';
import { WebhookSigner } from './signer';
import { WebhookSender } from './webhook-sender';

const SECRET = 'whsec_c2VuZGVyLXNwZWMtc2VjcmV0LTAwMDAwMQ==';
const signer = new WebhookSigner(SECRET, {});

function delivery(url: string, over: Partial<WebhookDelivery> = {}): WebhookDelivery {
  return {
    v: 1,
    webhookId: 'msg_J1_1_2',
    jobId: 'J1',
    tenant: 'default',
    type: 'job.started',
    url,
    attempts: 0,
    notBefore: 0,
    body: { type: 'job.started', timestamp: new Date().toISOString(), sequence: 2, generation: 1, data: {} },
    ...over,
  };
}

describe('WebhookSender (real HTTP)', () => {
  let receiver: WebhookReceiver;
  let other: WebhookReceiver;
  const servers: Server[] = [];

  beforeAll(async () => {
    receiver = await WebhookReceiver.start();
    other = await WebhookReceiver.start();
  });
  afterAll(async () => {
    await receiver.close();
    await other.close();
    for (const s of servers) {
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
  });
  beforeEach(() => {
    receiver.received.length = 0;
    other.received.length = 0;
  });

  const sender = (timeoutMs = 2_000, allowPrivate = true) => new WebhookSender(signer, { timeoutMs, allowPrivate });

  it('POSTs the body signed with Standard Webhooks headers and the bearer token', async () => {
    const body = JSON.stringify({ hello: 'world' });
    const r = await sender().send(delivery(`${receiver.url}/hook`, { callbackToken: 'tok-1' }), body);
    expect(r).toMatchObject({ ok: true, status: 204 });
    const w = receiver.received[0]!;
    expect(w.body).toBe(body);
    expect(w.headers['content-type']).toBe('application/json');
    expect(w.headers['authorization']).toBe('Bearer tok-1');
    expect(w.headers['webhook-id']).toBe('msg_J1_1_2');
    expect(Math.abs(Number(w.headers['webhook-timestamp']) - Date.now() / 1000)).toBeLessThan(5);
    expect(() =>
      new Webhook(SECRET).verify(w.body, {
        'webhook-id': String(w.headers['webhook-id']),
        'webhook-timestamp': String(w.headers['webhook-timestamp']),
        'webhook-signature': String(w.headers['webhook-signature']),
      }),
    ).not.toThrow();
  });

  it('does not follow redirects: a 3xx is a failed attempt and the target is never contacted', async () => {
    receiver.respond({ status: 302, headers: { location: `${other.url}/stolen` } });
    const r = await sender().send(delivery(`${receiver.url}/hook`), '{}');
    expect(r).toMatchObject({ ok: false, status: 302, reason: 'http' });
    expect(r.error).toContain('not followed');
    expect(other.received).toHaveLength(0);
    receiver.respond({ status: 204 });
  });

  it('reports Retry-After of a 429/503', async () => {
    receiver.respond({ status: 429, headers: { 'retry-after': '7' } });
    const r = await sender().send(delivery(receiver.url), '{}');
    expect(r).toMatchObject({ ok: false, status: 429, retryAfterMs: 7_000 });
    receiver.respond({ status: 204 });
  });

  it('times out a hanging endpoint, and one that sends headers then stalls the body', async () => {
    receiver.respond({ status: 200, hang: true });
    const started = Date.now();
    const hung = await sender(300).send(delivery(receiver.url), '{}');
    expect(hung).toMatchObject({ ok: false, reason: 'timeout' });
    expect(Date.now() - started).toBeLessThan(2_000);
    receiver.respond({ status: 204 });

    const stall = createServer((_req, res) => {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.write('partial');
      // never ends
    });
    servers.push(stall);
    await new Promise<void>((r) => stall.listen(0, '127.0.0.1', r));
    const port = (stall.address() as AddressInfo).port;
    const t0 = Date.now();
    const r = await sender(300).send(delivery(`http://127.0.0.1:${port}/`), '{}');
    expect(r.ok).toBe(false);
    expect(Date.now() - t0).toBeLessThan(2_000);
  });

  it('reports a refused connection as a (retryable) connection failure', async () => {
    const port = await freePort();
    const r = await sender().send(delivery(`http://127.0.0.1:${port}/`), '{}');
    expect(r).toMatchObject({ ok: false, reason: 'connection' });
    expect(r.permanent).toBeUndefined();
  });

  it.each([
    ['a loopback literal', (port: string) => `http://127.0.0.1:${port}/`],
    ['a name resolving to loopback', (port: string) => `http://localhost:${port}/`],
    ['an IPv4-mapped IPv6 loopback', (port: string) => `http://[::ffff:127.0.0.1]:${port}/`],
    ['the metadata address', () => `http://169.254.169.254/latest/meta-data/`],
  ])('refuses %s unless private URLs are allowed, without contacting it', async (_what, url) => {
    const port = new URL(receiver.url).port;
    const r = await sender(2_000, false).send(delivery(url(port)), '{}');
    expect(r).toMatchObject({ ok: false, reason: 'blocked', permanent: true });
    expect(receiver.received).toHaveLength(0);
  });
});
