/**
 * Spans kept in memory, for unit tests that look at what was traced: a real SDK tracer provider with an in-memory
 * exporter, installed as the global tracer provider with the W3C trace context propagator and an async context
 * manager (so a span stays active across awaits, as in a service).
 */
import { context, propagation, trace, type Tracer } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider, type ReadableSpan } from '@opentelemetry/sdk-trace';

export class MemorySpans {
  readonly exporter = new InMemorySpanExporter();
  readonly provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter: this.exporter })] });
  readonly tracer: Tracer = this.provider.getTracer('test');

  /** Makes this the process's tracer provider, propagator and context manager (in `beforeAll`). */
  install(): void {
    trace.setGlobalTracerProvider(this.provider);
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  }

  /** Undoes {@link install} (in `afterAll`). */
  async uninstall(): Promise<void> {
    await this.provider.shutdown();
    trace.disable();
    propagation.disable();
    context.disable();
  }

  /** The ended spans, those named `name` when given. */
  finished(name?: string): ReadableSpan[] {
    const all = this.exporter.getFinishedSpans();
    return name === undefined ? all : all.filter((s) => s.name === name);
  }
}
