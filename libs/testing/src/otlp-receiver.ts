/** A real OTLP/HTTP trace receiver (JSON encoding, `OTEL_EXPORTER_OTLP_PROTOCOL=http/json`) that keeps every span. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { waitFor, type WaitOptions } from './wait';

export interface ReceivedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  /** OTLP SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number;
  attributes: Record<string, unknown>;
  status: { code?: number; message?: string };
  events: { name: string }[];
  /** Span links: spans of other traces this one points at (ids as hex). */
  links: { traceId: string; spanId: string; attributes: Record<string, unknown> }[];
}

type AnyValue = { stringValue?: string; intValue?: string | number; boolValue?: boolean; doubleValue?: number };
type KeyValue = { key: string; value: AnyValue };

function value(v: AnyValue): unknown {
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.boolValue !== undefined) return v.boolValue;
  return v.doubleValue;
}

function attrs(list: KeyValue[] | undefined): Record<string, unknown> {
  return Object.fromEntries((list ?? []).map((kv) => [kv.key, value(kv.value)]));
}

/** OTLP/JSON ids are hex (the spec) or base64 (some exporters); normalise to hex. */
function hexId(id: string | undefined): string | undefined {
  if (!id) return undefined;
  if (/^[0-9a-f]+$/i.test(id)) return id.toLowerCase();
  return Buffer.from(id, 'base64').toString('hex');
}

export class OtlpReceiver {
  readonly spans: ReceivedSpan[] = [];

  private constructor(
    private readonly server: Server,
    readonly endpoint: string,
  ) {}

  static async start(): Promise<OtlpReceiver> {
    const ref: { self?: OtlpReceiver } = {};
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (req.url?.startsWith('/v1/traces') && /json/.test(req.headers['content-type'] ?? '')) {
          try {
            ref.self?.ingest(JSON.parse(Buffer.concat(chunks).toString('utf8')));
          } catch {
            res.writeHead(400).end();
            return;
          }
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    const self = new OtlpReceiver(server, `http://127.0.0.1:${port}`);
    ref.self = self;
    return self;
  }

  private ingest(body: {
    resourceSpans?: {
      resource?: { attributes?: KeyValue[] };
      scopeSpans?: { spans?: Record<string, unknown>[] }[];
    }[];
  }): void {
    for (const rs of body.resourceSpans ?? []) {
      const service = String(attrs(rs.resource?.attributes)['service.name'] ?? 'unknown');
      for (const ss of rs.scopeSpans ?? []) {
        for (const s of ss.spans ?? []) {
          const parent = hexId(s['parentSpanId'] as string | undefined);
          this.spans.push({
            service,
            traceId: hexId(s['traceId'] as string)!,
            spanId: hexId(s['spanId'] as string)!,
            ...(parent ? { parentSpanId: parent } : {}),
            name: String(s['name']),
            kind: Number(s['kind'] ?? 0),
            attributes: attrs(s['attributes'] as KeyValue[]),
            status: (s['status'] as ReceivedSpan['status']) ?? {},
            events: ((s['events'] as { name: string }[]) ?? []).map((e) => ({ name: e.name })),
            links: ((s['links'] as { traceId: string; spanId: string; attributes?: KeyValue[] }[]) ?? []).map((l) => ({
              traceId: hexId(l.traceId)!,
              spanId: hexId(l.spanId)!,
              attributes: attrs(l.attributes),
            })),
          });
        }
      }
    }
  }

  /** Environment variables that make a service export here. */
  env(serviceName: string): Record<string, string> {
    return {
      OTEL_EXPORTER_OTLP_ENDPOINT: this.endpoint,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_SERVICE_NAME: serviceName,
      OTEL_BSP_SCHEDULE_DELAY: '100',
    };
  }

  trace(traceId: string): ReceivedSpan[] {
    return this.spans.filter((s) => s.traceId === traceId);
  }

  async waitForSpans(predicate: (s: ReceivedSpan[]) => boolean, o: WaitOptions = {}): Promise<ReceivedSpan[]> {
    return waitFor(() => (predicate(this.spans) ? this.spans : undefined), { what: 'spans', ...o });
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
