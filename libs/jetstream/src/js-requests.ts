/**
 * `js.publish` and `jsm.direct.getMessage` over the connection's {@link ReplyMux} (why: reply-mux.ts). Each does
 * what the nats.js 3.4 method does (jsclient.js `_publish`/`publish`, jsm_direct.js `getMessage`) and returns the
 * same values and error classes: headers set as `buildPublishHeaders` sets them, the reply parsed by the client's own
 * `parseJsResponse` (JetStreamApiError and its subclasses), no responders as `JetStreamNotEnabled` for a publish and
 * a RequestError for a direct get, a timeout as `TimeoutError`. A client of another kind, or one whose method is
 * wrapped (as tests do to inject failures: a Proxy over `js.publish` or `jsm.direct.getMessage`), gets its own method.
 */
import { headers as natsHeaders, type MsgHdrs } from '@nats-io/nats-core';
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
  JetStreamClientImpl,
  JetStreamError,
  JetStreamStatus,
  jserrors,
  validateStreamName,
} from '@nats-io/jetstream/internal';
import { errors as natsErrors } from '@nats-io/nats-core';
import { replyMux } from './reply-mux';

export interface JsPublishOptions {
  headers?: MsgHdrs;
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
  if (!(js instanceof JetStreamClientImpl) || js.publish !== nativePublish) return js.publish(subject, payload, o);
  const h = o.headers ?? natsHeaders();
  if (o.msgID) h.set(PubHeaders.MsgIdHdr, o.msgID);
  if (typeof o.expect?.lastSequence === 'number') h.set(PubHeaders.ExpectedLastSeqHdr, `${o.expect.lastSequence}`);
  if (typeof o.expect?.lastSubjectSequence === 'number') {
    h.set(PubHeaders.ExpectedLastSubjectSequenceHdr, `${o.expect.lastSubjectSequence}`);
  }
  let reply;
  try {
    reply = await replyMux(js.nc, js.nc.options.inboxPrefix).request(subject, payload, {
      headers: h,
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
