/**
 * The headers of one outgoing publish, kept as two arrays and written to the wire once. nats.js's `MsgHdrsImpl`
 * re-validates the key of every `set` character by character, copies its key list to scan it (`findKeys`) twice per
 * `set`, builds a RegExp to check each value and a Map entry holding an array per key: with the 2–4 headers of each
 * record write (trace context, `Nats-Msg-Id`, the compare-and-set's expected sequence) that was 8.5 % of the gateway's
 * self time and 3 % of the worker's (docs/performance.md, "Headers written once").
 *
 * The wire text is byte for byte what nats.js writes for the same calls (`NATS/1.0`, then `\r\nKey: value` per header
 * in the order set, then `\r\n\r\n`; keys as given, values trimmed), and what it refuses is refused the same way: a
 * key with a character outside `!`–`~` or a `:`, a value with CR or LF (InvalidArgumentError). `nc.publish` uses
 * nothing of a header object but `encode()`; trace propagation uses `get`/`set`/`keys`. A client whose `publish` is
 * wrapped (tests' fault injection) gets a real `MsgHdrs` from {@link PublishHeaders.toMsgHdrs}.
 */
import { errors as natsErrors, headers as natsHeaders, type MsgHdrs } from '@nats-io/nats-core';

const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);

function checkKey(k: string): void {
  if (k.length === 0) throw natsErrors.InvalidArgumentError.format('header', 'keys cannot be empty');
  for (let i = 0; i < k.length; i++) {
    const c = k.charCodeAt(i);
    if (c === 58 || c < 33 || c > 126) {
      throw natsErrors.InvalidArgumentError.format('header', `'${k[i]}' is not a valid character in a header name`);
    }
  }
}

function checkedValue(v: string): string {
  if (v.includes('\r') || v.includes('\n')) {
    throw natsErrors.InvalidArgumentError.format('header', 'values cannot contain \\r or \\n');
  }
  return v.trim();
}

export class PublishHeaders {
  private readonly names: string[] = [];
  private readonly values: string[] = [];

  /** Sets `key` (exact match) to one value; a key set again moves to the end, as nats.js's delete-then-append. */
  set(key: string, value: string): void {
    checkKey(key);
    const v = checkedValue(value);
    const i = this.names.indexOf(key);
    if (i >= 0) {
      this.names.splice(i, 1);
      this.values.splice(i, 1);
    }
    this.names.push(key);
    this.values.push(v);
  }

  /** The value of `key` (exact match), or `''` when it has none (as `MsgHdrs.get`). */
  get(key: string): string {
    const i = this.names.indexOf(key);
    return i >= 0 ? this.values[i]! : '';
  }

  keys(): string[] {
    return this.names.slice();
  }

  get size(): number {
    return this.names.length;
  }

  /** The wire form `nc.publish` sends (empty when there is no header, as nats.js). */
  encode(): Uint8Array {
    if (this.names.length === 0) return EMPTY;
    let s = 'NATS/1.0';
    for (let i = 0; i < this.names.length; i++) s += `\r\n${this.names[i]}: ${this.values[i]}`;
    return encoder.encode(`${s}\r\n\r\n`);
  }

  /** The same headers as nats.js's own object, for code that needs all of `MsgHdrs`. */
  toMsgHdrs(): MsgHdrs {
    const h = natsHeaders();
    for (let i = 0; i < this.names.length; i++) h.set(this.names[i]!, this.values[i]!);
    return h;
  }

  /**
   * This object where `nc.publish` takes a `MsgHdrs`: it reads only `encode()` of it (nats-core `ProtocolHandler.publish`,
   * which `PublishHeaders` provides with the same bytes); never handed to code that reads headers.
   */
  forPublish(): MsgHdrs {
    return this as unknown as MsgHdrs;
  }
}
