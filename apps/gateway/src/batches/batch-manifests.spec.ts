import { CHANNELS, type BatchPart, type NewJobSpec } from '@gantry/contracts';
import fc from 'fast-check';
import { noopSpec } from '@gantry/testing';
import { encodePart, encodeSpecs, splitIntoParts } from './batch-manifests';

/** The split as it was written before the specs were encoded once (the reference). */
function splitReference(specs: readonly NewJobSpec[], limit: number): NewJobSpec[][] {
  const parts: NewJobSpec[][] = [];
  let cur: NewJobSpec[] = [];
  let size = 0;
  for (const s of specs) {
    const n = Buffer.byteLength(JSON.stringify(s));
    if (n > limit) throw new Error('too large');
    if (cur.length > 0 && size + n > limit) {
      parts.push(cur);
      cur = [];
      size = 0;
    }
    cur.push(s);
    size += n;
  }
  if (cur.length > 0) parts.push(cur);
  return parts;
}

const spec = (id: string, pad = 0): NewJobSpec =>
  noopSpec(id, { tenant: 'default', metadata: pad ? { pad: 'x'.repeat(pad) } : {} });

describe('splitIntoParts', () => {
  it('packs specs in order into parts under the limit', () => {
    const specs = Array.from({ length: 50 }, (_, i) => spec(`j${i}`, 1_000));
    const parts = splitIntoParts(specs, 10_000);
    expect(parts.length).toBeGreaterThan(1);
    expect(parts.flat().map((s) => s.id)).toEqual(specs.map((s) => s.id));
    for (const p of parts) expect(Buffer.byteLength(JSON.stringify(p))).toBeLessThanOrEqual(10_000 + 100);
  });

  it('refuses a spec larger than a part', () => {
    expect(() => splitIntoParts([spec('big', 20_000)], 10_000)).toThrow(/larger than/);
  });

  it('splits exactly as before', () => {
    fc.assert(
      fc.property(
        fc.array(fc.nat(2_900), { maxLength: 60 }),
        fc.integer({ min: 3_200, max: 12_000 }),
        (pads, limit) => {
          const specs = pads.map((pad, i) => spec(`j${i}`, pad));
          expect(splitIntoParts(specs, limit)).toEqual(splitReference(specs, limit));
        },
      ),
    );
  });
});

describe('encodePart', () => {
  it('is JSON.stringify of the part, and reads back through the contract', () => {
    const specs = [spec('a'), spec('b', 10), { ...spec('c'), input: { s: 'é😀"\\\n', n: [1, null] } }];
    const part: BatchPart = { v: 1, batchId: 'B1', part: 2, specs, attempt: 'x-_y' };
    const text = encodePart('B1', 2, encodeSpecs(specs).json, 'x-_y');
    expect(text).toBe(JSON.stringify(part));
    expect(CHANNELS.batchParts.parse(JSON.parse(text))).toEqual(part);
    expect(encodePart('B1', 0, [], 'a')).toBe(
      JSON.stringify({ v: 1, batchId: 'B1', part: 0, specs: [], attempt: 'a' }),
    );
  });
});
