/** W3C trace context in NATS headers (and in job records, so that work done later joins the job's trace). */
import {
  context,
  propagation,
  trace,
  ROOT_CONTEXT,
  type Attributes,
  type Context,
  type Link,
  type TextMapGetter,
  type TextMapSetter,
} from '@opentelemetry/api';

/** The subset of NATS `MsgHdrs` that propagation needs. */
export interface HeaderCarrier {
  get(key: string): string;
  set(key: string, value: string): void;
  keys(): string[];
}

const setter: TextMapSetter<HeaderCarrier> = {
  set: (carrier, key, value) => carrier.set(key, value),
};

const getter: TextMapGetter<HeaderCarrier | undefined> = {
  get: (carrier, key) => {
    if (!carrier) return undefined;
    const v = carrier.get(key);
    return v === '' ? undefined : v;
  },
  keys: (carrier) => carrier?.keys() ?? [],
};

/** Writes the given (default: active) context into NATS headers. */
export function injectTrace(headers: HeaderCarrier, ctx: Context = context.active()): void {
  propagation.inject(ctx, headers, setter);
}

/** Reads a context from NATS headers (ROOT when there is none). */
export function extractTrace(headers: HeaderCarrier | undefined): Context {
  return propagation.extract(ROOT_CONTEXT, headers, getter);
}

/** The active context as a `traceparent`/`tracestate` pair, for storing in a job record. */
export function currentTraceparent(ctx: Context = context.active()): { traceparent?: string; tracestate?: string } {
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier);
  const out: { traceparent?: string; tracestate?: string } = {};
  if (carrier['traceparent']) out.traceparent = carrier['traceparent'];
  if (carrier['tracestate']) out.tracestate = carrier['tracestate'];
  return out;
}

/** A context whose parent is a stored `traceparent` (ROOT when absent or malformed). */
export function contextFromTraceparent(traceparent?: string, tracestate?: string): Context {
  if (!traceparent) return ROOT_CONTEXT;
  const carrier: Record<string, string> = { traceparent };
  if (tracestate) carrier['tracestate'] = tracestate;
  return propagation.extract(ROOT_CONTEXT, carrier);
}

/** Runs `fn` with `ctx` as the active context (work done after a span ended that still belongs to its trace). */
export function inContext<T>(ctx: Context, fn: () => T): T {
  return context.with(ctx, fn);
}

/** The trace and span ids of the active span, for log lines. */
export function activeIds(): { traceId?: string; spanId?: string } {
  const span = trace.getSpan(context.active());
  const sc = span?.spanContext();
  if (!sc || !trace.isSpanContextValid(sc)) return {};
  return { traceId: sc.traceId, spanId: sc.spanId };
}

/** True inside a span (an HTTP request, a message being processed). */
export function hasActiveSpan(): boolean {
  return trace.getSpan(context.active()) !== undefined;
}

/**
 * A span link to the span a stored `traceparent` names (a job's trace, seen from another job's), or undefined when it
 * is absent or malformed. Links are how one job's trace points at another's: a child at its parents, a batch job at
 * the request that created it (docs/observability.md).
 */
export function linkToTraceparent(
  traceparent?: string,
  tracestate?: string,
  attributes?: Attributes,
): Link | undefined {
  const sc = trace.getSpanContext(contextFromTraceparent(traceparent, tracestate));
  if (!sc || !trace.isSpanContextValid(sc)) return undefined;
  return attributes ? { context: sc, attributes } : { context: sc };
}

/** A span link to the active span (undefined outside one). */
export function linkToActive(attributes?: Attributes): Link | undefined {
  const sc = trace.getSpan(context.active())?.spanContext();
  if (!sc || !trace.isSpanContextValid(sc)) return undefined;
  return attributes ? { context: sc, attributes } : { context: sc };
}
