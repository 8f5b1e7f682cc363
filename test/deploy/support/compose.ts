/**
 * Reading docker-compose.yml as Compose does: YAML with merge keys, then variable interpolation
 * (`${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`, `${VAR:+alt}`, `$VAR`, `$$`).
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';

export class InterpolationError extends Error {
  override readonly name = 'InterpolationError';
}

const PATTERN = /\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])((?:[^}])*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g;

export function interpolate(value: string, env: Record<string, string | undefined>): string {
  return value.replace(
    PATTERN,
    (whole, braced: string | undefined, op: string | undefined, arg: string | undefined, bare: string | undefined) => {
      if (whole === '$$') return '$';
      const name = (braced ?? bare)!;
      const v = env[name];
      const unsetOrEmpty = v === undefined || v === '';
      switch (op) {
        case undefined:
          return v ?? '';
        case ':-':
          return unsetOrEmpty ? interpolate(arg ?? '', env) : v;
        case '-':
          return v === undefined ? interpolate(arg ?? '', env) : v;
        case ':?':
          if (unsetOrEmpty) throw new InterpolationError(`${name}: ${arg ?? 'required'}`);
          return v;
        case '?':
          if (v === undefined) throw new InterpolationError(`${name}: ${arg ?? 'required'}`);
          return v;
        case ':+':
          return unsetOrEmpty ? '' : interpolate(arg ?? '', env);
        case '+':
          return v === undefined ? '' : interpolate(arg ?? '', env);
        default:
          throw new InterpolationError(`unsupported operator ${op}`);
      }
    },
  );
}

function walk(node: unknown, env: Record<string, string | undefined>): unknown {
  if (typeof node === 'string') return interpolate(node, env);
  if (Array.isArray(node)) return node.map((n) => walk(n, env));
  if (node && typeof node === 'object')
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, walk(v, env)]));
  return node;
}

/** The compose file as Compose sees it after merge keys, before interpolation. */
export function readComposeRaw(file: string): Record<string, unknown> {
  return parse(readFileSync(file, 'utf8'), { merge: true }) as Record<string, unknown>;
}

/** The compose file as Compose sees it with the given environment (.env values). */
export function readCompose(file: string, env: Record<string, string | undefined>): Record<string, unknown> {
  return walk(readComposeRaw(file), env) as Record<string, unknown>;
}
