/**
 * Outbound HTTP on behalf of clients (webhooks, input downloads, presigned uploads) with the address policy enforced at
 * connect time: the DNS lookup used for the socket itself refuses private addresses, so a name that resolved to a
 * public address at submit and to 127.0.0.1 later (DNS rebinding) is still refused. Cloud metadata addresses
 * (169.254.169.254 in any IPv4/IPv6 spelling, fd00:ec2::254, 168.63.129.16, …) are refused the same way **whatever
 * ALLOW_PRIVATE_URLS says**, and a name with one of them among its answers is refused outright (no falling back to
 * another answer). A URL naming an address literally is checked before connecting (Node does not call `lookup` for
 * IP literals). Redirects are never followed. Node's own http/https are used (not fetch) because they accept a custom
 * `lookup`; the resolver behind it is a port (`HostResolver`) so tests can make a name resolve to any address.
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders, type RequestOptions } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import type { Readable } from 'node:stream';
import { isMetadataAddress, isMetadataHost, isPrivateAddress } from '@gantry/contracts';

export class BlockedAddressError extends Error {
  override readonly name = 'BlockedAddressError';
  readonly code = 'BLOCKED_ADDRESS';
}

export class HttpTimeoutError extends Error {
  override readonly name = 'HttpTimeoutError';
  readonly code = 'HTTP_TIMEOUT';
}

/** Every address a host name resolves to (`dns.lookup` with `all: true` by default). */
export type HostResolver = (hostname: string, family: number) => Promise<LookupAddress[]>;

/** The system resolver (getaddrinfo, like every other socket of the process). */
export const systemResolver: HostResolver = (hostname, family) =>
  new Promise((resolve, reject) =>
    dnsLookup(hostname, { all: true, family }, (err, addresses) => (err ? reject(err) : resolve(addresses))),
  );

/**
 * A `lookup` for sockets that refuses metadata addresses always and private addresses unless allowed: the check is
 * on the addresses the socket will connect to, not on the name.
 */
export function policyLookup(allowPrivate: boolean, resolver: HostResolver = systemResolver): LookupFunction {
  return (hostname, options, callback) => {
    const deliver = (addresses: LookupAddress[]) => {
      const list = addresses ?? [];
      if (isMetadataHost(hostname) || list.some((a) => isMetadataAddress(a.address))) {
        return callback(new BlockedAddressError(`${hostname} resolves to a cloud metadata address`), '', 4);
      }
      const ok = allowPrivate ? list : list.filter((a) => !isPrivateAddress(a.address));
      if (ok.length === 0) {
        return callback(new BlockedAddressError(`${hostname} resolves only to private or reserved addresses`), '', 4);
      }
      if ((options as { all?: boolean }).all)
        return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, ok);
      callback(null, ok[0]!.address, ok[0]!.family);
    };
    resolver(hostname, (options as { family?: number }).family ?? 0).then(deliver, (err: NodeJS.ErrnoException) =>
      callback(err, '', 4),
    );
  };
}

/**
 * Checks a URL before accepting it (submit time). Throws BlockedAddressError or a plain Error with the reason.
 * `resolve` (host → its addresses) replaces the system lookup, e.g. with a cached resolver that has a timeout.
 */
export async function assertAllowedUrl(
  raw: string,
  allowPrivate: boolean,
  protocols: readonly string[] = ['http:', 'https:'],
  resolve?: (host: string) => Promise<string[]>,
): Promise<URL> {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new Error('is not a valid URL');
  }
  if (!protocols.includes(u.protocol))
    throw new Error(`must use ${protocols.map((p) => p.replace(':', '')).join(' or ')}`);
  if (u.username || u.password) throw new Error('must not contain credentials');
  const host = u.hostname.replace(/^\[|\]$/g, '');
  if (isMetadataHost(host)) throw new BlockedAddressError('targets a cloud metadata service');
  if (allowPrivate) {
    // Private addresses are allowed, metadata ones never: a name that resolves to one is refused here already (the
    // connect-time lookup refuses it again); one that does not resolve now is left to that connect-time check.
    if (isIP(host)) return u;
    const addresses = await (
      resolve ? resolve(host) : systemResolver(host, 0).then((a) => a.map((x) => x.address))
    ).catch(() => [] as string[]);
    if (addresses.some((a) => isMetadataAddress(a)))
      throw new BlockedAddressError('resolves to a cloud metadata address');
    return u;
  }
  if (isIP(host)) {
    if (isPrivateAddress(host)) throw new BlockedAddressError('targets a private, loopback or link-local address');
    return u;
  }
  if (/^localhost$|\.localhost$|\.local$|\.internal$/i.test(host))
    throw new BlockedAddressError('targets a local host name');
  const addresses = resolve
    ? await resolve(host)
    : (
        await new Promise<LookupAddress[]>((ok, reject) =>
          dnsLookup(host, { all: true }, (err, a) =>
            err ? reject(new Error(`host ${host} does not resolve`)) : ok(a),
          ),
        )
      ).map((a) => a.address);
  if (addresses.some((a) => isPrivateAddress(a)))
    throw new BlockedAddressError('resolves to a private, loopback or link-local address');
  return u;
}

/**
 * Connection pools of our own, one per protocol and policy. With Node's global agent a kept-alive socket opened by
 * anything else in the process (or under the other policy) to the same host and port would be reused without our
 * `lookup` ever running: the address check would be skipped. A custom resolver gets no pool at all.
 */
const agents = new Map<string, HttpAgent>();
function agentFor(https: boolean, allowPrivate: boolean): HttpAgent {
  const key = `${https ? 'https' : 'http'}:${allowPrivate}`;
  let agent = agents.get(key);
  if (!agent) {
    agent = https
      ? new HttpsAgent({ keepAlive: true, timeout: 5_000 })
      : new HttpAgent({ keepAlive: true, timeout: 5_000 });
    agents.set(key, agent);
  }
  return agent;
}

export interface SafeRequest {
  method: 'GET' | 'POST' | 'PUT';
  url: string;
  headers?: Record<string, string>;
  body?: string | Buffer | Readable;
  /** Time to connect. */
  connectTimeoutMs?: number;
  /** Whole request (or, with `idleTimeoutMs`, time without any byte moving). */
  timeoutMs: number;
  idleTimeoutMs?: number;
  allowPrivate: boolean;
  /** Resolves host names for the connection (default: the system's). */
  resolver?: HostResolver;
  signal?: AbortSignal;
}

export interface SafeResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** The body stream (consume or destroy it). */
  body: Readable;
}

/** One HTTP request under the address policy, with connect and overall/idle timeouts and no redirects. */
export function safeRequest(r: SafeRequest): Promise<SafeResponse> {
  return new Promise((resolve, reject) => {
    let u: URL;
    try {
      u = new URL(r.url);
    } catch {
      reject(new Error(`invalid URL ${r.url}`));
      return;
    }
    if (isMetadataHost(u.hostname.replace(/^\[|\]$/g, ''))) {
      reject(new BlockedAddressError('cloud metadata service'));
      return;
    }
    const options: RequestOptions = {
      method: r.method,
      headers: r.headers,
      lookup: policyLookup(r.allowPrivate, r.resolver),
      agent: r.resolver ? false : agentFor(u.protocol === 'https:', r.allowPrivate),
      ...(r.signal ? { signal: r.signal } : {}),
    };
    const literal = u.hostname.replace(/^\[|\]$/g, '');
    if (isIP(literal) && !r.allowPrivate && isPrivateAddress(literal)) {
      reject(new BlockedAddressError(`${literal} is a private or reserved address`));
      return;
    }
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(u, options, (res) => {
      clearTimeout(overall);
      if (r.idleTimeoutMs) res.setTimeout(r.idleTimeoutMs, () => res.destroy(new HttpTimeoutError('response stalled')));
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res });
    });
    const overall = setTimeout(
      () => req.destroy(new HttpTimeoutError(`no response within ${r.timeoutMs} ms`)),
      r.timeoutMs,
    );
    if (r.connectTimeoutMs) {
      req.on('socket', (s) => {
        const t = setTimeout(
          () => req.destroy(new HttpTimeoutError(`no connection within ${r.connectTimeoutMs} ms`)),
          r.connectTimeoutMs,
        );
        s.once('connect', () => clearTimeout(t));
        s.once('secureConnect', () => clearTimeout(t));
        s.once('close', () => clearTimeout(t));
      });
    }
    if (r.idleTimeoutMs) req.setTimeout(r.idleTimeoutMs, () => req.destroy(new HttpTimeoutError('request stalled')));
    req.on('error', (err) => {
      clearTimeout(overall);
      reject(err);
    });
    const body = r.body;
    if (body === undefined) req.end();
    else if (typeof body === 'string' || Buffer.isBuffer(body)) req.end(body);
    else body.pipe(req);
  });
}

/** Reads a response body as text (bounded). */
export async function readText(res: SafeResponse, limitBytes = 64 * 1024): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of res.body) {
    const b = Buffer.isBuffer(c) ? c : Buffer.from(c as string);
    size += b.length;
    if (size > limitBytes) {
      res.body.destroy();
      break;
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks).toString('utf8');
}
