/**
 * The tracer used when no span is exported: spans carry ids and nothing else.
 *
 * With no exporter configured, the SDK's spans were built in full (attributes checked and copied, links, events, times,
 * the tracer's own metrics) and then handed to a no-op processor: ≈ 13–18 % of the gateway's and the worker's CPU per
 * job (docs/performance.md, "Spans nobody exports"). What a deployment without tracing still needs from a span is its
 * ids: logs carry the trace id, and the context flows through the records (`traceparent`) and the NATS headers, so a
 * service that does export (or a later deployment) joins the same trace. This tracer gives exactly that: a non-recording
 * span (`trace.wrapSpanContext`) whose trace id, flags and trace state are its parent's (a new trace id for a root,
 * sampled, as the SDK's default `parentbased_always_on` sampler decides) and whose span id is new.
 *
 * Ids come from `crypto.randomFillSync` into a pooled buffer (one call per 4 KiB of ids), as hex.
 */
import { randomFillSync } from 'node:crypto';
import { isTracingSuppressed, parseTraceParent } from '@opentelemetry/core';
import {
  context as contextApi,
  isSpanContextValid,
  propagation,
  trace,
  TraceFlags,
  type Context,
  type Span,
  type SpanContext,
  type SpanOptions,
  type Tracer,
} from '@opentelemetry/api';

const POOL_BYTES = 4096;
const pool = Buffer.allocUnsafe(POOL_BYTES);
let used = POOL_BYTES;

/** `bytes` random bytes as lowercase hex, never all zeros (an invalid id in W3C trace context). */
function randomHex(bytes: number): string {
  for (;;) {
    if (used + bytes > POOL_BYTES) {
      randomFillSync(pool);
      used = 0;
    }
    let zero = true;
    for (let i = used; i < used + bytes; i++) {
      if (pool[i] !== 0) {
        zero = false;
        break;
      }
    }
    const hex = pool.toString('hex', used, used + bytes);
    used += bytes;
    if (!zero) return hex;
  }
}

/**
 * An id-only span's context under a valid parent (undefined: a root): the parent's trace id, flags and trace state
 * (a new trace id, sampled, for a root) and a span id of its own.
 */
function childOf(inherited: SpanContext | undefined): SpanContext {
  const spanContext: SpanContext = {
    traceId: inherited?.traceId ?? randomHex(16),
    spanId: randomHex(8),
    traceFlags: inherited ? inherited.traceFlags : TraceFlags.SAMPLED,
  };
  if (inherited?.traceState) spanContext.traceState = inherited.traceState;
  return spanContext;
}

export class IdOnlyTracer implements Tracer {
  startSpan(_name: string, options: SpanOptions = {}, ctx: Context = contextApi.active()): Span {
    const parent = options.root ? undefined : trace.getSpanContext(ctx);
    return trace.wrapSpanContext(childOf(parent && isSpanContextValid(parent) ? parent : undefined));
  }

  startActiveSpan<F extends (span: Span) => unknown>(name: string, fn: F): ReturnType<F>;
  startActiveSpan<F extends (span: Span) => unknown>(name: string, options: SpanOptions, fn: F): ReturnType<F>;
  startActiveSpan<F extends (span: Span) => unknown>(
    name: string,
    options: SpanOptions,
    ctx: Context,
    fn: F,
  ): ReturnType<F>;
  startActiveSpan<F extends (span: Span) => unknown>(
    name: string,
    a: F | SpanOptions,
    b?: F | Context,
    c?: F,
  ): ReturnType<F> {
    let options: SpanOptions = {};
    let ctx: Context = contextApi.active();
    let fn: F;
    if (typeof a === 'function') fn = a;
    else if (typeof b === 'function') {
      options = a;
      fn = b;
    } else {
      options = a;
      ctx = b ?? ctx;
      fn = c!;
    }
    const span = this.startSpan(name, options, ctx);
    return contextApi.with(trace.setSpan(ctx, span), fn as (s: Span) => ReturnType<F>, undefined, span);
  }
}

/** A trace context as a job record stores it (`currentTraceparent`). */
export interface StoredTrace {
  traceparent?: string;
  tracestate?: string;
}

/** W3C trace context headers. */
export interface TraceHeaders {
  traceparent: string;
  tracestate?: string;
}

/**
 * The headers the services' propagators (W3C trace context and baggage, tracing.ts) write for an id-only span started
 * under `parent` — a context (the active one when absent), or a stored `traceparent` — without building the span, a
 * context for it, or a stored parent's context: on every job revision's publish that was ≈ 10 % of the gateway's CPU
 * per job and ≈ 4 % of the worker's. The same bytes as {@link IdOnlyTracer.startSpan} and then `propagation.inject`
 * (id-only-trace-headers.spec.ts compares them); undefined where the shortcut would not be exact — tracing
 * suppressed, baggage in the context, a stored `tracestate` (the propagator parses and re-serializes it) — and the
 * caller takes that path.
 */
export function idOnlyChildTrace(parent: Context | StoredTrace = contextApi.active()): TraceHeaders | undefined {
  let inherited: SpanContext | undefined;
  if (isStoredTrace(parent)) {
    if (parent.tracestate) return undefined;
    inherited = (parent.traceparent ? parseTraceParent(parent.traceparent) : null) ?? undefined;
  } else {
    if (isTracingSuppressed(parent) || propagation.getBaggage(parent)) return undefined;
    const sc = trace.getSpanContext(parent);
    inherited = sc && isSpanContextValid(sc) ? sc : undefined;
  }
  const c = childOf(inherited);
  // Formatted as W3CTraceContextPropagator.inject formats it.
  const out: TraceHeaders = {
    traceparent: `00-${c.traceId}-${c.spanId}-0${Number(c.traceFlags || TraceFlags.NONE).toString(16)}`,
  };
  if (c.traceState) out.tracestate = c.traceState.serialize();
  return out;
}

function isStoredTrace(p: Context | StoredTrace): p is StoredTrace {
  // A Context has getValue; a stored trace is a plain object of strings.
  return typeof (p as Context).getValue !== 'function';
}
