/**
 * Runtime checks for message payloads, typed by the contract interfaces they check.
 *
 * Written by hand rather than with Ajv (already a dependency, used for the job-type catalog): the checks run on every
 * message of the hot paths (the scheduler's rebuild decodes every job revision), they must be typed by the existing
 * interfaces (a JSON Schema would be a second description of each payload that could drift from them), and the error
 * must name the first bad field. {@link object} makes the compiler insist that every *required* field of the
 * interface has a check; optional fields may be checked; unknown fields pass through (newer senders may add fields).
 */

/** A payload that does not match its contract. `path` names the first bad field (`job.status`, `gpus[2].index`). */
export class PayloadError extends Error {
  override readonly name = 'PayloadError';
  readonly code = 'INVALID_PAYLOAD';
  constructor(
    readonly path: string,
    readonly expected: string,
    /** The channel or RPC whose contract it breaks. */
    readonly contract?: string,
  ) {
    super(`${contract ? `${contract}: ` : ''}${path || 'payload'}: expected ${expected}`);
  }
}

/** Checks `value` (found at `path`) and returns it typed, or throws a {@link PayloadError}. */
export type Guard<T> = (value: unknown, path: string) => T;

function fail(path: string, expected: string): never {
  throw new PayloadError(path, expected);
}

const at = (path: string, key: string | number) =>
  typeof key === 'number' ? `${path}[${key}]` : path ? `${path}.${key}` : key;

/**
 * The combinators below check each child with the path `''` and name the child only when one fails: `err` (thrown by
 * a guard given `''`) as found under `key` of `path`. Building every child's path up front (`job.status`,
 * `gpus[2].index` for every field of every message) was ~40 % of a revision's check, for strings only an error reads.
 */
function under(err: unknown, path: string, key: string | number): unknown {
  if (!(err instanceof PayloadError)) return err;
  const head = at(path, key);
  const full = err.path === '' ? head : err.path.startsWith('[') ? `${head}${err.path}` : `${head}.${err.path}`;
  return new PayloadError(full, err.expected, err.contract);
}

export const str: Guard<string> = (v, p) => (typeof v === 'string' ? v : fail(p, 'a string'));
export const num: Guard<number> = (v, p) =>
  typeof v === 'number' && Number.isFinite(v) ? v : fail(p, 'a finite number');
export const int: Guard<number> = (v, p) => (Number.isSafeInteger(v) ? (v as number) : fail(p, 'an integer'));
export const bool: Guard<boolean> = (v, p) => (typeof v === 'boolean' ? v : fail(p, 'a boolean'));
/** Any JSON value (fields whose content another layer checks, e.g. a job's `input` or `result`). */
export const anyJson: Guard<unknown> = (v) => v;

export function literal<const L extends string | number | boolean>(value: L): Guard<L> {
  return (v, p) => (v === value ? value : fail(p, JSON.stringify(value)));
}

export function oneOf<const V extends readonly string[]>(values: V): Guard<V[number]> {
  return (v, p) =>
    typeof v === 'string' && values.includes(v) ? (v as V[number]) : fail(p, `one of ${values.join(', ')}`);
}

export function optional<T>(g: Guard<T>): Guard<T | undefined> {
  return (v, p) => (v === undefined ? undefined : g(v, p));
}

export function nullable<T>(g: Guard<T>): Guard<T | null> {
  return (v, p) => (v === null ? null : g(v, p));
}

export function arrayOf<T>(g: Guard<T>): Guard<T[]> {
  return (v, p) => {
    if (!Array.isArray(v)) return fail(p, 'an array');
    let i = 0;
    try {
      for (; i < v.length; i++) g(v[i], '');
    } catch (err) {
      throw under(err, p, i);
    }
    return v as T[];
  };
}

export function recordOf<T>(g: Guard<T>): Guard<Record<string, T>> {
  return (v, p) => {
    const o = plain(v, p);
    for (const k in o) {
      if (!Object.hasOwn(o, k)) continue;
      try {
        g(o[k], '');
      } catch (err) {
        throw under(err, p, k);
      }
    }
    return o as Record<string, T>;
  };
}

/** A fixed-length array with one guard per position. */
export function tuple<const T extends readonly unknown[]>(...guards: { [K in keyof T]: Guard<T[K]> }): Guard<T> {
  return (v, p) => {
    if (!Array.isArray(v) || v.length !== guards.length) return fail(p, `an array of ${guards.length} items`);
    let i = 0;
    try {
      for (; i < guards.length; i++) (guards[i] as Guard<unknown>)(v[i], '');
    } catch (err) {
      throw under(err, p, i);
    }
    return v as unknown as T;
  };
}

function plain(v: unknown, p: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return fail(p, 'an object');
  return v as Record<string, unknown>;
}

type RequiredKeys<T> = { [K in keyof T]-?: object extends Pick<T, K> ? never : K }[keyof T];
type OptionalKeys<T> = Exclude<keyof T, RequiredKeys<T>>;

/** One guard per field: required fields must have one, optional fields may. */
export type Shape<T> = { [K in RequiredKeys<T>]-?: Guard<T[K]> } & { [K in OptionalKeys<T>]?: Guard<T[K] | undefined> };

/** An object whose listed fields pass their guards (other fields pass through unchecked). */
export function object<T>(shape: Shape<T>): Guard<T> {
  const keys = Object.keys(shape);
  const guards = keys.map((k) => (shape as Record<string, Guard<unknown>>)[k]!);
  const n = keys.length;
  return (v, p) => {
    const o = plain(v, p);
    let i = 0;
    try {
      for (; i < n; i++) guards[i]!(o[keys[i]!], '');
    } catch (err) {
      throw under(err, p, keys[i]!);
    }
    return o as T;
  };
}

/** A union told apart by a string field (`type`): the field's value picks the guard. */
export function tagged<T, const K extends string>(key: K, cases: Record<string, Guard<T>>): Guard<T> {
  return (v, p) => {
    const tag = plain(v, p)[key];
    const g = typeof tag === 'string' && Object.hasOwn(cases, tag) ? cases[tag] : undefined;
    if (!g) return fail(at(p, key), `one of ${Object.keys(cases).join(', ')}`);
    return g(v, p);
  };
}

/** Runs a guard on a whole payload (path ''). */
export function check<T>(g: Guard<T>, value: unknown): T {
  return g(value, '');
}
