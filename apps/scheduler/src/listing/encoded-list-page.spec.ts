import fc from 'fast-check';
import { CHANNELS, JOB_STATUSES, PRIORITIES, type ListEntry, type ListPage } from '@gantry/contracts';
import { decodePayload, encodeJson } from '@gantry/jetstream';
import { EncodedListPage } from './encoded-list-page';

// Text that JSON must escape or that UTF-8 encodes in several bytes: quotes, backslashes, control characters, the
// line/paragraph separators, lone surrogates (JSON.stringify escapes them), astral characters; and ordinary ones.
const tricky = fc.constantFrom('"', '\\', '/', '\n', '\t', '\u0000', '\u001f', '\u007f', '\u2028', '\u2029', '\ud800');
const text = fc.string({
  unit: fc.oneof(tricky, fc.constantFrom('é', '漢', '😀'), fc.string({ minLength: 1, maxLength: 1 })),
});
const finite = fc.oneof(fc.integer({ min: 0, max: 4_102_444_800_000 }), fc.constantFrom(-0, 1.5));
// Also what Date.parse gives for a createdAt it cannot read, which JSON writes as null (no reader accepts that page,
// but the bytes must still be encodeJson's).
const created = fc.oneof(finite, fc.constant(Number.NaN));

function entry(seq: fc.Arbitrary<number>, at = created): fc.Arbitrary<ListEntry> {
  return fc.tuple(seq, text, fc.constantFrom(...JOB_STATUSES), text, fc.constantFrom(...PRIORITIES), at);
}

const pageOf = (at: fc.Arbitrary<number>): fc.Arbitrary<ListPage> =>
  fc
    .record({
      tenant: text,
      bucket: fc.nat(),
      prev: fc.option(fc.nat(), { nil: null }),
      entries: fc.uniqueArray(entry(fc.nat({ max: 5_000 }), at), { selector: (e) => e[0], maxLength: 60 }),
    })
    .map(({ tenant, bucket, prev, entries }) => ({
      v: 1 as const,
      tenant,
      bucket,
      prev,
      entries: entries.sort((a, b) => b[0] - a[0]),
    }));
const page = pageOf(created);

/** What the writer did before issue 16, on a plain page: the reference. */
function referenceUpsert(p: ListPage, e: ListEntry): void {
  p.entries = [...p.entries.filter((x) => x[0] !== e[0]), e].sort((a, b) => b[0] - a[0]);
}

const same = (a: Uint8Array, b: Uint8Array) => expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);

describe('EncodedListPage', () => {
  it('encodes a page to the very bytes encodeJson gives (random pages, characters JSON escapes)', () => {
    fc.assert(
      fc.property(page, (p) => {
        same(new EncodedListPage(p).encode(), encodeJson(p));
      }),
      { numRuns: 500 },
    );
  });

  it('stays byte-equal to encodeJson through random upserts and removals, and says when nothing changed', () => {
    const op = fc.oneof(
      entry(fc.nat({ max: 80 })).map((e) => ({ upsert: e })),
      fc.nat({ max: 80 }).map((seq) => ({ remove: seq })),
    );
    fc.assert(
      fc.property(page, fc.array(op, { maxLength: 80 }), (p, ops) => {
        const model: ListPage = { ...p, entries: [...p.entries] };
        const encoded = new EncodedListPage(p);
        for (const o of ops) {
          const before = JSON.stringify(model);
          if ('upsert' in o) {
            referenceUpsert(model, o.upsert);
            expect(encoded.upsert(o.upsert)).toBe(JSON.stringify(model) !== before);
          } else {
            model.entries = model.entries.filter((x) => x[0] !== o.remove);
            expect(encoded.remove(o.remove)).toBe(JSON.stringify(model) !== before);
          }
          same(encoded.encode(), encodeJson(model));
          expect(encoded.size).toBe(model.entries.length);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('writes back a page read from the stream as it was read', () => {
    fc.assert(
      fc.property(pageOf(finite), (p) => {
        const bytes = encodeJson(p);
        same(new EncodedListPage(decodePayload(CHANNELS.listPages, bytes)).encode(), bytes);
      }),
      { numRuns: 200 },
    );
  });

  it('repeating an entry it holds changes nothing (no page write for a revision the listing does not show)', () => {
    const p = new EncodedListPage({ v: 1, tenant: 't', bucket: 0, prev: null, entries: [] });
    expect(p.upsert([5, 'a"b', 'queued', 'noop', 'normal', 1])).toBe(true);
    expect(p.upsert([5, 'a"b', 'queued', 'noop', 'normal', 1])).toBe(false);
    expect(p.upsert([5, 'a"b', 'running', 'noop', 'normal', 1])).toBe(true);
    expect(p.remove(4)).toBe(false);
    expect(p.remove(5)).toBe(true);
    expect(p.size).toBe(0);
  });
});
