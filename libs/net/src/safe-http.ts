/**
 * Outbound HTTP on behalf of clients (webhooks, input downloads, presigned uploads) with the address policy enforced at
 * connect time: the DNS lookup used for the socket itself refuses private addresses, so a name that resolved to a
 * public address at submit and to 127.0.0.1 later (DNS rebinding) is still refused. Redirects are never followed.
 * Node's own http/https are used (not fetch) because they accept a custom `lookup`.
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { request as httpRequest, type IncomingHttpHeaders, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import type { Readable } from 'node:stream';
import { isMetadataHost, isPrivateAddress } from '@gantry/contracts';

export class BlockedAddressError extends Error {
  override readonly name = 'BlockedAddressError';
  readonly code = 'BLOCKED_ADDRESS';
}

export class HttpTimeoutError extends Error {
  override readonly name = 'HttpTimeoutError';
  readonly code = 'HTTP_TIMEOUT';
}

/** A `lookup` for sockets that refuses private addresses unless allowed. */
export function policyLookup(allowPrivate: boolean): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
      if (err) return callback(err, '', 4);
      const list = addresses ?? [];
      const ok = allowPrivate ? list : list.filter((a) => !isPrivateAddress(a.address));
      if (ok.length === 0) {
        return callback(new BlockedAddressError(`${hostname} resolves only to private or reserved addresses`), '', 4);
      }
      if ((options as { all?: boolean }).all)
        return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, ok);
      callback(null, ok[0]!.address, ok[0]!.family);
    });
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
  if (allowPrivate) return u;
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
      lookup: policyLookup(r.allowPrivate),
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
