/**
 * Which addresses a URL supplied by a client may reach. Unless ALLOW_PRIVATE_URLS is set, callback, input and upload
 * URLs must resolve to public addresses only: no loopback, private (RFC 1918, ULA), link-local, CGNAT, multicast,
 * unspecified, or cloud metadata addresses. Checked at submit and again at connect time (DNS rebinding).
 */
import { isIP } from 'node:net';

function ipv4ToInt(ip: string): number {
  return ip.split('.').reduce((acc, o) => (acc << 8) + Number(o), 0) >>> 0;
}

const V4_BLOCKS: [string, number][] = [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
];

function inV4Block(ip: string, [base, bits]: [string, number]): boolean {
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  return (ipv4ToInt(ip) & mask) === (ipv4ToInt(base) & mask);
}

/** True for any address a client-supplied URL must not reach. */
export function isPrivateAddress(address: string): boolean {
  const kind = isIP(address);
  if (kind === 4) return V4_BLOCKS.some((b) => inV4Block(address, b));
  if (kind !== 6) return true;
  const a = address.toLowerCase();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (mapped) return isPrivateAddress(mapped[1]!);
  if (a === '::' || a === '::1') return true;
  return (
    /^(fc|fd|fe8|fe9|fea|feb|ff)/.test(a) ||
    a.startsWith('64:ff9b:') ||
    a.startsWith('2001:db8:') ||
    a.startsWith('100::')
  );
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
