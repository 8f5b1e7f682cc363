/**
 * A Server-Sent Events reader over `fetch` (not `EventSource`, which cannot send an `Authorization` header and does
 * not exist in Node). The format is the WHATWG one: `field: value` lines, a blank line ends an event, `:` lines are
 * comments. Written here rather than taken from a package because it is this small and must run unchanged in the
 * browser (the dashboard loads this file as-is) and in Node.
 */
export interface SseEvent {
  id?: string;
  event: string;
  data: string;
}

/** Yields the events of a `text/event-stream` body until it ends. */
export async function* readSse(body: ReadableStream<Uint8Array>): AsyncGenerator<SseEvent> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let id: string | undefined;
  let event = '';
  let data: string[] = [];
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        // The stream ended: a trailing CR is a whole line end after all.
        if (!buffer.endsWith('\r')) break;
        buffer += '\n';
      } else buffer += decoder.decode(value, { stream: true });
      let nl: number;
      while ((nl = buffer.search(/\r\n|\r|\n/)) >= 0) {
        // A CR at the very end may be the first half of a CRLF split across reads: wait for the next read.
        if (buffer[nl] === '\r' && nl === buffer.length - 1) break;
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + (buffer[nl] === '\r' && buffer[nl + 1] === '\n' ? 2 : 1));
        if (line === '') {
          if (data.length > 0)
            yield { ...(id !== undefined ? { id } : {}), event: event || 'message', data: data.join('\n') };
          event = '';
          data = [];
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (field === 'data') data.push(value);
        else if (field === 'event') event = value;
        else if (field === 'id') id = value;
      }
      if (done) break;
    }
  } finally {
    // The stream is over (or failed) already; cancelling only releases the body, whose own error adds nothing.
    await reader.cancel().catch(() => undefined);
  }
}
