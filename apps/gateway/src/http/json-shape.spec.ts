import { bodyHash, canonicalJson, jsonDepth, MAX_JSON_DEPTH } from './json-shape';

describe('json shape', () => {
  it('measures depth without recursion, even very deep', () => {
    expect(jsonDepth(1)).toBe(0);
    expect(jsonDepth({})).toBe(1);
    expect(jsonDepth({ a: [1, { b: {} }] })).toBe(4);
    let deep: unknown = 0;
    for (let i = 0; i < 200_000; i++) deep = [deep];
    expect(jsonDepth(deep, MAX_JSON_DEPTH)).toBe(MAX_JSON_DEPTH + 1);
    expect(jsonDepth(deep)).toBe(200_000);
  });

  it('canonical JSON sorts keys at every level and keeps array order', () => {
    expect(canonicalJson({ b: 1, a: { d: [2, 1], c: null } })).toBe('{"a":{"c":null,"d":[2,1]},"b":1}');
    expect(bodyHash({ type: 'noop', input: { a: 1, b: 2 } })).toBe(bodyHash({ input: { b: 2, a: 1 }, type: 'noop' }));
    expect(bodyHash({ type: 'noop' })).not.toBe(bodyHash({ type: 'noop', priority: 'high' }));
    expect(bodyHash([1, 2])).not.toBe(bodyHash([2, 1]));
  });
});
