/**
 * Errors of the HTTP layer itself — those Fastify and Node's HTTP parser answer before any route runs — are RFC 9457
 * problems like every other error (API.md §3): 414 (an over-long id or request line), 431 (headers too large), 413
 * (a body over the route's limit, answered rather than reset, with Content-Length or chunked), 415, 400 on malformed
 * JSON or a malformed URL, 404 for an unknown route, 405 (with `Allow`) for a known path with another method. Each is
 * checked over a real socket, and none of them writes anything.
 */
import { connect } from 'node:net';
import { STREAMS } from '@gantry/contracts';
import { ADMIN, CLIENT, expectProblem, startStack, type Answer, type Client } from './harness';

interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * Writes `head` (and then `body` in chunks, as far as the server lets it) on a fresh socket and parses the answer.
 * Resolves with the answer even when the server closes the connection while the body is still being sent, as long as
 * a whole answer arrived first; rejects when the connection ends without one (a reset instead of an answer).
 */
function rawRequest(port: number, head: string, body?: { chunk: Buffer; times: number }): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let settled = false;
    const finish = (err?: Error) => {
      if (settled) return;
      const text = Buffer.concat(chunks).toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) {
        settled = true;
        socket.destroy();
        reject(err ?? new Error(`no answer before the connection ended (got ${JSON.stringify(text.slice(0, 200))})`));
        return;
      }
      const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
      const headers: Record<string, string> = {};
      for (const l of lines) {
        const i = l.indexOf(':');
        headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      const length = Number(headers['content-length'] ?? NaN);
      const rest = Buffer.concat(chunks).subarray(Buffer.byteLength(text.slice(0, end + 4), 'latin1'));
      if (!err && Number.isFinite(length) && rest.length < length) return; // wait for the rest of the body
      settled = true;
      socket.destroy();
      resolve({
        status: Number(statusLine!.split(' ')[1]),
        headers,
        body: rest.subarray(0, Number.isFinite(length) ? length : rest.length).toString('utf8'),
      });
    };
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      finish();
    });
    socket.on('end', () => finish(new Error('ended')));
    socket.on('close', () => finish(new Error('closed')));
    socket.on('error', (e) => finish(e));
    socket.write(head, 'latin1');
    if (body) {
      let sent = 0;
      const pump = () => {
        while (sent < body.times && !socket.destroyed) {
          sent++;
          if (!socket.write(body.chunk)) {
            socket.once('drain', pump);
            return;
          }
        }
      };
      pump();
    }
  });
}

function asAnswer(r: RawAnswer): Answer {
  let body: unknown = r.body;
  try {
    body = JSON.parse(r.body);
  } catch {
    // not JSON: expectProblem reports it
  }
  return { status: r.status, headers: new Headers(r.headers), body, text: r.body };
}

describe('HTTP-layer errors are problem+json (real sockets)', () => {
  let s: Awaited<ReturnType<typeof startStack>>;
  let api: Client;
  let port: number;
  let before: number;
  const jobMessages = async () => (await s.handle.jsm.streams.info(STREAMS.jobs)).state.messages;

  beforeAll(async () => {
    s = await startStack({ BODY_LIMIT_BYTES: String(4 * 1024 * 1024) });
    api = s.api.as(CLIENT);
    port = Number(new URL(s.gateway.url).port);
    before = await jobMessages();
  });
  afterAll(async () => {
    // Not one of the refusals below wrote anything.
    if (s) expect(await jobMessages()).toBe(before);
    await s?.stop();
  });

  it('414 for an id of 5,000 characters, and for a request line longer than the header limit', async () => {
    const p = expectProblem(await api.json('GET', `/v1/jobs/${'a'.repeat(5_000)}`), 414);
    expect(p.type).toBe('urn:gantry:problem:uri-too-long');
    expectProblem(await api.json('POST', `/v1/jobs/${'b'.repeat(5_000)}/cancel`), 414);
    // Past Node's header limit (16 KiB) the HTTP parser itself refuses the request line.
    const long = await rawRequest(
      port,
      `GET /v1/jobs/${'c'.repeat(40_000)} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${CLIENT}\r\n\r\n`,
    );
    expectProblem(asAnswer(long), 414);
  });

  it('431 for headers over the limit', async () => {
    const r = await rawRequest(
      port,
      `GET /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${CLIENT}\r\nX-Big: ${'h'.repeat(40_000)}\r\n\r\n`,
    );
    const p = expectProblem(asAnswer(r), 431);
    expect(p.type).toBe('urn:gantry:problem:headers-too-large');
    // Many small headers add up the same way.
    const many = Array.from({ length: 2_000 }, (_, i) => `X-H${i}: ${'v'.repeat(20)}\r\n`).join('');
    expectProblem(asAnswer(await rawRequest(port, `GET /healthz HTTP/1.1\r\nHost: x\r\n${many}\r\n`)), 431);
  });

  it('413, answered rather than reset, for a body over the limit (Content-Length and chunked)', async () => {
    // 8 MiB announced by Content-Length to a 1 MiB route: refused before the body is read, the answer still arrives.
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    const sized = await rawRequest(
      port,
      `POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${CLIENT}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${128 * chunk.length}\r\n\r\n`,
      { chunk, times: 128 },
    );
    expect(expectProblem(asAnswer(sized), 413).type).toBe('urn:gantry:problem:payload-too-large');
    // Chunked: the limit is found while reading.
    const chunked = await rawRequest(
      port,
      `POST /v1/batches HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${CLIENT}\r\nContent-Type: application/json\r\n` +
        `Transfer-Encoding: chunked\r\n\r\n`,
      {
        chunk: Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]),
        times: 128,
      },
    );
    expectProblem(asAnswer(chunked), 413);
    // And through an ordinary client that sends the whole body.
    const big = JSON.stringify({ type: 'noop', metadata: { pad: 'x'.repeat(6 * 1024 * 1024) } });
    expectProblem(
      await api.raw('POST', '/v1/jobs', { body: big, headers: { 'content-type': 'application/json' } }),
      413,
    );
  });

  it('415 for a body that is not JSON, on every write route', async () => {
    for (const [method, path] of [
      ['POST', '/v1/jobs'],
      ['POST', '/v1/batches'],
      ['PUT', '/v1/queue/config'],
    ] as const) {
      const a = await s.api
        .as(ADMIN)
        .raw(method, path, { body: 'type=noop', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
      expectProblem(a, 415);
    }
  });

  it('400 for malformed JSON and for a malformed URL', async () => {
    for (const body of ['{', '{"type":"noop"', '{"type":"noop",}', '\u0000']) {
      const p = expectProblem(
        await api.raw('POST', '/v1/jobs', { body, headers: { 'content-type': 'application/json' } }),
        400,
      );
      expect(p.detail).toMatch(/JSON/);
    }
    const r = await rawRequest(
      port,
      `GET /v1/jobs/%E0%A4%A HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${CLIENT}\r\n\r\n`,
    );
    expectProblem(asAnswer(r), 400);
    // A request the HTTP parser cannot read at all.
    expectProblem(asAnswer(await rawRequest(port, `GET / HTTP/1.1\r\nHost x\r\n\r\n`)), 400);
  });

  it('404 for an unknown route, inside /v1 and outside', async () => {
    expect(expectProblem(await api.json('GET', '/v1/nothing-here'), 404).type).toBe('urn:gantry:problem:not-found');
    expectProblem(await api.as(null).json('GET', '/nothing-here'), 404);
    expectProblem(await api.json('POST', '/v1/jobs/x/y/z', {}), 404);
  });

  it('405 with Allow for a known path and another method', async () => {
    const cases: [string, string, string[]][] = [
      ['DELETE', '/v1/jobs', ['GET', 'HEAD', 'POST']],
      ['PUT', '/v1/jobs/01ABCDEFGHJKMNPQRSTVWXYZ00', ['GET', 'HEAD']],
      ['GET', '/v1/jobs/01ABCDEFGHJKMNPQRSTVWXYZ00/cancel', ['POST']],
      ['PATCH', '/v1/queue/config', ['PUT']],
    ];
    for (const [method, path, allow] of cases) {
      const a = await s.api.as(ADMIN).raw(method, path);
      const p = expectProblem(a, 405);
      expect(p.type).toBe('urn:gantry:problem:method-not-allowed');
      expect(
        a.headers
          .get('allow')
          ?.split(',')
          .map((m) => m.trim())
          .sort(),
      ).toEqual(allow.sort());
    }
    // Outside /v1 too, and before authentication only where the route needs none.
    expectProblem(await api.as(null).raw('POST', '/healthz'), 405);
    expectProblem(await api.as(null).raw('DELETE', '/v1/jobs'), 401);
  });
});
