/**
 * The trace of a new job (docs/observability.md, "Traces: one job, one trace"). Its context is stored in the record
 * (`traceparent`), and everything done for the job later joins it.
 *
 * - A single job without parents: the request's trace (the `POST /v1/jobs` server span, which continues the client's
 *   `traceparent`), as always: nothing else is in that trace.
 * - A job with parents (`dependsOn`): a `job.submit` span, a child of the request's span, carrying a span LINK to each
 *   parent's trace (the parents' records hold their trace context): the parents' traces are theirs, the child's is
 *   its own, and the links join them (one trace per job, issue 17).
 * - A job of a batch: a `job.submit` span that is the ROOT of a new trace, linked to the batch request's span (and to
 *   its parents' traces): a batch of 1,000 jobs is 1,000 traces, not one trace of 1,000 jobs, and a child in a batch
 *   has a trace apart from its parents'.
 *
 * The span ends at once (it marks the job's creation); the first revision's publish and every later span of the job
 * are its descendants.
 */
import { SpanKind, linkToActive, linkToTraceparent, tracer, currentTraceparent, type Link } from '@gantry/telemetry';
import { context, ROOT_CONTEXT, trace } from '@opentelemetry/api';

/** A job's stored trace context. */
export interface JobTraceContext {
  traceparent?: string;
  tracestate?: string;
}

/** Parents' trace contexts by job id (read with the parents at validation, or the earlier jobs of a batch). */
export type ParentTraces = ReadonlyMap<string, JobTraceContext>;

/** What a link's `gantry.link.kind` says about the linked span. */
export const LINK_KIND = 'gantry.link.kind';

export function jobTrace(o: {
  jobId: string;
  type: string;
  tenant: string;
  batchId?: string;
  dependsOn?: readonly string[];
  parentTraces?: ParentTraces;
}): JobTraceContext {
  const parents = o.dependsOn ?? [];
  if (!o.batchId && parents.length === 0) return currentTraceparent();
  const links: Link[] = [];
  if (o.batchId) {
    const request = linkToActive({ [LINK_KIND]: 'request', 'gantry.batch.id': o.batchId });
    if (request) links.push(request);
  }
  for (const id of parents) {
    const t = o.parentTraces?.get(id);
    const link = linkToTraceparent(t?.traceparent, t?.tracestate, { [LINK_KIND]: 'parent', 'gantry.job.id': id });
    if (link) links.push(link);
  }
  const parent = o.batchId ? ROOT_CONTEXT : context.active();
  const span = tracer().startSpan(
    'job.submit',
    {
      kind: SpanKind.PRODUCER,
      attributes: {
        'gantry.job.id': o.jobId,
        'gantry.job.type': o.type,
        'gantry.tenant': o.tenant,
        ...(o.batchId ? { 'gantry.batch.id': o.batchId } : {}),
        ...(parents.length > 0 ? { 'gantry.job.parents': parents.length } : {}),
      },
      links,
    },
    parent,
  );
  const out = currentTraceparent(trace.setSpan(parent, span));
  span.end();
  return out;
}
