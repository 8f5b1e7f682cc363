/**
 * Operator-defined job types (`JOB_TYPES_FILE`, JSON or YAML). An operator writes the argv template; clients only fill
 * parameters, which are validated against the type's JSON Schema and substituted one argv element each (no shell).
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { parse as parseYaml } from 'yaml';
import type { GpuRequest } from '../job';
import { normalizeS3Url } from '../s3-input';
import { isUrlInput } from './ffmpeg';
import { SAFE_FILE_NAME, type FieldError, type JobTypeDefinition } from './job-type';
import { isParentOutputUrl } from './parent-output';

export interface CatalogEntry {
  name: string;
  description?: string;
  /** argv template: literals with `{{input.<path>}}`, `{{catalogDir}}`, `{{jobId}}`, `{{attempt}}` placeholders. */
  command: string[];
  /** JSON Schema (draft 2020-12 subset that Ajv supports) for the client's `input`. */
  inputSchema: Record<string, unknown>;
  /** Files to download into the scratch directory before the run: file name → template that yields a URL. */
  downloads?: Record<string, string>;
  /** Files the program writes into its working directory; each is uploaded. */
  outputs?: string[];
  gpu?: GpuRequest;
  timeoutSeconds?: number;
  /** Static environment for the process (never from the client). */
  env?: Record<string, string>;
  /**
   * Exit codes that mean "this input can never succeed" (the job fails at once, `EXIT_CODE`, not retried). Any other
   * non-zero code is retryable.
   */
  permanentExitCodes?: number[];
  /**
   * Whether the job process keeps the host's network inside its sandbox (the operator's decision; default false: an
   * empty network namespace, the worker downloads and uploads).
   */
  network?: boolean;
}

export interface CatalogFile {
  version: 1;
  types: CatalogEntry[];
}

const TEMPLATE = /\{\{\s*([A-Za-z0-9_.]+)\s*\}\}/g;

const catalogSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['version', 'types'],
  properties: {
    version: { const: 1 },
    types: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'command', 'inputSchema'],
        properties: {
          name: { type: 'string', pattern: '^[a-z][a-z0-9-]{0,62}$' },
          description: { type: 'string' },
          command: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } },
          inputSchema: { type: 'object' },
          downloads: { type: 'object', additionalProperties: { type: 'string' } },
          outputs: { type: 'array', items: { type: 'string', pattern: SAFE_FILE_NAME.source } },
          gpu: {
            type: 'object',
            additionalProperties: false,
            required: ['count'],
            properties: {
              count: { type: 'integer', minimum: 0, maximum: 16 },
              memoryMb: { type: 'integer', minimum: 0 },
            },
          },
          timeoutSeconds: { type: 'integer', minimum: 1, maximum: 604800 },
          env: { type: 'object', additionalProperties: { type: 'string' } },
          permanentExitCodes: { type: 'array', items: { type: 'integer', minimum: 1, maximum: 255 } },
          network: { type: 'boolean' },
        },
      },
    },
  },
} as const;

export class CatalogError extends Error {
  override readonly name = 'CatalogError';
  readonly code = 'CATALOG_INVALID';
}

function ajvErrors(errors: ErrorObject[] | null | undefined, prefix: string): FieldError[] {
  return (errors ?? []).map((e) => {
    const path = e.instancePath.replace(/^\//, '').replace(/\//g, '.');
    const missing = e.keyword === 'required' ? `.${String(e.params['missingProperty'])}` : '';
    const extra = e.keyword === 'additionalProperties' ? `.${String(e.params['additionalProperty'])}` : '';
    return {
      field: `${prefix}${path ? `.${path}` : ''}${missing}${extra}`,
      message: e.keyword === 'additionalProperties' ? 'is not a known field' : (e.message ?? 'is invalid'),
    };
  });
}

function lookup(input: unknown, path: string): unknown {
  let cur: unknown = input;
  for (const part of path.split('.')) {
    if (typeof cur !== 'object' || cur === null) return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

export interface RenderContext {
  input: unknown;
  catalogDir: string;
  jobId: string;
  attempt: number;
}

/** Substitutes placeholders in one template element; values must be scalars. */
export function renderTemplate(template: string, ctx: RenderContext): string {
  return template.replace(TEMPLATE, (_m, key: string) => {
    let v: unknown;
    if (key === 'catalogDir') v = ctx.catalogDir;
    else if (key === 'jobId') v = ctx.jobId;
    else if (key === 'attempt') v = ctx.attempt;
    else if (key.startsWith('input.')) v = lookup(ctx.input, key.slice('input.'.length));
    else throw new CatalogError(`unknown placeholder {{${key}}}`);
    if (v === undefined || v === null) return '';
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return String(v);
    throw new CatalogError(`placeholder {{${key}}} is not a scalar`);
  });
}

export interface CatalogJobType extends JobTypeDefinition {
  readonly kind: 'catalog';
  readonly entry: CatalogEntry;
  readonly catalogDir: string;
}

function makeType(entry: CatalogEntry, catalogDir: string, ajv: Ajv): CatalogJobType {
  let check: ValidateFunction;
  try {
    check = ajv.compile(entry.inputSchema);
  } catch (err) {
    throw new CatalogError(`job type ${entry.name}: inputSchema is not a valid JSON Schema: ${(err as Error).message}`);
  }
  for (const part of [...entry.command, ...Object.values(entry.downloads ?? {})]) {
    for (const m of part.matchAll(TEMPLATE)) {
      const key = m[1] ?? '';
      if (!['catalogDir', 'jobId', 'attempt'].includes(key) && !key.startsWith('input.')) {
        throw new CatalogError(`job type ${entry.name}: unknown placeholder {{${key}}}`);
      }
    }
  }
  for (const name of Object.keys(entry.downloads ?? {})) {
    if (!SAFE_FILE_NAME.test(name))
      throw new CatalogError(`job type ${entry.name}: download name "${name}" is not safe`);
  }
  return {
    name: entry.name,
    kind: 'catalog',
    entry,
    catalogDir,
    ...(entry.gpu ? { defaultGpu: { count: entry.gpu.count, memoryMb: entry.gpu.memoryMb ?? 0 } } : {}),
    ...(entry.timeoutSeconds ? { defaultTimeoutSeconds: entry.timeoutSeconds } : {}),
    outputCount: () => entry.outputs?.length ?? 0,
    outputNames: () => [...(entry.outputs ?? [])],
    parentOutputs(input: unknown): [string, string][] {
      return Object.entries(entry.downloads ?? {})
        .map(([name, tpl]): [string, string] => [
          `input (download ${name})`,
          renderTemplate(tpl, { input, catalogDir, jobId: 'x', attempt: 1 }),
        ])
        .filter(([, url]) => isParentOutputUrl(url));
    },
    inputUrls(input: unknown): [string, string][] {
      return Object.entries(entry.downloads ?? {})
        .map(([name, tpl]): [string, string] => [
          `input (download ${name})`,
          renderTemplate(tpl, { input, catalogDir, jobId: 'x', attempt: 1 }),
        ])
        .filter(([, url]) => /^(https?|s3):/i.test(url));
    },
    validate(input: unknown): FieldError[] {
      if (!check(input)) return ajvErrors(check.errors, 'input');
      const errors: FieldError[] = [];
      for (const [name, tpl] of Object.entries(entry.downloads ?? {})) {
        const url = renderTemplate(tpl, { input, catalogDir, jobId: 'x', attempt: 1 });
        if (!isUrlInput(url)) {
          errors.push({
            field: 'input',
            message: `download ${name} must resolve to an http(s):// or s3:// URL, or a parent output job:<parent>/<name>`,
          });
        } else if (url.startsWith('s3://')) {
          const s3 = normalizeS3Url(url);
          if (!s3.ok) errors.push({ field: 'input', message: `download ${name} is an s3:// URL that ${s3.reason}` });
        }
      }
      return errors;
    },
  };
}

/** Parses and checks a catalog; throws {@link CatalogError} naming every problem. */
export function parseCatalog(text: string, file: string): CatalogJobType[] {
  let data: unknown;
  try {
    data = /\.ya?ml$/i.test(file) ? parseYaml(text) : JSON.parse(text);
  } catch (err) {
    throw new CatalogError(`${file}: not valid ${/\.ya?ml$/i.test(file) ? 'YAML' : 'JSON'}: ${(err as Error).message}`);
  }
  // useDefaults: a parameter the client leaves out takes its schema default, in the stored input as in the argv.
  const ajv = new Ajv({ allErrors: true, strict: false, useDefaults: true });
  addFormats(ajv);
  const validateFile = ajv.compile(catalogSchema);
  if (!validateFile(data)) {
    const problems = ajvErrors(validateFile.errors, 'catalog').map((e) => `${e.field} ${e.message}`);
    throw new CatalogError(`${file}: ${problems.join('; ')}`);
  }
  const catalog = data as CatalogFile;
  const dir = dirname(resolve(file));
  const seen = new Set<string>();
  return catalog.types.map((entry) => {
    if (seen.has(entry.name)) throw new CatalogError(`${file}: job type ${entry.name} is declared twice`);
    seen.add(entry.name);
    return makeType(entry, dir, ajv);
  });
}

export function loadCatalog(file: string): CatalogJobType[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new CatalogError(`cannot read JOB_TYPES_FILE ${file}: ${(err as Error).message}`);
  }
  return parseCatalog(text, file);
}
