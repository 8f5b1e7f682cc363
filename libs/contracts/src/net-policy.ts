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

/**
 * Cloud metadata and credential endpoints: AWS IMDS (IPv4 and IPv6), the ECS task and EKS pod-identity credential
 * endpoints, GCP and OpenStack (169.254.169.254 too), Azure IMDS (169.254.169.254) and its WireServer, Alibaba,
 * Oracle (169.254.169.254). Never reachable on a client's behalf, whatever ALLOW_PRIVATE_URLS says: they hand out
 * the host's credentials.
 */
const METADATA_V4 = ['169.254.169.254', '169.254.170.2', '169.254.170.23', '168.63.129.16', '100.100.100.200'];
const METADATA_V6 = ['fd00:ec2::254', 'fd00:ec2::23'];
const METADATA = new BlockList();
for (const a of METADATA_V4) METADATA.addAddress(a, 'ipv4');
for (const a of METADATA_V6) METADATA.addAddress(a, 'ipv6');

/** The 16 bytes of an IPv6 address (zone index dropped), or undefined when it is not one. */
function ipv6Bytes(address: string): number[] | undefined {
  const a = address.replace(/%.*$/, '');
  if (isIP(a) !== 6) return undefined;
  let tail: number[] = [];
  let head = a;
  const dotted = /:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (dotted) {
    tail = dotted[1]!.split('.').map(Number);
    head = a.slice(0, dotted.index + 1) + '0:0';
  }
  const [left, right] = head.includes('::') ? head.split('::') : [head, undefined];
  const groups = (s: string | undefined) => (s ? s.split(':').filter((g) => g !== '') : []);
  const l = groups(left);
  const r = groups(right);
  const words = [...l, ...new Array<string>(8 - l.length - r.length).fill('0'), ...r].map((g) => parseInt(g, 16));
  const bytes = words.flatMap((w) => [w >> 8, w & 0xff]);
  if (dotted) bytes.splice(12, 4, ...tail);
  return bytes;
}

/**
 * The IPv4 address an IPv6 address carries and reaches it through: IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
 * (`::a.b.c.d`), SIIT (`::ffff:0:a.b.c.d`), NAT64 (`64:ff9b::/96`) and 6to4 (`2002:AABB:CCDD::/48`).
 */
export function embeddedIpv4(address: string): string | undefined {
  const b = ipv6Bytes(address);
  if (!b) return undefined;
  const zero = (from: number, to: number) => b.slice(from, to).every((x) => x === 0);
  const v4 = (at: number) => b.slice(at, at + 4).join('.');
  if (zero(0, 10) && ((b[10] === 0xff && b[11] === 0xff) || (b[10] === 0 && b[11] === 0))) return v4(12);
  if (zero(0, 8) && b[8] === 0xff && b[9] === 0xff && b[10] === 0 && b[11] === 0) return v4(12);
  if (b[0] === 0x00 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b && zero(4, 12)) return v4(12);
  if (b[0] === 0x20 && b[1] === 0x02) return v4(2);
  return undefined;
}

/** True for a cloud metadata or credential endpoint's address, in any IPv4 or IPv6 spelling. */
export function isMetadataAddress(address: string): boolean {
  const kind = isIP(address.replace(/%.*$/, ''));
  if (kind === 4) return METADATA.check(address, 'ipv4');
  if (kind !== 6) return false;
  const plain = address.replace(/%.*$/, '');
  if (METADATA.check(plain, 'ipv6')) return true;
  const v4 = embeddedIpv4(plain);
  return v4 !== undefined && METADATA.check(v4, 'ipv4');
}

/** Hosts that are never allowed to be contacted on behalf of a client, whatever they resolve to. */
export function isMetadataHost(host: string): boolean {
  const h = host
    .toLowerCase()
    .replace(/^\[|\]$/g, '')
    .replace(/\.$/, '');
  return (
    h === 'metadata.google.internal' ||
    h === 'metadata.goog' ||
    h === 'metadata' ||
    h === 'instance-data' ||
    h === 'instance-data.ec2.internal' ||
    isMetadataAddress(h)
  );
}
