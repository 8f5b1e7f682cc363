/**
 * Per request: a SERVER span (parent = incoming W3C `traceparent`, so a client's trace continues here) and the HTTP
 * metrics (rate, errors and latency by route). Handlers hold no telemetry code.
 */
import { Injectable, type CallHandler, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import {
  Counter,
  DURATION_BUCKETS,
  Histogram,
  SpanKind,
  SpanStatusCode,
  recordError,
  tracer,
  type Registry,
} from '@gantry/telemetry';
import { context, propagation, ROOT_CONTEXT, trace } from '@opentelemetry/api';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Observable } from 'rxjs';
import { toProblem } from './problem.filter';

@Injectable()
export class ObserveInterceptor implements NestInterceptor {
  private readonly requests: Counter<'method' | 'route' | 'status'>;
  private readonly latency: Histogram<'method' | 'route'>;

  constructor(registry: Registry) {
    this.requests = new Counter({
      name: 'gantry_http_requests_total',
      help: 'HTTP requests by route and status',
      labelNames: ['method', 'route', 'status'],
      registers: [registry],
    });
    this.latency = new Histogram({
      name: 'gantry_http_request_seconds',
      help: 'HTTP request latency by route',
      labelNames: ['method', 'route'],
      buckets: DURATION_BUCKETS,
      registers: [registry],
    });
  }

  intercept(ctx: ExecutionContext, next: CallHandler): Observable<unknown> {
    const req = ctx.switchToHttp().getRequest<FastifyRequest>();
    const reply = ctx.switchToHttp().getResponse<FastifyReply>();
    const route = req.routeOptions?.url ?? 'unknown';
    const method = req.method;
    const parent = propagation.extract(ROOT_CONTEXT, req.headers);
    const span = tracer().startSpan(
      `${method} ${route}`,
      {
        kind: SpanKind.SERVER,
        attributes: { 'http.request.method': method, 'http.route': route, 'url.path': req.url.split('?')[0] },
      },
      parent,
    );
    const started = process.hrtime.bigint();
    const done = (status: number) => {
      span.setAttribute('http.response.status_code', status);
      if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
      this.requests.inc({ method, route, status: String(status) });
      this.latency.observe({ method, route }, Number(process.hrtime.bigint() - started) / 1e9);
    };
    const spanCtx = trace.setSpan(parent, span);
    return new Observable((subscriber) => {
      const sub = context.with(spanCtx, () =>
        next.handle().subscribe({
          next: (v) => subscriber.next(v),
          error: (err: unknown) => {
            const p = toProblem(err);
            if (p.status >= 500) recordError(span, err);
            done(p.status);
            subscriber.error(err);
          },
          complete: () => {
            done(reply.statusCode);
            subscriber.complete();
          },
        }),
      );
      return () => sub.unsubscribe();
    });
  }
}
