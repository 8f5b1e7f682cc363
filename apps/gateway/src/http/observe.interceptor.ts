/**
 * Per request that reaches a handler: a SERVER span whose parent is the incoming W3C `traceparent` (so a client's
 * trace continues here), active while the handler runs so that the job's publishes join it. Handlers hold no
 * telemetry code. HTTP metrics are recorded in Fastify hooks (`request-hooks.ts`) so that they count every answer.
 */
import { Injectable, type CallHandler, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import { SpanKind, SpanStatusCode, recordError, tracer } from '@gantry/telemetry';
import { context, propagation, ROOT_CONTEXT, trace } from '@opentelemetry/api';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Observable } from 'rxjs';
import { toProblem } from './problem.filter';

@Injectable()
export class ObserveInterceptor implements NestInterceptor {
  intercept(ctx: ExecutionContext, next: CallHandler): Observable<unknown> {
    const req = ctx.switchToHttp().getRequest<FastifyRequest>();
    const reply = ctx.switchToHttp().getResponse<FastifyReply>();
    const route = req.routeOptions?.url ?? 'unmatched';
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
    const done = (status: number) => {
      span.setAttribute('http.response.status_code', status);
      if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
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
