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
import {
  context as contextApi,
  isSpanContextValid,
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

export class IdOnlyTracer implements Tracer {
  startSpan(_name: string, options: SpanOptions = {}, ctx: Context = contextApi.active()): Span {
    const parent = options.root ? undefined : trace.getSpanContext(ctx);
    const inherited = parent && isSpanContextValid(parent) ? parent : undefined;
    const spanContext: SpanContext = {
      traceId: inherited?.traceId ?? randomHex(16),
      spanId: randomHex(8),
      traceFlags: inherited ? inherited.traceFlags : TraceFlags.SAMPLED,
    };
    if (inherited?.traceState) spanContext.traceState = inherited.traceState;
    return trace.wrapSpanContext(spanContext);
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
