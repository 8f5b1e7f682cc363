/**
 * Which addresses a URL supplied by a client may reach. Unless ALLOW_PRIVATE_URLS is set, callback, input and upload
 * URLs must resolve to public addresses only: no loopback, private (RFC 1918, ULA), link-local, CGNAT, multicast,
 * unspecified, or cloud metadata addresses. Checked at submit and again at connect time (DNS rebinding).
 */
import { BlockList, isIP } from 'node:net';

const V4_BLOCKS: [string, number][] = [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.88.99.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
];

const V6_BLOCKS: [string, number][] = [
  // Unspecified, loopback and the deprecated IPv4-compatible range (::a.b.c.d).
  ['::', 96],
  // NAT64 (well-known and local-use): they reach IPv4 addresses through a translator.
  ['64:ff9b::', 96],
  ['64:ff9b:1::', 48],
  ['100::', 64],
  // Teredo and 6to4 embed IPv4 addresses.
  ['2001::', 32],
  ['2001:db8::', 32],
  ['2002::', 16],
  ['fc00::', 7],
  ['fe80::', 10],
  ['fec0::', 10],
  ['ff00::', 8],
];

// Node's BlockList compares numerically, so every spelling of an address matches (`0:0:0:0:0:0:0:1`, `::1`), and
// IPv4-mapped IPv6 addresses (`::ffff:7f00:1`, the form URL parsing gives `[::ffff:127.0.0.1]`) are checked against
// the IPv4 rules. A hand-written string comparison missed both.
const BLOCKED = new BlockList();
for (const [base, bits] of V4_BLOCKS) BLOCKED.addSubnet(base, bits, 'ipv4');
for (const [base, bits] of V6_BLOCKS) BLOCKED.addSubnet(base, bits, 'ipv6');

/** True for any address a client-supplied URL must not reach (anything that is not an IP address included). */
export function isPrivateAddress(address: string): boolean {
  const kind = isIP(address);
  if (kind === 4) return BLOCKED.check(address, 'ipv4');
  if (kind !== 6) return true;
  return BLOCKED.check(address, 'ipv6');
}

/** Hosts that are never allowed to be contacted on behalf of a client, whatever they resolve to. */
export function isMetadataHost(host: string): boolean {
  const h = host.toLowerCase().replace(/\.$/, '');
  return (
    h === 'metadata.google.internal' ||
    h === 'metadata' ||
    h === 'instance-data' ||
    h === '169.254.169.254' ||
    h === 'fd00:ec2::254'
  );
}
