import { embeddedIpv4, isMetadataAddress, isMetadataHost, isPrivateAddress } from './net-policy';

describe('isPrivateAddress', () => {
  it.each([
    '127.0.0.1',
    '10.1.2.3',
    '172.16.0.1',
    '192.168.1.1',
    '169.254.169.254',
    '100.100.100.200',
    '0.0.0.0',
    '224.0.0.1',
    '::1',
    '::',
    '0:0:0:0:0:0:0:1',
    // What `new URL('http://[::ffff:127.0.0.1]/')` gives as its hostname: an IPv4-mapped loopback in hex.
    '::ffff:7f00:1',
    '::ffff:127.0.0.1',
    // 169.254.169.254 (cloud metadata), IPv4-mapped.
    '::ffff:a9fe:a9fe',
    '::7f00:1',
    'fe80::1',
    'fe80::1%eth0',
    'fd00:ec2::254',
    'fc00::1',
    'ff02::1',
    '64:ff9b::7f00:1',
    '2002:7f00:1::1',
    'not-an-ip',
  ])('refuses %s', (a) => {
    expect(isPrivateAddress(a)).toBe(true);
  });

  it.each([
    '8.8.8.8',
    '1.1.1.1',
    '93.184.216.34',
    '2606:4700:4700::1111',
    '2a00:1450:4001:82b::200e',
    '::ffff:8.8.8.8',
  ])('allows %s', (a) => {
    expect(isPrivateAddress(a)).toBe(false);
  });
});

describe('isMetadataHost', () => {
  it('names the metadata services whatever they resolve to', () => {
    expect(isMetadataHost('metadata.google.internal.')).toBe(true);
    expect(isMetadataHost('169.254.169.254')).toBe(true);
    expect(isMetadataHost('example.com')).toBe(false);
  });
});

describe('isMetadataAddress', () => {
  it.each([
    '169.254.169.254',
    '::ffff:169.254.169.254',
    '::ffff:a9fe:a9fe',
    '0:0:0:0:0:ffff:a9fe:a9fe',
    '::169.254.169.254',
    '::ffff:0:a9fe:a9fe',
    '64:ff9b::a9fe:a9fe',
    '64:ff9b::169.254.169.254',
    '2002:a9fe:a9fe::1',
    'fd00:ec2::254',
    'FD00:EC2:0:0:0:0:0:254',
    'fd00:ec2::254%eth0',
    'fd00:ec2::23',
    '168.63.129.16',
    '::ffff:a83f:8110',
    '169.254.170.2',
    '169.254.170.23',
    '100.100.100.200',
  ])('%s is a metadata address', (a) => {
    expect(isMetadataAddress(a)).toBe(true);
    expect(isMetadataHost(a)).toBe(true);
  });

  it.each(['169.254.169.253', '127.0.0.1', '8.8.8.8', '::1', '::ffff:7f00:1', 'fd00:ec2::253', '2002:7f00:1::1', 'x'])(
    '%s is not',
    (a) => {
      expect(isMetadataAddress(a)).toBe(false);
    },
  );

  it('finds the IPv4 address an IPv6 one reaches', () => {
    expect(embeddedIpv4('::ffff:a9fe:a9fe')).toBe('169.254.169.254');
    expect(embeddedIpv4('64:ff9b::a9fe:a9fe')).toBe('169.254.169.254');
    expect(embeddedIpv4('2002:a9fe:a9fe:1::5')).toBe('169.254.169.254');
    expect(embeddedIpv4('2606:4700:4700::1111')).toBeUndefined();
  });

  it('knows the metadata host names in any case, with a trailing dot or in brackets', () => {
    expect(isMetadataHost('METADATA.GOOGLE.INTERNAL.')).toBe(true);
    expect(isMetadataHost('metadata.goog')).toBe(true);
    expect(isMetadataHost('[fd00:ec2::254]')).toBe(true);
    expect(isMetadataHost('[::ffff:a9fe:a9fe]')).toBe(true);
  });
});
