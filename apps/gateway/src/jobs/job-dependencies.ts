/**
 * Dependencies at submit (v1.1, API.md §3 and "Details of the v1.1 additions"; docs/pipelines.md):
 *
 * - `dependsOn` ids must be jobs of the caller's tenant that exist. An unknown id and another tenant's id get the same
 *   answer (`is an unknown job`), so the answer reveals nothing about other tenants' ids. The parents are read by id
 *   (bounded concurrency), never by a scan.
 * - In a batch, `ref`s are unique and `ref:<name>` entries may name only EARLIER jobs of the batch: a job can never
 *   depend on itself or on a later job, so a batch cannot hold a cycle (a reference that would close one is refused
 *   saying so).
 * - A parent output named as an input (`job:<id>/<name>`, `job:ref:<ref>/<name>`) must name a parent in `dependsOn`
 *   that declares an output of that name and stores it (a parent with `upload.url` stores nothing the worker can read).
 *
 * Batch refs are resolved to ids by the batch service once the ids are drawn ({@link resolveJobRefs}).
 */
import {
  parseParentOutput,
  resolveBatchRefs,
  type FieldError,
  type JobRecord,
  type JobTypeRegistry,
} from '@gantry/contracts';
import type { JobStore } from '@gantry/job-store';
import type { SubmitJobDto } from './job.dto';
import type { JobTraceContext } from './job-trace';

/** Parent records read at once per request (each a direct get by id). */
const PARENT_READ_CONCURRENCY = 100;

const REF_PREFIX = 'ref:';

/** What a child may know of a parent: its type, input (for the declared outputs) and whether it uploads elsewhere. */
interface ParentShape {
  label: string;
  type: string;
  input: unknown;
  upload: boolean;
}

/**
 * Every dependency problem of `jobs` (already valid one by one), with their field paths (`prefixes[i]` + field).
 * `batch`: the jobs are one batch (refs allowed).
 */
export async function dependencyErrors(
  jobs: readonly SubmitJobDto[],
  prefixes: readonly string[],
  tenant: string,
  batch: boolean,
  types: JobTypeRegistry,
  store: () => JobStore,
  /** Filled with the trace contexts of the parents read (outside the batch): the children's traces link to them. */
  parentTraces?: Map<string, JobTraceContext>,
): Promise<FieldError[]> {
  const errors: FieldError[] = [];
  const refIndex = new Map<string, number>();
  jobs.forEach((dto, i) => {
    if (dto.ref === undefined) return;
    if (!batch)
      errors.push({ field: `${prefixes[i]}ref`, message: 'names a job of a batch; it is for POST /v1/batches only' });
    else if (refIndex.has(dto.ref))
      errors.push({ field: `${prefixes[i]}ref`, message: `is already the ref of jobs[${refIndex.get(dto.ref)}]` });
    else refIndex.set(dto.ref, i);
  });

  // The ref edges (child index → parent indices) for cycle detection in messages.
  const refEdges = jobs.map((dto) =>
    (dto.dependsOn ?? [])
      .filter((d) => d.startsWith(REF_PREFIX))
      .map((d) => refIndex.get(d.slice(REF_PREFIX.length)))
      .filter((k): k is number => k !== undefined),
  );
  const reaches = (from: number, to: number): boolean => {
    const seen = new Set<number>();
    const stack = [from];
    while (stack.length > 0) {
      const n = stack.pop()!;
      if (n === to) return true;
      if (seen.has(n)) continue;
      seen.add(n);
      stack.push(...refEdges[n]!);
    }
    return false;
  };

  const external = new Set<string>();
  jobs.forEach((dto, i) => {
    (dto.dependsOn ?? []).forEach((d, j) => {
      const field = `${prefixes[i]}dependsOn[${j}]`;
      if (!d.startsWith(REF_PREFIX)) {
        external.add(d);
        return;
      }
      const ref = d.slice(REF_PREFIX.length);
      const k = refIndex.get(ref);
      if (!batch) errors.push({ field, message: 'ref:<name> names a job of the same batch; use a job id here' });
      else if (k === undefined) errors.push({ field, message: `names ref "${ref}", which no job of this batch has` });
      else if (k === i)
        errors.push({ field, message: `names the job itself: a cycle (a job may depend only on earlier jobs)` });
      else if (k > i)
        errors.push({
          field,
          message: reaches(k, i)
            ? `names jobs[${k}], a later job that depends on this one: a cycle; a job may depend only on earlier jobs of the batch`
            : `names jobs[${k}], a later job of the batch; a job may depend only on earlier jobs (so a batch cannot hold a cycle)`,
        });
    });
  });

  // Parents outside the batch: one direct get each, bounded concurrency; unknown and foreign read the same.
  const found = await store().getMany([...external], { concurrency: PARENT_READ_CONCURRENCY });
  const mine = new Map<string, JobRecord>();
  for (const [id, s] of found) if (s.record.tenant === tenant) mine.set(id, s.record);
  for (const [id, r] of mine) {
    parentTraces?.set(id, {
      ...(r.traceparent ? { traceparent: r.traceparent } : {}),
      ...(r.tracestate ? { tracestate: r.tracestate } : {}),
    });
  }
  jobs.forEach((dto, i) => {
    (dto.dependsOn ?? []).forEach((d, j) => {
      if (!d.startsWith(REF_PREFIX) && !mine.has(d))
        errors.push({ field: `${prefixes[i]}dependsOn[${j}]`, message: 'is an unknown job' });
    });
  });

  // Parent outputs named as inputs.
  jobs.forEach((dto, i) => {
    const def = types.get(dto.type);
    const input = dto.input ?? {};
    const deps = new Set(dto.dependsOn ?? []);
    for (const [field, url] of def?.parentOutputs?.(input) ?? []) {
      const at = `${prefixes[i]}${field}`;
      const p = parseParentOutput(url);
      if (!p) {
        errors.push({ field: at, message: `"${url}" is not job:<parent id>/<output> or job:ref:<batch ref>/<output>` });
        continue;
      }
      let parent: ParentShape | undefined;
      if (p.ref) {
        const k = refIndex.get(p.parent);
        if (!batch) {
          errors.push({ field: at, message: 'job:ref:<ref>/… names a job of the same batch; use job:<parent id>/…' });
          continue;
        }
        if (!deps.has(`${REF_PREFIX}${p.parent}`)) {
          errors.push({
            field: at,
            message: `names ref "${p.parent}", which is not in dependsOn (add "ref:${p.parent}")`,
          });
          continue;
        }
        // A missing or later ref is reported on dependsOn already.
        if (k === undefined || k >= i) continue;
        const pj = jobs[k]!;
        parent = { label: `jobs[${k}] (ref ${p.parent})`, type: pj.type, input: pj.input ?? {}, upload: !!pj.upload };
      } else {
        if (!deps.has(p.parent)) {
          errors.push({ field: at, message: `names job ${p.parent}, which is not in dependsOn` });
          continue;
        }
        const r = mine.get(p.parent);
        if (!r) continue; // reported on dependsOn
        parent = { label: `job ${p.parent}`, type: r.type, input: r.input, upload: !!r.upload };
      }
      const declared = types.get(parent.type)?.outputNames?.(parent.input) ?? [];
      if (!declared.includes(p.name)) {
        errors.push({
          field: at,
          message: `${parent.label} declares no output "${p.name}"${declared.length ? ` (it declares: ${declared.join(', ')})` : ' (it declares none)'}`,
        });
      } else if (parent.upload) {
        errors.push({
          field: at,
          message: `${parent.label} sends its output to its upload.url, so Gantry stores none to pass on`,
        });
      }
    }
    // A catalog download assembled from several fields around a job:ref: cannot be rewritten to the parent's id.
    if (batch && def?.parentOutputs) {
      const resolved = resolveBatchRefs(input, (ref) => (refIndex.has(ref) ? 'resolved' : undefined));
      for (const [field, url] of def.parentOutputs(resolved)) {
        const p = parseParentOutput(url);
        if (p?.ref && refIndex.has(p.parent))
          errors.push({
            field: `${prefixes[i]}${field}`,
            message: 'a job:ref:<ref>/<output> must be one whole input value (so that it can be resolved to the id)',
          });
      }
    }
  });
  return errors;
}

/**
 * The batch's `dependsOn` and inputs with refs written as the jobs' ids (`ids[i]` is the id of job `i`): what the
 * records store and the views show.
 */
export function resolveJobRefs(
  jobs: readonly SubmitJobDto[],
  ids: readonly string[],
): { dependsOn?: string[]; input: Record<string, unknown> }[] {
  const idOf = new Map<string, string>();
  jobs.forEach((dto, i) => {
    if (dto.ref !== undefined) idOf.set(dto.ref, ids[i]!);
  });
  return jobs.map((dto) => {
    const input = resolveBatchRefs(dto.input ?? {}, (ref) => idOf.get(ref)) as Record<string, unknown>;
    if (!dto.dependsOn?.length) return { input };
    return {
      input,
      dependsOn: dto.dependsOn.map((d) => (d.startsWith(REF_PREFIX) ? idOf.get(d.slice(REF_PREFIX.length))! : d)),
    };
  });
}
