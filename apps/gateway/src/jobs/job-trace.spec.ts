import { context, ROOT_CONTEXT, trace } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { MemorySpans } from '@gantry/testing';
import { jobTrace, LINK_KIND } from './job-trace';

/** The trace id and span id of a stored `traceparent`. */
const ids = (tp: string | undefined) => {
  const [, traceId, spanId] = tp!.split('-');
  return { traceId, spanId };
};

describe('jobTrace: one trace per job, linked to its parents', () => {
  const spans = new MemorySpans();
  const tracer = spans.tracer;
  const parentA = `00-${'a'.repeat(32)}-${'1'.repeat(16)}-01`;
  const parentB = `00-${'b'.repeat(32)}-${'2'.repeat(16)}-01`;
  const parentTraces = new Map([
    ['A', { traceparent: parentA }],
    ['B', { traceparent: parentB }],
  ]);

  beforeAll(() => spans.install());
  afterAll(() => spans.uninstall());
  beforeEach(() => spans.exporter.reset());

  /** Runs `fn` inside a request's server span; returns the span's context and what `fn` returned. */
  const inRequest = <T>(fn: () => T) => {
    const request = tracer.startSpan('POST /v1/x');
    const out = context.with(trace.setSpan(ROOT_CONTEXT, request), fn);
    request.end();
    return { request: request.spanContext(), out };
  };
  const submitSpans = (): ReadableSpan[] => spans.finished('job.submit');

  it("keeps a lone job without parents in the request's trace (no span of its own)", () => {
    const { request, out } = inRequest(() => jobTrace({ jobId: 'j1', type: 'noop', tenant: 't' }));
    expect(ids(out.traceparent)).toEqual({ traceId: request.traceId, spanId: request.spanId });
    expect(submitSpans()).toEqual([]);
  });

  it("gives a lone job with parents a job.submit span in the request's trace, linked to each parent's trace", () => {
    const { request, out } = inRequest(() =>
      jobTrace({ jobId: 'j2', type: 'noop', tenant: 't', dependsOn: ['A', 'B', 'C'], parentTraces }),
    );
    const [span] = submitSpans();
    expect(span!.spanContext().traceId).toBe(request.traceId);
    expect(span!.parentSpanContext?.spanId).toBe(request.spanId);
    expect(ids(out.traceparent)).toEqual({ traceId: request.traceId, spanId: span!.spanContext().spanId });
    // C has no stored trace context: no link for it.
    expect(
      span!.links.map((l) => [l.context.traceId, l.attributes?.[LINK_KIND], l.attributes?.['gantry.job.id']]),
    ).toEqual([
      ['a'.repeat(32), 'parent', 'A'],
      ['b'.repeat(32), 'parent', 'B'],
    ]);
    expect(span!.attributes).toMatchObject({ 'gantry.job.id': 'j2', 'gantry.job.parents': 3 });
  });

  it('roots each job of a batch in a trace of its own, linked to the request and to its parents', () => {
    const { request, out } = inRequest(() => [
      jobTrace({ jobId: 'b1', type: 'noop', tenant: 't', batchId: 'batch' }),
      jobTrace({ jobId: 'b2', type: 'noop', tenant: 't', batchId: 'batch', dependsOn: ['A'], parentTraces }),
    ]);
    const spans = submitSpans();
    expect(spans).toHaveLength(2);
    const traces = spans.map((s) => s.spanContext().traceId);
    expect(new Set([...traces, request.traceId]).size).toBe(3);
    for (const [i, s] of spans.entries()) {
      expect(s.parentSpanContext).toBeUndefined();
      expect(ids(out[i]!.traceparent).traceId).toBe(s.spanContext().traceId);
      expect(s.links[0]!.context.spanId).toBe(request.spanId);
      expect(s.links[0]!.attributes).toMatchObject({ [LINK_KIND]: 'request', 'gantry.batch.id': 'batch' });
    }
    expect(spans[0]!.links).toHaveLength(1);
    expect(spans[1]!.links.map((l) => l.context.traceId)).toEqual([request.traceId, 'a'.repeat(32)]);
  });
});
