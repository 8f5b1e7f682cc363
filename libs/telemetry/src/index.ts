export { idOnlyChildTrace } from './id-only-tracer';
export type { StoredTrace, TraceHeaders } from './id-only-tracer';
export { startTelemetry, tracer, tracingEnabled, idOnlySpans, spansRecorded, ensurePropagator } from './tracing';
export type { Telemetry } from './tracing';
export {
  injectTrace,
  extractTrace,
  currentTraceparent,
  contextFromTraceparent,
  inContext,
  activeIds,
  hasActiveSpan,
  linkToTraceparent,
  linkToActive,
} from './propagation';
export type { HeaderCarrier } from './propagation';
export {
  ATTR,
  inSpan,
  inLeafSpan,
  recordError,
  publishAttributes,
  processAttributes,
  SpanKind,
  SpanStatusCode,
} from './messaging';
export type { Span, Context, Attributes, Link, SpanOptions } from './messaging';
export { createLogger, NestPinoLogger } from './logger';
export type { Logger } from './logger';
export { prettyLogLine } from './pretty';
export { createRegistry, DURATION_BUCKETS, Counter, Gauge, Histogram, Registry } from './metrics';
export { startOpsServer } from './ops-server';
export type { OpsServer, OpsServerOptions, Readiness } from './ops-server';
