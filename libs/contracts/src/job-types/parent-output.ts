/**
 * Parent outputs as inputs (v1.1, API.md §3): an ffmpeg input or a catalog download may name another job's stored
 * output as `job:<parent id>/<output name>`, or inside a batch `job:ref:<ref>/<output name>` (an earlier job of the same
 * batch). The gateway checks the parent (a declared dependency of the same tenant that declares that output) and
 * writes batch refs as ids before the records are stored; the worker resolves `job:<id>/<name>` to the parent's stored
 * `s3://` object at download time (docs/pipelines.md).
 */
import { SAFE_FILE_NAME } from './job-type';

/** A batch-local job name: token-safe (a NATS subject token), at most 64 characters. */
export const BATCH_REF = /^[A-Za-z0-9_-]{1,64}$/;

const PARENT_OUTPUT = /^job:(ref:)?([A-Za-z0-9_-]{1,64})\/([^/]+)$/;

/** `job:<id>/<name>` (`ref: false`) or `job:ref:<ref>/<name>` (`ref: true`). */
export interface ParentOutputRef {
  ref: boolean;
  /** The parent's job id, or its batch ref when `ref`. */
  parent: string;
  /** The output file name the parent declares. */
  name: string;
}

/** Whether `url` is meant as a parent output (starts with `job:`), well formed or not. */
export function isParentOutputUrl(url: string): boolean {
  return url.startsWith('job:');
}

/** The parts of a well-formed parent output URL, else undefined. */
export function parseParentOutput(url: string): ParentOutputRef | undefined {
  const m = PARENT_OUTPUT.exec(url);
  if (!m || !SAFE_FILE_NAME.test(m[3]!)) return undefined;
  return { ref: m[1] !== undefined, parent: m[2]!, name: m[3]! };
}

export function formatParentOutput(p: ParentOutputRef): string {
  return `job:${p.ref ? 'ref:' : ''}${p.parent}/${p.name}`;
}

/**
 * `input` with every string value that is exactly a `job:ref:<ref>/<name>` of a known ref written as
 * `job:<id>/<name>` (deep copy; other values untouched). Used by the gateway once a batch's ids are known.
 */
export function resolveBatchRefs(input: unknown, idOfRef: (ref: string) => string | undefined): unknown {
  if (typeof input === 'string') {
    const p = parseParentOutput(input);
    const id = p?.ref ? idOfRef(p.parent) : undefined;
    return p && id !== undefined ? formatParentOutput({ ref: false, parent: id, name: p.name }) : input;
  }
  if (Array.isArray(input)) return input.map((v) => resolveBatchRefs(v, idOfRef));
  if (typeof input === 'object' && input !== null) {
    return Object.fromEntries(Object.entries(input).map(([k, v]) => [k, resolveBatchRefs(v, idOfRef)]));
  }
  return input;
}
