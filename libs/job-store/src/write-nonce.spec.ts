import { writeNonce } from './job-store';

describe('writeNonce', () => {
  it('gives 8 base64url characters, unique across several refills of its block', () => {
    const seen = new Set<string>();
    // 5,000 calls: the block of 1,024 is refilled four times.
    for (let i = 0; i < 5_000; i++) {
      const n = writeNonce();
      expect(n).toMatch(/^[A-Za-z0-9_-]{8}$/);
      seen.add(n);
    }
    expect(seen.size).toBe(5_000);
  });
});
