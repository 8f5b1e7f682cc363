/**
 * OpenTelemetry bootstrap. Tracing exports only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or the traces-specific endpoint)
 * is set; the exporter, protocol (`http/protobuf`, `http/json`, `grpc`), sampler and limits come from the standard
 * `OTEL_*` variables through the SDK's own env handling. With tracing off, spans still get ids (so logs carry
 * `traceId` and context still flows through NATS headers) but nothing is exported.
 */
import { propagation, trace, type Tracer } from '@opentelemetry/api';
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { NoopSpanProcessor } from '@opentelemetry/sdk-trace';
import { IdOnlyTracer } from './id-only-tracer';

export interface Telemetry {
  readonly serviceName: string;
  readonly exporting: boolean;
  readonly tracer: Tracer;
  shutdown(): Promise<void>;
}

let active: Telemetry | undefined;

/**
 * Samplers whose decision the id-only tracer makes too (sampled unless the parent is not): with another one
 * configured, the SDK's spans are kept even when nothing is exported, so that the flags they propagate stay the
 * configured sampler's.
 */
const ID_ONLY_SAMPLERS = new Set(['', 'always_on', 'parentbased_always_on']);

/** Whether the services' spans are id-only ({@link IdOnlyTracer}): nothing is exported and the sampler is the default. */
export function idOnlySpans(env: NodeJS.ProcessEnv = process.env): boolean {
  return !tracingEnabled(env) && ID_ONLY_SAMPLERS.has((env['OTEL_TRACES_SAMPLER'] ?? '').trim().toLowerCase());
}

export function tracingEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  const endpoint = env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'] || env['OTEL_EXPORTER_OTLP_ENDPOINT'];
  const exporter = (env['OTEL_TRACES_EXPORTER'] ?? '').trim();
  return Boolean(endpoint) && exporter !== 'none' && env['OTEL_SDK_DISABLED'] !== 'true';
}

/** Starts tracing once per process; later calls return the same instance. */
export function startTelemetry(serviceName: string, env: NodeJS.ProcessEnv = process.env): Telemetry {
  if (active) return active;
  const exporting = tracingEnabled(env);
  // Gantry exposes metrics through Prometheus (prom-client) and logs through pino; keep the SDK to traces.
  env['OTEL_METRICS_EXPORTER'] ??= 'none';
  env['OTEL_LOGS_EXPORTER'] ??= 'none';
  const sdk = new NodeSDK({
    serviceName: env['OTEL_SERVICE_NAME'] || serviceName,
    instrumentations: [],
    textMapPropagator: new CompositePropagator({
      propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()],
    }),
    ...(exporting ? {} : { spanProcessors: [new NoopSpanProcessor()] }),
  });
  sdk.start();
  active = {
    serviceName,
    exporting,
    // Nothing exported: spans that carry ids only (id-only-tracer.ts). The SDK still provides the context manager
    // and the propagators.
    tracer: idOnlySpans(env) ? new IdOnlyTracer() : trace.getTracer(`gantry.${serviceName}`),
    shutdown: async () => {
      // At process exit: spans that cannot be exported now are lost either way; the exit must not wait or fail.
      await sdk.shutdown().catch(() => undefined);
      active = undefined;
    },
  };
  return active;
}

/**
 * False while the spans are id-only (nothing exported, {@link IdOnlyTracer}): hot paths skip building attribute
 * objects that no span would keep. True when telemetry was not started (a test's own provider may record).
 */
export function spansRecorded(): boolean {
  return !(active?.tracer instanceof IdOnlyTracer);
}

export function tracer(): Tracer {
  return active?.tracer ?? trace.getTracer('gantry');
}

/** For tests and tools that never start the SDK: W3C propagation without a tracer provider. */
export function ensurePropagator(): void {
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
}
