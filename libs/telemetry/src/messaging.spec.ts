import { context, ROOT_CONTEXT, SpanStatusCode, trace } from '@opentelemetry/api';
import { MemorySpans } from '@gantry/testing';
import { inLeafSpan, SpanKind } from './messaging';
import { injectTrace } from './propagation';

describe('inLeafSpan: a span without children, propagated through the context it hands over', () => {
  const spans = new MemorySpans();
  const tracer = spans.tracer;

  beforeAll(() => spans.install());
  afterAll(() => spans.uninstall());
  beforeEach(() => spans.exporter.reset());

  it("is a child of the active span; its context injects the leaf's own ids; the caller's context stays active", async () => {
    const request = tracer.startSpan('request');
    const requestCtx = trace.setSpan(ROOT_CONTEXT, request);
    const seen = await context.with(requestCtx, () =>
      inLeafSpan('x publish', { kind: SpanKind.PRODUCER, attributes: { a: 1 } }, async (span, ctx) => {
        await new Promise((r) => setImmediate(r));
        const headers: Record<string, string> = {};
        injectTrace(
          { get: (k) => headers[k] ?? '', set: (k, v) => (headers[k] = v), keys: () => Object.keys(headers) },
          ctx,
        );
        // Not made active: whatever fn calls runs in the caller's context.
        return { span, headers, active: trace.getSpan(context.active()) };
      }),
    );
    request.end();
    const leaf = seen.span.spanContext();
    expect(seen.active).toBe(request);
    expect(leaf.traceId).toBe(request.spanContext().traceId);
    expect(leaf.spanId).not.toBe(request.spanContext().spanId);
    expect(seen.headers['traceparent']).toBe(`00-${leaf.traceId}-${leaf.spanId}-01`);
    const done = spans.finished('x publish')[0]!;
    expect(done.parentSpanContext?.spanId).toBe(request.spanContext().spanId);
    expect(done.kind).toBe(SpanKind.PRODUCER);
    expect(done.attributes).toEqual({ a: 1 });
    expect(done.ended).toBe(true);
  });

  it('takes an explicit parent over the active one', async () => {
    const other = tracer.startSpan('other');
    const span = await inLeafSpan('y', { parent: trace.setSpan(ROOT_CONTEXT, other) }, async (s) => s);
    other.end();
    expect(span.spanContext().traceId).toBe(other.spanContext().traceId);
  });

  it('records a rejection on the span, ends it and rejects with the same error', async () => {
    const boom = new Error('no stream');
    await expect(
      inLeafSpan('z publish', {}, async () => {
        throw boom;
      }),
    ).rejects.toBe(boom);
    const done = spans.finished('z publish')[0]!;
    expect(done.ended).toBe(true);
    expect(done.status).toEqual({ code: SpanStatusCode.ERROR, message: 'no stream' });
    expect(done.events.map((e) => e.name)).toEqual(['exception']);
  });
});
