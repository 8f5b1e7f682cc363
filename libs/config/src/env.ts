/**
 * Environment validation: each service declares a spec, `loadConfig` reads `process.env` once at boot and either
 * returns a frozen, typed object or throws a {@link ConfigError} that lists every bad variable (not just the first).
 */

export interface VariableSpec<T> {
  /** Parses a raw value (undefined when unset); throws an Error whose message says what is wrong. */
  parse(raw: string | undefined): T;
  /** Other names accepted for the same variable (first one set wins after the main name). */
  aliases?: readonly string[];
  /** Redacted by {@link redactConfig}. */
  secret?: boolean;
  /** One line for docs and `--help`. */
  doc: string;
}

export type Spec = Record<string, VariableSpec<unknown>>;
export type ConfigOf<S extends Spec> = { readonly [K in keyof S]: S[K] extends VariableSpec<infer T> ? T : never };

export interface ConfigProblem {
  variable: string;
  value: string | undefined;
  message: string;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code = 'CONFIG_INVALID';
  constructor(readonly problems: readonly ConfigProblem[]) {
    super(
      `invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n` +
        problems
          .map((p) => `  ${p.variable}=${p.value === undefined ? '(unset)' : JSON.stringify(p.value)}: ${p.message}`)
          .join('\n'),
    );
  }
}

export type Refinement<S extends Spec> = (config: ConfigOf<S>, env: NodeJS.ProcessEnv) => ConfigProblem[];

export function loadConfig<S extends Spec>(
  spec: S,
  env: NodeJS.ProcessEnv = process.env,
  refinements: readonly Refinement<S>[] = [],
): ConfigOf<S> {
  const problems: ConfigProblem[] = [];
  const out: Record<string, unknown> = {};
  for (const [name, v] of Object.entries(spec)) {
    const names = [name, ...(v.aliases ?? [])];
    const setName = names.find((n) => env[n] !== undefined && env[n] !== '');
    const raw = setName ? env[setName] : undefined;
    try {
      out[name] = v.parse(raw);
    } catch (err) {
      problems.push({
        variable: setName ?? name,
        value: v.secret && raw ? '***' : raw,
        message: (err as Error).message,
      });
    }
  }
  if (problems.length === 0) {
    for (const r of refinements) problems.push(...r(out as ConfigOf<S>, env));
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(out) as ConfigOf<S>;
}

/** The effective configuration with secrets replaced, for `GET /v1/config` and boot logs. */
export function redactConfig<S extends Spec>(spec: S, config: ConfigOf<S>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, v] of Object.entries(spec)) {
    const value = (config as Record<string, unknown>)[name];
    out[name] = v.secret && value !== undefined && value !== '' ? '[redacted]' : value;
  }
  return out;
}

// ---- parsers -------------------------------------------------------------------------------------------------

interface Common<T> {
  default?: T;
  aliases?: readonly string[];
  secret?: boolean;
  doc: string;
}

function required<T>(raw: string | undefined, def: T | undefined, parse: (s: string) => T): T {
  if (raw === undefined || raw === '') {
    if (def === undefined) throw new Error('is required');
    return def;
  }
  return parse(raw.trim());
}

export function str(o: Common<string> & { pattern?: RegExp; oneOf?: readonly string[] }): VariableSpec<string> {
  return {
    ...o,
    parse: (raw) =>
      required(raw, o.default, (s) => {
        if (o.pattern && !o.pattern.test(s)) throw new Error(`must match ${String(o.pattern)}`);
        if (o.oneOf && !o.oneOf.includes(s)) throw new Error(`must be one of ${o.oneOf.join(', ')}`);
        return s;
      }),
  };
}

export function optionalStr(o: Omit<Common<string>, 'default'>): VariableSpec<string | undefined> {
  return { ...o, parse: (raw) => (raw === undefined || raw.trim() === '' ? undefined : raw.trim()) };
}

export function oneOf<const T extends string>(values: readonly T[], o: Common<T>): VariableSpec<T> {
  return {
    ...o,
    parse: (raw) =>
      required(raw, o.default, (s) => {
        if (!(values as readonly string[]).includes(s)) throw new Error(`must be one of ${values.join(', ')}`);
        return s as T;
      }),
  };
}

function toInt(s: string, min: number, max: number): number {
  if (!/^-?\d+$/.test(s)) throw new Error('must be an integer');
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new Error(`must be an integer from ${min} to ${max}`);
  return n;
}

export function int(o: Common<number> & { min?: number; max?: number }): VariableSpec<number> {
  const min = o.min ?? Number.MIN_SAFE_INTEGER;
  const max = o.max ?? Number.MAX_SAFE_INTEGER;
  return { ...o, parse: (raw) => required(raw, o.default, (s) => toInt(s, min, max)) };
}

export function optionalInt(
  o: Omit<Common<number>, 'default'> & { min?: number; max?: number },
): VariableSpec<number | undefined> {
  const min = o.min ?? Number.MIN_SAFE_INTEGER;
  const max = o.max ?? Number.MAX_SAFE_INTEGER;
  return { ...o, parse: (raw) => (raw === undefined || raw.trim() === '' ? undefined : toInt(raw.trim(), min, max)) };
}

export function port(o: Common<number> & { allowZero?: boolean }): VariableSpec<number> {
  return int({ ...o, min: o.allowZero ? 0 : 1, max: 65535 });
}

export function bool(o: Common<boolean>): VariableSpec<boolean> {
  return {
    ...o,
    parse: (raw) =>
      required(raw, o.default, (s) => {
        if (/^(true|1|yes|on)$/i.test(s)) return true;
        if (/^(false|0|no|off)$/i.test(s)) return false;
        throw new Error('must be true or false');
      }),
  };
}

export function intList(
  o: Common<number[]> & { min?: number; max?: number; minItems?: number },
): VariableSpec<number[]> {
  return {
    ...o,
    parse: (raw) =>
      required(raw, o.default, (s) => {
        const items = s.split(',').map((x) => x.trim());
        if (items.some((x) => x === '')) throw new Error('must be a comma-separated list of integers');
        const out = items.map((x) => toInt(x, o.min ?? 0, o.max ?? Number.MAX_SAFE_INTEGER));
        if (out.length < (o.minItems ?? 1)) throw new Error(`must list at least ${o.minItems ?? 1} value(s)`);
        return out;
      }),
  };
}

export function url(o: Common<string> & { protocols?: readonly string[] }): VariableSpec<string> {
  return {
    ...o,
    parse: (raw) =>
      required(raw, o.default, (s) => {
        let u: URL;
        try {
          u = new URL(s);
        } catch {
          throw new Error('must be a URL');
        }
        if (o.protocols && !o.protocols.includes(u.protocol.replace(/:$/, ''))) {
          throw new Error(`must use ${o.protocols.join(' or ')}`);
        }
        return s;
      }),
  };
}

export function optionalUrl(
  o: Omit<Common<string>, 'default'> & { protocols?: readonly string[] },
): VariableSpec<string | undefined> {
  const inner = url(o);
  return { ...o, parse: (raw) => (raw === undefined || raw.trim() === '' ? undefined : inner.parse(raw)) };
}

/** A list of NATS server URLs, comma-separated. */
export function natsServers(o: Common<string[]>): VariableSpec<string[]> {
  return {
    ...o,
    parse: (raw) =>
      required(raw, o.default, (s) => {
        const list = s
          .split(',')
          .map((x) => x.trim())
          .filter(Boolean);
        if (list.length === 0) throw new Error('must name at least one server');
        for (const item of list) {
          const withScheme = /^[a-z]+:\/\//.test(item) ? item : `nats://${item}`;
          let u: URL;
          try {
            u = new URL(withScheme);
          } catch {
            throw new Error(`"${item}" is not a server URL`);
          }
          if (!['nats:', 'tls:', 'ws:', 'wss:'].includes(u.protocol))
            throw new Error(`"${item}" must use nats:// or tls://`);
        }
        return list;
      }),
  };
}
