/**
 * Prometheus HTTP metrics, recorded in Fastify hooks so that every answer is counted — 401s from the authentication
 * hook, 415s, 413s and body errors from the parser, and 404s for unknown routes included, which a Nest interceptor
 * (running after guards and parsing) would miss. `route` is the route template (`/v1/jobs/:id`), or `unmatched`,
 * so label cardinality stays bounded whatever URLs clients send.
 */
import { Counter, DURATION_BUCKETS, Gauge, Histogram, type Registry } from '@gantry/telemetry';

export class HttpMetrics {
  readonly requests: Counter<'method' | 'route' | 'status'>;
  readonly latency: Histogram<'method' | 'route' | 'status_class'>;
  readonly rateLimited: Counter<'scope'>;
  readonly sseStreams: Gauge;
  readonly jobsAccepted: Counter<'via'>;

  constructor(registry: Registry) {
    this.requests = new Counter({
      name: 'gantry_http_requests_total',
      help: 'HTTP requests by route and status',
      labelNames: ['method', 'route', 'status'],
      registers: [registry],
    });
    this.latency = new Histogram({
      name: 'gantry_http_request_seconds',
      help: 'HTTP request latency by route (until the answer is written)',
      labelNames: ['method', 'route', 'status_class'],
      buckets: [0.001, 0.0025, ...DURATION_BUCKETS],
      registers: [registry],
    });
    this.rateLimited = new Counter({
      name: 'gantry_http_rate_limited_total',
      help: 'requests refused with 429 by the rate limit (scope: key or ip)',
      labelNames: ['scope'],
      registers: [registry],
    });
    this.sseStreams = new Gauge({
      name: 'gantry_sse_streams',
      help: 'open Server-Sent Events streams (GET /v1/jobs/{id}/events and GET /v1/queue/events)',
      registers: [registry],
    });
    this.jobsAccepted = new Counter({
      name: 'gantry_jobs_accepted_total',
      help: 'jobs accepted (202) by this gateway, by route (jobs or batches)',
      labelNames: ['via'],
      registers: [registry],
    });
  }

  observe(method: string, route: string, status: number, seconds: number): void {
    this.requests.inc({ method, route, status: String(status) });
    this.latency.observe({ method, route, status_class: `${Math.floor(status / 100)}xx` }, seconds);
  }
}
