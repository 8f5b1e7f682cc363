import { spawn } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OutputStore } from '@gantry/storage';
import { waitFor } from '@gantry/testing';
import type { JobFailure } from './executor';
import { DEFAULT_TRANSFERS, downloadInput, putToUrl, redactUrl, type TransferSettings } from './transfers';

type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;

/** A real HTTP server that answers request n with handlers[n] (the last one repeats) and records what it got. */
class ScriptedServer {
  readonly requests: { method: string; url: string; headers: IncomingMessage['headers']; body: Buffer }[] = [];
  private constructor(private readonly server: Server) {}

  static async start(handlers: Handler[]): Promise<ScriptedServer> {
    const s = new ScriptedServer(createServer());
    s.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        s.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
        const h = handlers[Math.min(s.requests.length - 1, handlers.length - 1)]!;
        h(req, res, body);
      });
    });
    await new Promise<void>((r) => s.server.listen(0, '127.0.0.1', r));
    return s;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

const status =
  (code: number, body = ''): Handler =>
  (_req, res) =>
    res.writeHead(code).end(body);

const FAST: TransferSettings = {
  allowPrivate: true,
  connectTimeoutMs: 300,
  idleTimeoutMs: 300,
  attempts: 3,
  backoffMs: 20,
};

const store = new OutputStore({
  S3_REGION: 'us-east-1',
  S3_BUCKET: 'unused-bucket',
  S3_FORCE_PATH_STYLE: true,
  S3_PRESIGN_SECONDS: 60,
  S3_ENDPOINT: 'http://127.0.0.1:9',
});
const never = () => new AbortController().signal;

async function failure(p: Promise<unknown>): Promise<JobFailure | Error> {
  return p.then(
    () => {
      throw new Error('expected a failure');
    },
    (e: unknown) => e as Error,
  );
}

describe('transfers', () => {
  let dir: string;
  let server: ScriptedServer | undefined;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'gantry-tx-'));
  });
  afterEach(async () => {
    await server?.close();
    server = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  it('uses the contract timings by default: connect 30 s, read/write idle 120 s, 3 attempts', () => {
    expect(DEFAULT_TRANSFERS).toMatchObject({ connectTimeoutMs: 30_000, idleTimeoutMs: 120_000, attempts: 3 });
    expect(DEFAULT_TRANSFERS.allowPrivate).toBe(false);
  });

  it('downloads an input, retrying server errors with backoff', async () => {
    server = await ScriptedServer.start([status(500), status(503), status(200, 'video-bytes')]);
    const dest = join(dir, 'in.mp4');
    const size = await downloadInput(`${server.url}/in.mp4?sig=secret`, dest, store, FAST, never());
    expect(size).toBe(11);
    expect(readFileSync(dest, 'utf8')).toBe('video-bytes');
    expect(server.requests.map((r) => r.method)).toEqual(['GET', 'GET', 'GET']);
  });

  it('gives up after 3 attempts (retryable) and does not retry a 404 or a redirect', async () => {
    server = await ScriptedServer.start([status(502)]);
    const e1 = await failure(downloadInput(`${server.url}/x`, join(dir, 'a'), store, FAST, never()));
    expect(e1).toMatchObject({ code: 'DOWNLOAD_FAILED', retryable: true });
    expect(server.requests).toHaveLength(3);
    await server.close();

    server = await ScriptedServer.start([status(404)]);
    const e2 = await failure(
      downloadInput(`${server.url}/missing?X-Amz-Signature=s`, join(dir, 'b'), store, FAST, never()),
    );
    expect(e2).toMatchObject({ code: 'DOWNLOAD_FAILED', retryable: false });
    expect(e2.message).toContain('answered 404');
    expect(e2.message).not.toContain('X-Amz-Signature');
    expect(server.requests).toHaveLength(1);
    await server.close();

    server = await ScriptedServer.start([
      (_q, res) => res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data' }).end(),
    ]);
    const e3 = await failure(downloadInput(`${server.url}/r`, join(dir, 'c'), store, FAST, never()));
    expect(e3).toMatchObject({ code: 'DOWNLOAD_FAILED', retryable: false });
    expect(e3.message).toContain('redirects are not followed');
    expect(server.requests).toHaveLength(1);
  });

  it('fails a download whose body stalls longer than the idle timeout, on every attempt', async () => {
    server = await ScriptedServer.start([
      (_q, res) => {
        res.writeHead(200, { 'content-length': '1000' });
        res.write('partial');
        // …and never more.
      },
    ]);
    const started = Date.now();
    const e = await failure(downloadInput(`${server.url}/slow`, join(dir, 'slow'), store, FAST, never()));
    expect(e).toMatchObject({ code: 'DOWNLOAD_FAILED', retryable: true });
    expect(server.requests).toHaveLength(3);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('gives up connecting after the connect timeout', async () => {
    // A socket that listens with a backlog of 0 and never accepts: once one connection fills the queue, further SYNs
    // are dropped, so only the connect timeout ends an attempt. (Node always accepts, hence python3.)
    const listener = spawn(
      'python3',
      [
        '-c',
        'import socket,time\ns=socket.socket();s.bind(("127.0.0.1",0));s.listen(0)\n' +
          'c=socket.create_connection(s.getsockname())\nprint(s.getsockname()[1],flush=True)\ntime.sleep(60)',
      ],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    );
    try {
      const port = await new Promise<string>((resolve, reject) => {
        listener.stdout.once('data', (b: Buffer) => resolve(b.toString().trim()));
        listener.once('error', reject);
      });
      const started = Date.now();
      const e = await failure(
        downloadInput(`http://127.0.0.1:${port}/in.mp4`, join(dir, 'x'), store, { ...FAST, attempts: 2 }, never()),
      );
      expect(e).toMatchObject({ code: 'DOWNLOAD_FAILED', retryable: true });
      expect(e.message).toContain('no connection within 300 ms');
      expect(Date.now() - started).toBeGreaterThanOrEqual(600);
      expect(Date.now() - started).toBeLessThan(3_000);
    } finally {
      listener.kill('SIGKILL');
    }
  });

  it('refuses private addresses unless allowed, without retrying', async () => {
    server = await ScriptedServer.start([status(200, 'x')]);
    const e = await failure(
      downloadInput(`${server.url}/in.mp4`, join(dir, 'p'), store, { ...FAST, allowPrivate: false }, never()),
    );
    expect(e).toMatchObject({ code: 'DOWNLOAD_FAILED', retryable: false });
    expect(server.requests).toHaveLength(0);
  });

  it('PUTs a file to a presigned URL, retrying 5xx, and never retries a 403', async () => {
    const file = join(dir, 'out.mp4');
    writeFileSync(file, Buffer.alloc(100_000, 7));
    server = await ScriptedServer.start([status(503), status(500), status(200)]);
    expect(await putToUrl(`${server.url}/up?sig=1`, { path: file }, FAST, never())).toBe(100_000);
    expect(server.requests.map((r) => [r.method, r.body.length, r.headers['content-length']])).toEqual([
      ['PUT', 100_000, '100000'],
      ['PUT', 100_000, '100000'],
      ['PUT', 100_000, '100000'],
    ]);
    await server.close();

    server = await ScriptedServer.start([status(403, '<Error>SignatureDoesNotMatch</Error>')]);
    const e = await failure(putToUrl(`${server.url}/up`, { path: file }, FAST, never()));
    expect(e.message).toContain('PUT answered 403');
    expect(server.requests).toHaveLength(1);
  });

  it('fails a PUT whose receiver stops answering (write/read idle timeout), after 3 attempts', async () => {
    const file = join(dir, 'out.bin');
    writeFileSync(file, Buffer.alloc(10, 1));
    server = await ScriptedServer.start([() => undefined]); // reads the body, never answers
    const started = Date.now();
    const e = await failure(putToUrl(`${server.url}/up`, { path: file }, FAST, never()));
    expect(e.message).toMatch(/stalled|no response/);
    expect(server.requests).toHaveLength(3);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('PUTs a JSON document', async () => {
    server = await ScriptedServer.start([status(200)]);
    await putToUrl(server.url, { json: { error: { code: 'EXIT_CODE' } } }, FAST, never());
    expect(server.requests[0]!.headers['content-type']).toBe('application/json');
    expect(JSON.parse(server.requests[0]!.body.toString())).toEqual({ error: { code: 'EXIT_CODE' } });
  });

  it('stops retrying when the attempt is aborted', async () => {
    const s = (server = await ScriptedServer.start([status(500)]));
    const ac = new AbortController();
    const p = downloadInput(`${s.url}/x`, join(dir, 'y'), store, { ...FAST, backoffMs: 5_000 }, ac.signal);
    // Cancel while it waits out its 5 s backoff after the first 500.
    await waitFor(() => s.requests.length === 1, { what: 'the first attempt', timeoutMs: 5_000 });
    ac.abort(new Error('cancelled'));
    const e = await failure(p);
    expect(e.message).toBe('cancelled');
    expect(s.requests).toHaveLength(1);
  });

  it('redacts presigned query strings', () => {
    expect(redactUrl('https://b.s3.amazonaws.com/k/out.mp4?X-Amz-Signature=abc')).toBe(
      'https://b.s3.amazonaws.com/k/out.mp4',
    );
  });
});
