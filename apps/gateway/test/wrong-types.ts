/**
 * The JSON type of every field of a job request, with values of the right type and of every wrong one (an array
 * for an object, an object for an array, a number as a string, null, a boolean…). Shared by the example tests
 * (jobs, batches) and the property-based fuzzing, whose oracle is this table rather than the validator under test.
 */
import fc from 'fast-check';
import { PRIORITIES } from '@gantry/contracts';

export type Kind = 'string' | 'integer' | 'boolean' | 'object';

export interface FieldSpec {
  /** Path in the job request (`['gpu', 'count']`). */
  path: readonly string[];
  kind: Kind;
  /** Values of the right type that the gateway accepts in a job that is otherwise valid. */
  valid: fc.Arbitrary<unknown>;
}

/**
 * Every field of a job request (and the noop type's input) that a client can get wrong. URL fields are valid only with
 * a host that resolves, which the tests cannot rely on: their valid value is "absent" (they still get wrong types).
 */
export const JOB_FIELDS: readonly FieldSpec[] = [
  { path: ['type'], kind: 'string', valid: fc.constant('noop') },
  { path: ['input'], kind: 'object', valid: fc.constant({}) },
  { path: ['input', 'durationMs'], kind: 'integer', valid: fc.integer({ min: 0, max: 1000 }) },
  { path: ['input', 'progressSteps'], kind: 'integer', valid: fc.integer({ min: 0, max: 10 }) },
  { path: ['input', 'failTimes'], kind: 'integer', valid: fc.integer({ min: 0, max: 3 }) },
  { path: ['input', 'retryable'], kind: 'boolean', valid: fc.boolean() },
  { path: ['priority'], kind: 'string', valid: fc.constantFrom(...PRIORITIES) },
  { path: ['pool'], kind: 'string', valid: fc.constantFrom('default', 'gpu-a') },
  { path: ['callbackUrl'], kind: 'string', valid: fc.constant(undefined) },
  { path: ['callbackToken'], kind: 'string', valid: fc.constantFrom('tok', 'a.b-c_d~1') },
  { path: ['timeoutSeconds'], kind: 'integer', valid: fc.integer({ min: 1, max: 604_800 }) },
  { path: ['maxAttempts'], kind: 'integer', valid: fc.integer({ min: 1, max: 100 }) },
  { path: ['gpu'], kind: 'object', valid: fc.constant({ count: 0 }) },
  { path: ['gpu', 'count'], kind: 'integer', valid: fc.constant(0) },
  { path: ['gpu', 'memoryMb'], kind: 'integer', valid: fc.integer({ min: 0, max: 1000 }) },
  { path: ['upload'], kind: 'object', valid: fc.constant(undefined) },
  { path: ['upload', 'url'], kind: 'string', valid: fc.constant(undefined) },
  // Delayed jobs (v1.1): one of the two at most, so the valid runAt is "absent" and delaySeconds 0 (queued at once).
  { path: ['runAt'], kind: 'string', valid: fc.constant(undefined) },
  { path: ['delaySeconds'], kind: 'integer', valid: fc.constantFrom(undefined, 0) },
  {
    path: ['metadata'],
    kind: 'object',
    valid: fc.dictionary(fc.string({ maxLength: 8 }), fc.integer(), { maxKeys: 3 }),
  },
];

/** Flat JSON values (no generated keys: a `__proto__` key is refused by the parser before validation, as it should be). */
const smallJson = fc.oneof(fc.integer(), fc.string({ maxLength: 5 }), fc.boolean(), fc.constant(null));

/** Values of any JSON type but `kind` (null always among them). */
export function wrongType(kind: Kind): fc.Arbitrary<unknown> {
  const strings = fc.oneof(fc.string({ maxLength: 10 }), fc.integer().map(String), fc.constantFrom('true', '{}', '[]'));
  const integers = fc.oneof(fc.integer(), fc.constantFrom(0, 1, -1));
  const arrays = fc.oneof(fc.constant([]), fc.array(smallJson, { minLength: 1, maxLength: 3 }));
  const objects = fc.oneof(
    fc.constant({}),
    fc.dictionary(fc.constantFrom('a', 'count', 'url', 'x1'), smallJson, { maxKeys: 3 }),
  );
  const nulls = fc.constant(null);
  const booleans = fc.boolean();
  switch (kind) {
    case 'string':
      return fc.oneof(
        integers,
        fc.double({ noNaN: true }),
        booleans,
        nulls,
        arrays,
        objects,
        fc.array(strings, { minLength: 1, maxLength: 2 }),
      );
    case 'integer':
      return fc.oneof(strings, booleans, nulls, arrays, objects, fc.array(integers, { minLength: 1, maxLength: 2 }));
    case 'boolean':
      return fc.oneof(strings, integers, nulls, arrays, objects, fc.array(booleans, { minLength: 1, maxLength: 2 }));
    case 'object':
      // An array of valid-looking objects is the case that slipped through (`"gpu": [{"count": 1}]`).
      return fc.oneof(
        strings,
        integers,
        booleans,
        nulls,
        arrays,
        fc.constantFrom([{ count: 1 }], [{ url: 'https://example.com/put' }], [{}]),
      );
  }
}

/** A few fixed wrong values of each kind, for example tests (every JSON type but the right one). */
export const WRONG_VALUES: Record<Kind, readonly unknown[]> = {
  string: [42, 1.5, true, null, [], ['noop'], {}, { a: 'b' }],
  integer: ['5', '1', '', true, false, null, [], [5], {}, { n: 5 }],
  boolean: ['true', 'false', 1, 0, null, [], [true], {}],
  object: [[], [{ count: 1 }], [{ url: 'https://example.com/put' }], 'x', '{}', 1, true, null],
};

/** `job` with `value` at `path` (parents created as needed, the job left untouched). */
export function setPath(
  job: Record<string, unknown>,
  path: readonly string[],
  value: unknown,
): Record<string, unknown> {
  const out = structuredClone(job);
  let at: Record<string, unknown> = out;
  for (const key of path.slice(0, -1)) {
    const next = at[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) at[key] = {};
    at = at[key] as Record<string, unknown>;
  }
  at[path[path.length - 1]!] = value;
  return out;
}

/** The field name the API reports for `path` (`gpu.count`), with a prefix such as `jobs[3].`. */
export function fieldName(path: readonly string[], prefix = ''): string {
  return `${prefix}${path.join('.')}`;
}

/** True when `reported` is `field` itself or something inside it (`gpu`, `gpu.count`, `gpu[0]`). */
export function isAbout(reported: string, field: string): boolean {
  return reported === field || reported.startsWith(`${field}.`) || reported.startsWith(`${field}[`);
}

/** A valid job request built from every field's valid values (absent ones dropped). */
export const validJob: fc.Arbitrary<Record<string, unknown>> = fc
  .tuple(...JOB_FIELDS.map((f) => f.valid))
  .map((values) => {
    let job: Record<string, unknown> = {};
    JOB_FIELDS.forEach((f, i) => {
      if (values[i] !== undefined) job = setPath(job, f.path, values[i]);
    });
    return job;
  });

export interface Mutated {
  job: Record<string, unknown>;
  /** The fields given a wrong type (none inside another one). */
  fields: string[];
}

/** A valid job with one to three fields given a value of a wrong type. */
export const jobWithWrongTypes: fc.Arbitrary<Mutated> = fc
  .tuple(
    validJob,
    fc
      .uniqueArray(fc.nat(JOB_FIELDS.length - 1), { minLength: 1, maxLength: 3 })
      .chain((idx) => fc.tuple(...idx.map((i) => wrongType(JOB_FIELDS[i]!.kind).map((v) => [i, v] as const)))),
  )
  .map(([base, changes]) => {
    // A field inside another mutated one would be overwritten or hidden by it: keep the outermost.
    const paths = changes.map(([i]) => JOB_FIELDS[i]!.path);
    const kept = changes.filter(([i]) => {
      const p = fieldName(JOB_FIELDS[i]!.path);
      return !paths.some((q) => fieldName(q) !== p && isAbout(p, fieldName(q)));
    });
    let job = base;
    for (const [i, v] of kept) job = setPath(job, JOB_FIELDS[i]!.path, v);
    const fields = kept.map(([i]) => fieldName(JOB_FIELDS[i]!.path));
    // The input is checked against its type's schema: with no valid type there is no schema to report against.
    return { job, fields: fields.includes('type') ? fields.filter((f) => !f.startsWith('input.')) : fields };
  });
