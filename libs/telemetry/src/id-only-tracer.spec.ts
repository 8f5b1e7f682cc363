import {
  context,
  propagation,
  ROOT_CONTEXT,
  trace,
  TraceFlags,
  createTraceState,
  INVALID_SPAN_CONTEXT,
  type Span,
} from '@opentelemetry/api';
import { IdOnlyTracer } from './id-only-tracer';
import { contextFromTraceparent, currentTraceparent } from './propagation';
import { ensurePropagator, idOnlySpans, spansRecorded, startTelemetry, tracer } from './tracing';

const HEX32 = /^[0-9a-f]{32}$/;
const HEX16 = /^[0-9a-f]{16}$/;

describe('IdOnlyTracer: spans with ids and nothing else, when nothing is exported', () => {
  const t = new IdOnlyTracer();
  // W3C propagation for the stored-traceparent cases (startTelemetry installs it for the services).
  beforeAll(() => ensurePropagator());

  it('gives a root span a new valid trace id, a new span id and the sampled flag; never recording', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2_000; i++) {
      const s = t.startSpan('x', {}, ROOT_CONTEXT);
      const c = s.spanContext();
      expect(c.traceId).toMatch(HEX32);
      expect(c.spanId).toMatch(HEX16);
      expect(c.traceId).not.toBe('0'.repeat(32));
      expect(c.spanId).not.toBe('0'.repeat(16));
      expect(c.traceFlags).toBe(TraceFlags.SAMPLED);
      expect(s.isRecording()).toBe(false);
      seen.add(c.traceId);
      seen.add(c.spanId);
    }
    expect(seen.size).toBe(4_000);
  });

  it("keeps its parent's trace id, flags and trace state (a stored traceparent included), with a span id of its own", () => {
    const parent = contextFromTraceparent('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', 'vendor=opaque');
    const child = t.startSpan('child', {}, parent).spanContext();
    expect(child.traceId).toBe('0af7651916cd43dd8448eb211c80319c');
    expect(child.spanId).not.toBe('b7ad6b7169203331');
    expect(child.traceFlags).toBe(TraceFlags.SAMPLED);
    expect(child.traceState?.serialize()).toBe('vendor=opaque');

    const unsampled = contextFromTraceparent('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00');
    expect(t.startSpan('child', {}, unsampled).spanContext().traceFlags).toBe(TraceFlags.NONE);

    const local = trace.setSpan(
      ROOT_CONTEXT,
      trace.wrapSpanContext({
        traceId: 'a'.repeat(32),
        spanId: 'b'.repeat(16),
        traceFlags: TraceFlags.SAMPLED,
        traceState: createTraceState('k=v'),
      }),
    );
    const child2 = t.startSpan('c', {}, local);
    const grandchild = t.startSpan('gc', {}, trace.setSpan(local, child2)).spanContext();
    expect(grandchild.traceId).toBe('a'.repeat(32));
    expect(grandchild.spanId).not.toBe(child2.spanContext().spanId);
    expect(grandchild.traceState?.serialize()).toBe('k=v');
  });

  it('starts a new trace for `root: true` and for an invalid parent', () => {
    const parent = contextFromTraceparent('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    expect(t.startSpan('r', { root: true }, parent).spanContext().traceId).not.toBe('0af7651916cd43dd8448eb211c80319c');
    const invalid = trace.setSpan(ROOT_CONTEXT, trace.wrapSpanContext(INVALID_SPAN_CONTEXT));
    expect(t.startSpan('r', {}, invalid).spanContext().traceId).toMatch(HEX32);
    expect(t.startSpan('r', {}, invalid).spanContext().traceId).not.toBe(INVALID_SPAN_CONTEXT.traceId);
  });

  it('says spans are recorded while telemetry is not started (a test may install its own provider)', () => {
    expect(spansRecorded()).toBe(true);
  });

  describe('as the tracer of a service that exports nothing (startTelemetry)', () => {
    let stop: () => Promise<void>;
    beforeAll(() => {
      const env: NodeJS.ProcessEnv = {};
      stop = startTelemetry('id-only-test', env).shutdown;
    });
    afterAll(async () => {
      await stop();
    });

    it('is what tracer() gives, and its spans are active inside startActiveSpan and propagate as traceparent', async () => {
      expect(tracer()).toBeInstanceOf(IdOnlyTracer);
      // Hot paths skip building attributes that an id-only span would drop (publisher.ts, server.ts).
      expect(spansRecorded()).toBe(false);
      const outer = tracer().startSpan('outer', {}, ROOT_CONTEXT);
      const outerCtx = trace.setSpan(ROOT_CONTEXT, outer);
      const seen = await tracer().startActiveSpan('inner', {}, outerCtx, async (span: Span) => {
        await new Promise((r) => setImmediate(r));
        // Across an await: the context manager keeps the span active.
        expect(trace.getSpan(context.active())).toBe(span);
        const carrier: Record<string, string> = {};
        propagation.inject(context.active(), carrier);
        return { carrier, span };
      });
      const ids = seen.span.spanContext();
      expect(ids.traceId).toBe(outer.spanContext().traceId);
      expect(seen.carrier['traceparent']).toBe(`00-${ids.traceId}-${ids.spanId}-01`);
      expect(currentTraceparent(trace.setSpan(ROOT_CONTEXT, seen.span)).traceparent).toBe(seen.carrier['traceparent']);
      // The one-argument and two-argument forms.
      expect(tracer().startActiveSpan('a', (s: Span) => s.spanContext().traceId)).toMatch(HEX32);
      expect(tracer().startActiveSpan('b', { root: true }, (s: Span) => s.isRecording())).toBe(false);
    });
  });

  it('is used only when nothing is exported and the sampler is the default one', () => {
    expect(idOnlySpans({})).toBe(true);
    expect(idOnlySpans({ OTEL_TRACES_SAMPLER: 'parentbased_always_on' })).toBe(true);
    expect(idOnlySpans({ OTEL_TRACES_SAMPLER: ' Always_On ' })).toBe(true);
    expect(idOnlySpans({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' })).toBe(false);
    expect(idOnlySpans({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://127.0.0.1:4318' })).toBe(false);
    // Export explicitly off: id-only again.
    expect(idOnlySpans({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318', OTEL_TRACES_EXPORTER: 'none' })).toBe(
      true,
    );
    // Another sampler decides the flags the spans propagate: the SDK's spans are kept.
    expect(idOnlySpans({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.1' })).toBe(
      false,
    );
    expect(idOnlySpans({ OTEL_TRACES_SAMPLER: 'always_off' })).toBe(false);
  });
});
