/**
 * DNS for the URL policy at submit time. The system lookup (`getaddrinfo`) runs on libuv's small thread pool with
 * the resolver's own timeouts, so a client sending URLs with slow-to-fail host names could stall every lookup and
 * file operation of the gateway. This resolver uses c-ares (asynchronous, off the pool) with a short timeout, and
 * remembers answers for a minute (failures for ten seconds), bounded in size. The connect-time check of the
 * services that call the URL later (`@gantry/net` policyLookup) still uses the system lookup: DNS rebinding stays
 * covered there.
 */
import { Resolver } from 'node:dns/promises';

const OK_TTL_MS = 60_000;
const FAIL_TTL_MS = 10_000;
const MAX_ENTRIES = 10_000;

interface Entry {
  at: number;
  ttl: number;
  result: Promise<string[]>;
}

export class SubmitDnsResolver {
  private readonly resolver: Resolver;
  private readonly cache = new Map<string, Entry>();

  constructor(
    timeoutMs = 1_000,
    private readonly now: () => number = Date.now,
  ) {
    this.resolver = new Resolver({ timeout: timeoutMs, tries: 2 });
  }

  /** The host's IPv4 and IPv6 addresses; rejects when it has none. */
  resolve(host: string): Promise<string[]> {
    const key = host.toLowerCase();
    const hit = this.cache.get(key);
    if (hit && this.now() - hit.at < hit.ttl) return hit.result;
    const result = this.lookup(key);
    const entry: Entry = { at: this.now(), ttl: OK_TTL_MS, result };
    result.catch(() => (entry.ttl = FAIL_TTL_MS));
    if (this.cache.size >= MAX_ENTRIES) this.cache.delete(this.cache.keys().next().value!);
    this.cache.delete(key);
    this.cache.set(key, entry);
    return result;
  }

  private async lookup(host: string): Promise<string[]> {
    const [v4, v6] = await Promise.allSettled([this.resolver.resolve4(host), this.resolver.resolve6(host)]);
    const addresses = [...(v4.status === 'fulfilled' ? v4.value : []), ...(v6.status === 'fulfilled' ? v6.value : [])];
    if (addresses.length === 0) throw new Error(`host ${host} does not resolve`);
    return addresses;
  }
}
