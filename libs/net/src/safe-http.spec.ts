/**
 * The metadata block at connect time, with a resolver the test controls (the lookup port) and a real HTTP receiver:
 * whatever ALLOW_PRIVATE_URLS says, a name that resolves to a cloud metadata address — in any IPv4 or IPv6 form — is
 * refused before any connection, and a URL naming such an address literally too. The control requests prove the
 * receiver is reachable through the same path, so a refusal is the policy's doing.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { assertAllowedUrl, BlockedAddressError, safeRequest, type HostResolver } from './safe-http';

describe('the metadata block holds after DNS resolution (ALLOW_PRIVATE_URLS=true)', () => {
  let server: Server;
  let port: number;
  const received: { url: string; local: string }[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      received.push({ url: req.url ?? '', local: req.socket.localAddress ?? '' });
      res.writeHead(200).end('ok');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => new Promise<void>((r) => server.close(() => r())));
  beforeEach(() => {
    received.length = 0;
  });

  /** A resolver that answers `addresses` for every name, and records what it was asked. */
  function resolver(addresses: string[], asked: string[] = []): HostResolver {
    return (host) => {
      asked.push(host);
      return Promise.resolve(addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 })));
    };
  }

  const get = (url: string, resolve: HostResolver, allowPrivate = true) =>
    safeRequest({ method: 'GET', url, timeoutMs: 5_000, connectTimeoutMs: 2_000, allowPrivate, resolver: resolve });

  it('control: a name resolved to the receiver is fetched through the resolver', async () => {
    const asked: string[] = [];
    const res = await get(`http://svc.test:${port}/control`, resolver(['127.0.0.1'], asked));
    res.body.resume();
    expect(res.status).toBe(200);
    expect(asked).toEqual(['svc.test']);
    expect(received).toEqual([{ url: '/control', local: '127.0.0.1' }]);
  });

  it.each([
    ['169.254.169.254'],
    ['::ffff:169.254.169.254'],
    ['::ffff:a9fe:a9fe'],
    ['::169.254.169.254'],
    ['64:ff9b::a9fe:a9fe'],
    ['2002:a9fe:a9fe::1'],
    ['fd00:ec2::254'],
    ['168.63.129.16'],
    ['169.254.170.2'],
    ['100.100.100.200'],
  ])('refuses a name that resolves to %s, before connecting', async (address) => {
    const err = await get(`http://meta.test:${port}/latest/meta-data`, resolver([address])).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BlockedAddressError);
    expect((err as Error).message).toMatch(/metadata/);
    expect(received).toEqual([]);
  });

  it('refuses a name whose answers mix the receiver with a metadata address (no fallback to the other)', async () => {
    for (const list of [
      ['127.0.0.1', '169.254.169.254'],
      ['169.254.169.254', '127.0.0.1'],
      ['127.0.0.1', '::ffff:a9fe:a9fe'],
    ]) {
      const err = await get(`http://mixed.test:${port}/x`, resolver(list)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BlockedAddressError);
    }
    expect(received).toEqual([]);
  });

  it.each([
    'http://169.254.169.254/latest/meta-data',
    'http://[::ffff:169.254.169.254]/',
    'http://[::ffff:a9fe:a9fe]/',
    'http://[fd00:ec2::254]/',
    'http://[64:ff9b::a9fe:a9fe]/',
    'http://168.63.129.16/',
    'http://2852039166/',
    'http://0xa9.0xfe.0xa9.0xfe/',
    'http://metadata.google.internal/computeMetadata/v1/',
    'http://METADATA.GOOGLE.INTERNAL./',
  ])('refuses the literal %s, at submit and at connect time', async (url) => {
    const asked: string[] = [];
    await expect(get(url, resolver(['127.0.0.1'], asked))).rejects.toBeInstanceOf(BlockedAddressError);
    await expect(assertAllowedUrl(url, true)).rejects.toBeInstanceOf(BlockedAddressError);
    expect(asked).toEqual([]);
  });

  it('at submit, refuses a name that resolves to a metadata address even with private URLs allowed', async () => {
    const resolve = (addresses: string[]) => () => Promise.resolve(addresses);
    await expect(
      assertAllowedUrl('http://meta.test/', true, ['http:', 'https:'], resolve(['169.254.169.254'])),
    ).rejects.toBeInstanceOf(BlockedAddressError);
    await expect(
      assertAllowedUrl('http://meta.test/', true, ['http:', 'https:'], resolve(['::ffff:a9fe:a9fe'])),
    ).rejects.toBeInstanceOf(BlockedAddressError);
    await expect(
      assertAllowedUrl('http://ok.test/', true, ['http:', 'https:'], resolve(['10.0.0.1'])),
    ).resolves.toBeInstanceOf(URL);
    // A name that does not resolve is left to the connect-time check when private URLs are allowed.
    const fails = () => Promise.reject(new Error('NXDOMAIN'));
    await expect(assertAllowedUrl('http://gone.test/', true, ['http:', 'https:'], fails)).resolves.toBeInstanceOf(URL);
  });

  it('without ALLOW_PRIVATE_URLS the same names are refused, and private ones too', async () => {
    await expect(get(`http://meta.test:${port}/`, resolver(['::ffff:a9fe:a9fe']), false)).rejects.toBeInstanceOf(
      BlockedAddressError,
    );
    await expect(get(`http://svc.test:${port}/`, resolver(['127.0.0.1']), false)).rejects.toBeInstanceOf(
      BlockedAddressError,
    );
    expect(received).toEqual([]);
  });
});
