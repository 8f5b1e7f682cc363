/**
 * `js.publish`, `jsm.direct.getMessage` and `jsm.streams.getMessage` over the connection's {@link ReplyMux} (why: reply-mux.ts). Each does
 * what the nats.js 3.4 method does (jsclient.js `_publish`/`publish`, jsm_direct.js `getMessage`) and returns the
 * same values and error classes: headers set as `buildPublishHeaders` sets them, the reply parsed by the client's own
 * `parseJsResponse` (JetStreamApiError and its subclasses), no responders as `JetStreamNotEnabled` for a publish and
 * a RequestError for a direct get, a timeout as `TimeoutError`. A client of another kind, or one whose method is
 * wrapped (as tests do to inject failures: a Proxy over `js.publish` or `jsm.direct.getMessage`), gets its own method.
 */
import type { MsgHdrs } from '@nats-io/nats-core';
import {
  PubHeaders,
  type StoredMsg,
  type DirectMsgRequest,
  type DirectStreamAPI,
  type JetStreamClient,
  type JetStreamManager,
  type PubAck,
} from '@nats-io/jetstream';
import {
  BaseApiClientImpl,
  DirectMsgImpl,
  JetStreamApiCodes,
  JetStreamApiError,
  JetStreamClientImpl,
  JetStreamError,
  JetStreamStatus,
  jserrors,
  validateStreamName,
} from '@nats-io/jetstream/internal';
import { errors as natsErrors } from '@nats-io/nats-core';
import { PublishHeaders } from './publish-headers';
import { replyMux } from './reply-mux';

export interface JsPublishOptions {
  /** nats.js's own, or (cheaper to build) {@link PublishHeaders}. */
  headers?: MsgHdrs | PublishHeaders;
  msgID?: string;
  expect?: { lastSequence?: number; lastSubjectSequence?: number };
  /** Milliseconds; the client's own timeout when absent. */
  timeout?: number;
}

const EMPTY = new Uint8Array(0);
const nativePublish = JetStreamClientImpl.prototype.publish;

/** `js.publish(subject, payload, o)` without nc.request. */
export async function jsPublish(
  js: JetStreamClient,
  subject: string,
  payload: Uint8Array = EMPTY,
  o: JsPublishOptions = {},
): Promise<PubAck> {
  if (!(js instanceof JetStreamClientImpl) || js.publish !== nativePublish) {
    const { headers, ...rest } = o;
    const h = headers instanceof PublishHeaders ? headers.toMsgHdrs() : headers;
    return js.publish(subject, payload, { ...rest, ...(h ? { headers: h } : {}) });
  }
  const h = o.headers ?? new PublishHeaders();
  if (o.msgID) h.set(PubHeaders.MsgIdHdr, o.msgID);
  if (typeof o.expect?.lastSequence === 'number') h.set(PubHeaders.ExpectedLastSeqHdr, `${o.expect.lastSequence}`);
  if (typeof o.expect?.lastSubjectSequence === 'number') {
    h.set(PubHeaders.ExpectedLastSubjectSequenceHdr, `${o.expect.lastSubjectSequence}`);
  }
  let reply;
  try {
    reply = await replyMux(js.nc, js.nc.options.inboxPrefix).request(subject, payload, {
      // No header at all: a plain PUB (nats.js would send an HPUB with an empty header block).
      headers: h instanceof PublishHeaders ? (h.size > 0 ? h.forPublish() : undefined) : h,
      timeoutMs: o.timeout || js.timeout,
    });
  } catch (err) {
    // A publish nobody answers: no stream captures the subject (or its leader is gone).
    if (err instanceof natsErrors.RequestError && err.isNoResponders()) {
      throw new jserrors.JetStreamNotEnabled('jetstream is not enabled', { cause: err });
    }
    throw err;
  }
  const pa = js.parseJsResponse(reply) as PubAck;
  if (pa.stream === '') throw new JetStreamError('invalid ack response');
  pa.duplicate = pa.duplicate ? pa.duplicate : false;
  return pa;
}

/** `jsm.direct.getMessage(stream, query)` without nc.request: the message, or null when the stream has none. */
export async function directGet(
  jsm: JetStreamManager,
  stream: string,
  query: DirectMsgRequest,
): Promise<StoredMsg | null> {
  const api = jsm.direct;
  if (
    !(api instanceof BaseApiClientImpl) ||
    api.getMessage !== (Object.getPrototypeOf(api) as DirectStreamAPI).getMessage ||
    'start_time' in query
  ) {
    return api.getMessage(stream, query);
  }
  validateStreamName(stream);
  // By subject, the subject goes into the request subject (so permissions can be set per subject), as nats.js does.
  const last = 'last_by_subj' in query ? query.last_by_subj : undefined;
  const pre = api.opts.apiPrefix || '$JS.API';
  const subject = last ? `${pre}.DIRECT.GET.${stream}.${last}` : `${pre}.DIRECT.GET.${stream}`;
  const payload = last ? EMPTY : new TextEncoder().encode(JSON.stringify(query));
  const r = await replyMux(api.nc, api.nc.options.inboxPrefix).request(subject, payload, { timeoutMs: api.timeout });
  if (r.headers?.code !== 0) {
    const status = new JetStreamStatus(r);
    if (status.isMessageNotFound()) return null;
    throw status.toError();
  }
  return new DirectMsgImpl(r);
}

/** What a read from the stream leader gives: the message's subject, sequence, payload and time. */
export interface LeaderMsg {
  readonly subject: string;
  readonly seq: number;
  readonly data: Uint8Array;
  readonly time: Date;
}

interface MsgGetReply {
  message: { subject: string; seq: number; data?: string; time: string };
}

const fromStored = (m: StoredMsg): LeaderMsg => ({ subject: m.subject, seq: m.seq, data: m.data, time: m.time });

/**
 * `jsm.streams.getMessage(stream, query)` (STREAM.MSG.GET, answered by the stream leader: what a compare-and-set reads
 * first) without nc.request: the message, or null for the server's "no message found" (JetStreamApiCodes.NoMessageFound),
 * as nats.js answers; every other error is the client's own (`parseJsResponse`; no responders as `JetStreamNotEnabled`,
 * as its `_request` maps it). Headers are not decoded: the callers (the job store) read the payload and sequence only.
 */
export async function leaderGet(
  jsm: JetStreamManager,
  stream: string,
  query: { last_by_subj: string } | { seq: number },
): Promise<LeaderMsg | null> {
  const api = jsm.streams;
  if (!(api instanceof BaseApiClientImpl) || api.getMessage !== (Object.getPrototypeOf(api) as typeof api).getMessage) {
    const m = await api.getMessage(stream, query);
    return m ? fromStored(m) : null;
  }
  validateStreamName(stream);
  const pre = api.opts.apiPrefix || '$JS.API';
  let reply;
  try {
    reply = await replyMux(api.nc, api.nc.options.inboxPrefix).request(
      `${pre}.STREAM.MSG.GET.${stream}`,
      new TextEncoder().encode(JSON.stringify(query)),
      { timeoutMs: api.timeout },
    );
  } catch (err) {
    if (err instanceof natsErrors.RequestError && err.isNoResponders()) {
      throw new jserrors.JetStreamNotEnabled('jetstream is not enabled', { cause: err });
    }
    throw err;
  }
  let r: MsgGetReply;
  try {
    r = api.parseJsResponse(reply) as MsgGetReply;
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.NoMessageFound) return null;
    throw err;
  }
  const m = r.message;
  const data = m.data ? Buffer.from(m.data, 'base64') : EMPTY;
  return { subject: m.subject, seq: m.seq, data, time: new Date(m.time) };
}
