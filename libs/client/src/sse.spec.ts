import { readSse, type SseEvent } from './sse.js';

/** A body that delivers `chunks` one read at a time, as a network would split it. */
function body(chunks: string[]): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  return new ReadableStream({
    pull(controller) {
      const next = chunks.shift();
      if (next === undefined) controller.close();
      else controller.enqueue(enc.encode(next));
    },
  });
}

async function all(chunks: string[]): Promise<SseEvent[]> {
  const out: SseEvent[] = [];
  for await (const e of readSse(body(chunks))) out.push(e);
  return out;
}

describe('readSse', () => {
  it('reads events split anywhere across chunks, skipping comments and retry lines', async () => {
    const text =
      'retry: 2000\n: events of job x\n\nid: 1\nevent: job.queued\ndata: {"a":1}\n\n: keepalive\n\nid: 2\nevent: job.started\ndata: {"b":2}\n\n';
    for (const size of [1, 3, 7, text.length]) {
      const chunks: string[] = [];
      for (let i = 0; i < text.length; i += size) chunks.push(text.slice(i, i + size));
      await expect(all(chunks)).resolves.toEqual([
        { id: '1', event: 'job.queued', data: '{"a":1}' },
        { id: '2', event: 'job.started', data: '{"b":2}' },
      ]);
    }
  });

  it('joins multi-line data, accepts CRLF and CR line ends, and defaults the event name', async () => {
    await expect(all(['data: one\r', '\ndata: two\r\n\r', '\n', 'data:three\r\r'])).resolves.toEqual([
      { event: 'message', data: 'one\ntwo' },
      { event: 'message', data: 'three' },
    ]);
  });

  it('drops an event the stream cut off before its blank line', async () => {
    await expect(
      all(['id: 1\nevent: job.queued\ndata: {}\n\nid: 2\nevent: job.started\ndata: {"cut']),
    ).resolves.toEqual([{ id: '1', event: 'job.queued', data: '{}' }]);
  });
});
