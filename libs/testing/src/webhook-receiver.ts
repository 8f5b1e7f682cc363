/**
 * A real HTTP endpoint that records webhook deliveries and answers as a test scripts it: a status, a delay, a hang,
 * `Retry-After`, or a function of the request. Signatures are checked by the tests with the `standardwebhooks` library.
 */
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { waitFor, type WaitOptions } from './wait';

export interface ReceivedWebhook {
  path: string;
  headers: IncomingHttpHeaders;
  /** The raw body, exactly as sent (signatures are over it). */
  body: string;
  json: unknown;
  receivedAt: number;
  /** The status this receiver answered with. */
  answered: number;
}

export interface ScriptedResponse {
  status: number;
  /** Answer after this long. */
  delayMs?: number;
  /** Never answer (until the receiver closes). */
  hang?: boolean;
  headers?: Record<string, string>;
}

export type Responder = (req: {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  n: number;
}) => ScriptedResponse;

export class WebhookReceiver {
  readonly received: ReceivedWebhook[] = [];
  private responder: Responder = () => ({ status: 204 });
  private readonly hanging = new Set<ServerResponse>();

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  /** Listens on 127.0.0.1, on `port` when given (to bring an endpoint "back" on the same URL), else a free one. */
  static async start(port = 0): Promise<WebhookReceiver> {
    const ref: { self?: WebhookReceiver } = {};
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => ref.self?.handle(req.url ?? '/', req.headers, Buffer.concat(chunks).toString('utf8'), res));
    });
    server.keepAliveTimeout = 1_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
    const bound = (server.address() as AddressInfo).port;
    const self = new WebhookReceiver(server, `http://127.0.0.1:${bound}`);
    ref.self = self;
    return self;
  }

  /** Sets how the next requests are answered. */
  respond(responder: Responder | ScriptedResponse): void {
    this.responder = typeof responder === 'function' ? responder : () => responder;
  }

  /** Answers the first `n` requests with `failure`, then `success`. */
  failFirst(n: number, failure: ScriptedResponse = { status: 500 }, success: ScriptedResponse = { status: 204 }): void {
    this.responder = ({ n: i }) => (i < n ? failure : success);
  }

  private handle(path: string, headers: IncomingHttpHeaders, body: string, res: ServerResponse): void {
    const n = this.received.length;
    const r = this.responder({ path, headers, body, n });
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch {
      json = undefined;
    }
    this.received.push({ path, headers, body, json, receivedAt: Date.now(), answered: r.hang ? 0 : r.status });
    if (r.hang) {
      this.hanging.add(res);
      res.on('close', () => this.hanging.delete(res));
      return;
    }
    const send = () => {
      res.writeHead(r.status, { 'content-type': 'application/json', ...r.headers });
      res.end('{}');
    };
    if (r.delayMs) setTimeout(send, r.delayMs);
    else send();
  }

  /** Deliveries whose JSON body matches `predicate`. */
  matching(predicate: (w: ReceivedWebhook) => boolean): ReceivedWebhook[] {
    return this.received.filter(predicate);
  }

  /** Waits until `count` deliveries match. */
  async waitForCount(
    predicate: (w: ReceivedWebhook) => boolean,
    count: number,
    o: WaitOptions = {},
  ): Promise<ReceivedWebhook[]> {
    return waitFor(
      () => {
        const m = this.matching(predicate);
        return m.length >= count ? m : undefined;
      },
      { what: `${count} matching webhook(s) at ${this.url}`, ...o },
    );
  }

  async close(): Promise<void> {
    for (const r of this.hanging) r.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** The event type of a webhook body (`job.completed` …). */
export function webhookType(w: ReceivedWebhook): string | undefined {
  return (w.json as { type?: string } | undefined)?.type;
}
