/**
 * The DTO of a job body that is certainly valid under `SubmitJobDto`'s field rules, built without class-transformer
 * and class-validator (their reflection and decorator walk were the largest share of validation on the submit path,
 * paid again for each job of a batch). It decides only "valid for sure": anything it does not fully recognize — an
 * unknown or rarely used field (`upload`, `dependsOn`, `ref`), a value out of range, a string that may be too long —
 * returns `undefined`, and the caller runs class-validator as before, which alone words every error. So the answer
 * to an invalid body is the same by construction; `job-fast-path.spec.ts` checks that whatever this accepts,
 * class-validator accepts too, with an equal DTO.
 *
 * The DTO is what `plainToInstance` makes: a `SubmitJobDto` (a `GpuDto` for `gpu`) holding the body's fields, with
 * `input` and `metadata` deep copies (a job type's validation may fill defaults into its input, and the body must stay
 * as received: its hash is the Idempotency-Key's fingerprint).
 *
 * Keep it in step with `job.dto.ts`: a field it does not know falls back by itself, but a stricter rule added there on
 * a field known here must be added here too, or the fast path would accept what class-validator now refuses.
 */
import { PRIORITIES, SUBJECT_TOKEN } from '@gantry/contracts';
import { GpuDto, ISO_INSTANT, SubmitJobDto } from './job.dto';

const TYPE_NAME = /^[a-z][a-z0-9-]{0,62}$/;
const VISIBLE_ASCII = /^[\x21-\x7e]+$/;
const INPUT_JSON_BYTES = 256 * 1024;
const METADATA_JSON_BYTES = 8 * 1024;

function isInt(v: unknown, min: number, max: number): boolean {
  return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
}

/**
 * class-validator's MaxLength counts UTF-16 units less surrogate pairs and variation selectors, so a string of at
 * most `max` units is within it; a longer one is left to class-validator.
 */
function shortString(v: unknown, max: number): v is string {
  return typeof v === 'string' && v.length <= max;
}

/** Set by {@link copyJson} when it met a key it cannot copy as class-transformer would. */
const UNCOPYABLE = Symbol('uncopyable');

/**
 * A deep copy of parsed JSON (objects, arrays, primitives) as class-transformer makes it (`-0` kept), or
 * {@link UNCOPYABLE}: class-transformer silently drops a key that names a method of `Object.prototype`
 * (`"toString"`, `"valueOf"`, `"constructor"`…), and `__proto__` would set the copy's prototype; such bodies are left
 * to it.
 */
function copyJson(v: unknown): unknown {
  if (typeof v !== 'object' || v === null) return v;
  if (Array.isArray(v)) {
    const out = new Array<unknown>(v.length);
    for (let i = 0; i < v.length; i++) {
      const c = copyJson(v[i]);
      if (c === UNCOPYABLE) return UNCOPYABLE;
      out[i] = c;
    }
    return out;
  }
  const out: Record<string, unknown> = {};
  for (const k in v) {
    if (k in Object.prototype) return UNCOPYABLE;
    const c = copyJson((v as Record<string, unknown>)[k]);
    if (c === UNCOPYABLE) return UNCOPYABLE;
    out[k] = c;
  }
  return out;
}

/** A JSON object (not null, not an array) whose JSON is at most `bytes` long: a deep copy of it, else undefined. */
function jsonObjectCopy(v: unknown, bytes: number): Record<string, unknown> | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const json = JSON.stringify(v);
  // Length in UTF-16 units ≤ bytes in UTF-8 ≤ 3 × units: only measure the bytes when it could matter.
  if (json.length * 3 > bytes && Buffer.byteLength(json) > bytes) return undefined;
  const copy = copyJson(v);
  return copy === UNCOPYABLE ? undefined : (copy as Record<string, unknown>);
}

function gpuDto(v: unknown): GpuDto | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const g = v as Record<string, unknown>;
  for (const k in g) if (k !== 'count' && k !== 'memoryMb') return undefined;
  if (!isInt(g['count'], 0, 16)) return undefined;
  if ('memoryMb' in g && !isInt(g['memoryMb'], 0, 10_000_000)) return undefined;
  return Object.assign(new GpuDto(), g);
}

/** See the file comment: the DTO of a body that certainly passes the field rules, else undefined. */
export function fastSubmitJobDto(raw: Record<string, unknown>): SubmitJobDto | undefined {
  if (Object.getPrototypeOf(raw) !== Object.prototype) return undefined;
  const dto = new SubmitJobDto();
  const out = dto as unknown as Record<string, unknown>;
  let typed = false;
  for (const key in raw) {
    if (!Object.prototype.hasOwnProperty.call(raw, key)) return undefined;
    const v = raw[key];
    switch (key) {
      case 'type':
        if (typeof v !== 'string' || !TYPE_NAME.test(v)) return undefined;
        typed = true;
        out[key] = v;
        break;
      case 'input':
      case 'metadata': {
        const copy = jsonObjectCopy(v, key === 'input' ? INPUT_JSON_BYTES : METADATA_JSON_BYTES);
        if (!copy) return undefined;
        out[key] = copy;
        break;
      }
      case 'priority':
        if (!(PRIORITIES as readonly unknown[]).includes(v)) return undefined;
        out[key] = v;
        break;
      case 'pool':
        if (typeof v !== 'string' || !SUBJECT_TOKEN.test(v)) return undefined;
        out[key] = v;
        break;
      case 'callbackUrl':
        if (!shortString(v, 2_048)) return undefined;
        out[key] = v;
        break;
      case 'callbackToken':
        if (!shortString(v, 4_096) || !VISIBLE_ASCII.test(v)) return undefined;
        out[key] = v;
        break;
      case 'timeoutSeconds':
        if (!isInt(v, 1, 604_800)) return undefined;
        out[key] = v;
        break;
      case 'maxAttempts':
        if (!isInt(v, 1, 100)) return undefined;
        out[key] = v;
        break;
      case 'delaySeconds':
        if (!isInt(v, 0, Number.MAX_VALUE)) return undefined;
        out[key] = v;
        break;
      case 'runAt':
        if (!shortString(v, 64) || !ISO_INSTANT.test(v)) return undefined;
        out[key] = v;
        break;
      case 'gpu': {
        const gpu = gpuDto(v);
        if (!gpu) return undefined;
        out[key] = gpu;
        break;
      }
      default:
        // upload, dependsOn, ref (rare on the hot path) and unknown fields: class-validator decides and words it.
        return undefined;
    }
  }
  return typed ? dto : undefined;
}
