/**
 * The combinators name the first bad field by its full path, built only when a check fails (guards.ts, `under`).
 * Checked against the paths a direct walk of the same shape gives, at every depth and through every combinator.
 */
import { PayloadError, arrayOf, check, int, nullable, object, optional, recordOf, str, tagged, tuple } from './guards';

interface Leaf {
  n: number;
}
interface Doc {
  name: string;
  leaf?: Leaf;
  list: Leaf[];
  pairs: [string, number][];
  byKey: Record<string, Leaf[]>;
  maybe: Leaf | null;
  kind: { type: string; n: number };
}

const leaf = object<Leaf>({ n: int });
const doc = object<Doc>({
  name: str,
  leaf: optional(leaf),
  list: arrayOf(leaf),
  pairs: arrayOf(tuple<[string, number]>(str, int)),
  byKey: recordOf(arrayOf(leaf)),
  maybe: nullable(leaf),
  kind: tagged<{ type: string; n: number }, 'type'>('type', {
    a: object<{ type: string; n: number }>({ type: str, n: int }),
  }),
});

const good = (): Doc & Record<string, unknown> => ({
  name: 'x',
  leaf: { n: 1 },
  list: [{ n: 1 }, { n: 2 }],
  pairs: [
    ['a', 1],
    ['b', 2],
  ],
  byKey: { k1: [{ n: 1 }], 'k.2': [{ n: 2 }, { n: 3 }] },
  maybe: null,
  kind: { type: 'a', n: 1 },
});

const refusal = (v: unknown, path = ''): PayloadError => {
  try {
    doc(v, path);
  } catch (err) {
    if (err instanceof PayloadError) return err;
    throw err;
  }
  throw new Error('expected a refusal');
};

describe('guards: error paths', () => {
  it('accepts a valid document and returns it as is', () => {
    const v = good();
    expect(check(doc, v)).toBe(v);
  });

  it.each([
    ['name', (d: Doc) => Object.assign(d, { name: 1 }), 'a string'],
    ['leaf.n', (d: Doc) => Object.assign(d, { leaf: { n: 'x' } }), 'an integer'],
    ['leaf', (d: Doc) => Object.assign(d, { leaf: [] }), 'an object'],
    ['list[1].n', (d: Doc) => d.list[1] && Object.assign(d.list[1], { n: 1.5 }), 'an integer'],
    ['list[0]', (d: Doc) => Object.assign(d, { list: [7] }), 'an object'],
    ['list', (d: Doc) => Object.assign(d, { list: {} }), 'an array'],
    [
      'pairs[1][0]',
      (d: Doc) =>
        Object.assign(d, {
          pairs: [
            ['a', 1],
            [2, 2],
          ],
        }),
      'a string',
    ],
    ['pairs[0]', (d: Doc) => Object.assign(d, { pairs: [['a']] }), 'an array of 2 items'],
    ['byKey.k.2[1].n', (d: Doc) => Object.assign(d, { byKey: { 'k.2': [{ n: 1 }, { n: null }] } }), 'an integer'],
    ['byKey.k1', (d: Doc) => Object.assign(d, { byKey: { k1: 'no' } }), 'an array'],
    ['maybe.n', (d: Doc) => Object.assign(d, { maybe: { n: 'x' } }), 'an integer'],
    ['kind.type', (d: Doc) => Object.assign(d, { kind: { type: 'b', n: 1 } }), 'one of a'],
    ['kind.n', (d: Doc) => Object.assign(d, { kind: { type: 'a', n: 'x' } }), 'an integer'],
  ])('%s', (path, spoil, expected) => {
    const d = good();
    spoil(d);
    const err = refusal(d);
    expect(err.path).toBe(path);
    expect(err.expected).toBe(expected);
    expect(err.message).toBe(`${path}: expected ${expected}`);
    // Under a caller's own path, as a nested guard is called.
    expect(refusal(d, 'outer').path).toBe(path.startsWith('[') ? `outer${path}` : `outer.${path}`);
    expect(refusal(d, 'outer[3]').path).toBe(`outer[3].${path}`);
  });

  it('names the first bad field in shape order and the whole value when it is not an object', () => {
    const d = Object.assign(good(), { name: 1, list: 'x' });
    expect(refusal(d).path).toBe('name');
    expect(refusal(null).path).toBe('');
    expect(refusal(null, 'p').path).toBe('p');
  });

  it('lets errors that are not payload errors through unchanged', () => {
    const boom = new TypeError('boom');
    const g = object<{ a: number }>({
      a: () => {
        throw boom;
      },
    });
    expect(() => g({ a: 1 }, 'x')).toThrow(boom);
  });
});
