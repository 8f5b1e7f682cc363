import { endpointHash, endpointKey, retryAfterMs } from './endpoint';

describe('endpoint', () => {
  it('isolates by origin: paths share an endpoint, hosts and ports do not', () => {
    expect(endpointKey('https://Hooks.Example.com/a?x=1')).toBe(endpointKey('https://hooks.example.com/b'));
    expect(endpointHash('https://hooks.example.com/a')).toBe(endpointHash('https://hooks.example.com/b'));
    expect(endpointHash('https://hooks.example.com/a')).not.toBe(endpointHash('https://hooks.example.com:8443/a'));
    expect(endpointHash('https://a.example/')).toMatch(/^[0-9a-f]{32}$/);
  });
  it('parses Retry-After as seconds or an HTTP date', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(retryAfterMs('120', now)).toBe(120_000);
    expect(retryAfterMs('Thu, 01 Jan 2026 00:00:30 GMT', now)).toBe(30_000);
    expect(retryAfterMs('Wed, 31 Dec 2025 00:00:00 GMT', now)).toBe(0);
    expect(retryAfterMs('soon', now)).toBeUndefined();
    expect(retryAfterMs(undefined, now)).toBeUndefined();
  });
});
