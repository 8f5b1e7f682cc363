import {
  createTraceState,
  propagation,
  ROOT_CONTEXT,
  trace,
  TraceFlags,
  type Context,
  type SpanContext,
} from '@opentelemetry/api';
import {
  CompositePropagator,
  suppressTracing,
  W3CBaggagePropagator,
  W3CTraceContextPropagator,
} from '@opentelemetry/core';
import { idOnlyChildTrace, IdOnlyTracer, type StoredTrace } from './id-only-tracer';
import { contextFromTraceparent } from './propagation';

/** What the general path writes: an id-only span under `ctx`, then the services' propagators. */
function viaSpan(ctx: Context): Record<string, string> {
  const span = new IdOnlyTracer().startSpan('x publish', {}, ctx);
  const carrier: Record<string, string> = {};
  propagation.inject(trace.setSpan(ctx, span), carrier);
  return carrier;
}

/** A traceparent with its span id (and, for a root, its trace id) blanked: those two are random. */
const shape = (tp: string, root: boolean) => {
  const [v, t, s, f] = tp.split('-');
  expect(s).toMatch(/^[0-9a-f]{16}$/);
  expect(s).not.toBe('0'.repeat(16));
  expect(t).toMatch(/^[0-9a-f]{32}$/);
  expect(t).not.toBe('0'.repeat(32));
  return [v, root ? '<new>' : t, '<new>', f].join('-');
};

const parent = (o: Partial<SpanContext> = {}): Context =>
  trace.setSpanContext(ROOT_CONTEXT, {
    traceId: '0af7651916cd43dd8448eb211c80319c',
    spanId: 'b7ad6b7169203331',
    traceFlags: TraceFlags.SAMPLED,
    ...o,
  });

describe('idOnlyChildTrace: the headers an id-only span propagates, without building it', () => {
  beforeAll(() =>
    propagation.setGlobalPropagator(
      new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }),
    ),
  );
  afterAll(() => propagation.disable());

  const contexts: [string, Context, boolean][] = [
    ['no span: a new trace', ROOT_CONTEXT, true],
    ['a sampled parent', parent(), false],
    ['a parent not sampled', parent({ traceFlags: TraceFlags.NONE }), false],
    ['a parent with a trace state', parent({ traceState: createTraceState('vendor=a,other=b') }), false],
    ['an invalid parent: a new trace', parent({ traceId: '0'.repeat(32) }), true],
  ];
  it.each(contexts)('matches the span and the propagators for %s', (_name, ctx, root) => {
    for (let i = 0; i < 50; i++) {
      const want = viaSpan(ctx);
      const got = idOnlyChildTrace(ctx)!;
      expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
      expect(shape(got.traceparent, root)).toBe(shape(want['traceparent']!, root));
      expect(got.tracestate).toBe(want['tracestate']);
    }
  });

  const stored: [string, StoredTrace, boolean][] = [
    ['no traceparent', {}, true],
    ['a stored traceparent', { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' }, false],
    ['one not sampled', { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00' }, false],
    ['a malformed one', { traceparent: 'not-a-traceparent' }, true],
    ['an all-zero trace id', { traceparent: `00-${'0'.repeat(32)}-b7ad6b7169203331-01` }, true],
    ['version ff', { traceparent: 'ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' }, true],
  ];
  it.each(stored)('matches the stored context path for %s', (_name, s, root) => {
    const want = viaSpan(contextFromTraceparent(s.traceparent, s.tracestate));
    const got = idOnlyChildTrace(s)!;
    expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
    expect(shape(got.traceparent, root)).toBe(shape(want['traceparent']!, root));
  });

  it('keeps a parent trace id and gives every child a span id of its own', () => {
    const ids = new Set<string>();
    for (let i = 0; i < 1_000; i++) ids.add(idOnlyChildTrace(parent())!.traceparent.split('-')[2]!);
    expect(ids.size).toBe(1_000);
    const roots = new Set<string>();
    for (let i = 0; i < 1_000; i++) roots.add(idOnlyChildTrace(ROOT_CONTEXT)!.traceparent.split('-')[1]!);
    expect(roots.size).toBe(1_000);
  });

  it('declines where the shortcut would not be exact: suppressed tracing, baggage, a stored trace state', () => {
    expect(idOnlyChildTrace(suppressTracing(parent()))).toBeUndefined();
    expect(viaSpan(suppressTracing(parent()))).toEqual({});
    const bag = propagation.setBaggage(parent(), propagation.createBaggage({ k: { value: 'v' } }));
    expect(idOnlyChildTrace(bag)).toBeUndefined();
    expect(viaSpan(bag)['baggage']).toBe('k=v');
    expect(
      idOnlyChildTrace({ traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', tracestate: 'a=b' }),
    ).toBeUndefined();
  });
});
