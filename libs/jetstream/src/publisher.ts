/**
 * Durable publishes with a producer span and W3C trace context in the headers, over the connection's reply mux
 * (reply-mux.ts) instead of nc.request: the same acks and errors as `js.publish`.
 */
import type { JetStreamClient, PubAck } from '@nats-io/jetstream';
import {
  ATTR,
  contextFromTraceparent,
  idOnlyChildTrace,
  inLeafSpan,
  injectTrace,
  publishAttributes,
  SpanKind,
  spansRecorded,
  type Attributes,
  type Context,
  type StoredTrace,
} from '@gantry/telemetry';
import { encodeJson } from './codec';
import { jsPublish } from './js-requests';
import { PublishHeaders } from './publish-headers';

export interface PublishOptions {
  /** `Nats-Msg-Id`: the broker drops a repeat within the stream's duplicate window. */
  msgID?: string;
  /** Compare-and-set: the publish fails unless the stream's / subject's last sequence is this. */
  expect?: { lastSequence?: number; lastSubjectSequence?: number };
  headers?: Record<string, string>;
  /** Parent of the producer span; the active context when absent. */
  parent?: Context;
  /** A stored trace context (a job record's `traceparent`) as the parent, in place of `parent`. */
  parentTrace?: StoredTrace;
  /** The span's own attributes; as a function, built only when spans are recorded. */
  attributes?: Attributes | (() => Attributes);
  timeoutMs?: number;
  /** Span name; `<subject> publish` when absent. */
  spanName?: string;
}

export function publishJson(
  js: JetStreamClient,
  subject: string,
  data: unknown,
  o: PublishOptions = {},
): Promise<PubAck> {
  let payload: Uint8Array;
  try {
    payload = encodeJson(data);
  } catch (err) {
    // A value JSON cannot encode is a rejection, as it always was, never a throw at the call.
    return Promise.reject(err as Error);
  }
  return publishEncoded(js, subject, payload, o);
}

/** {@link publishJson} of a payload already encoded (e.g. JSON assembled from parts encoded once). */
export async function publishEncoded(
  js: JetStreamClient,
  subject: string,
  payload: Uint8Array,
  o: PublishOptions = {},
): Promise<PubAck> {
  const recorded = spansRecorded();
  if (!recorded) {
    // Nothing is recorded: what the span would be is the trace context it propagates, written without building it.
    const t = idOnlyChildTrace(o.parentTrace ?? o.parent);
    if (t) {
      const h = headersOf(o);
      h.set('traceparent', t.traceparent);
      if (t.tracestate !== undefined) h.set('tracestate', t.tracestate);
      return jsPublish(js, subject, payload, requestOptions(h, o));
    }
  }
  // Id-only spans keep no attributes: not built at all (two object spreads per publish).
  const attributes = recorded
    ? publishAttributes(subject, {
        ...(o.msgID ? { [ATTR.messageId]: o.msgID } : {}),
        ...(typeof o.attributes === 'function' ? o.attributes() : o.attributes),
      })
    : undefined;
  const parent = o.parentTrace ? contextFromTraceparent(o.parentTrace.traceparent, o.parentTrace.tracestate) : o.parent;
  return inLeafSpan(
    o.spanName ?? `${subject} publish`,
    { kind: SpanKind.PRODUCER, ...(attributes ? { attributes } : {}), ...(parent ? { parent } : {}) },
    async (_span, ctx) => {
      const h = headersOf(o);
      injectTrace(h, ctx);
      return jsPublish(js, subject, payload, requestOptions(h, o));
    },
  );
}

function headersOf(o: PublishOptions): PublishHeaders {
  const h = new PublishHeaders();
  if (o.headers) for (const k in o.headers) h.set(k, o.headers[k]!);
  return h;
}

/** Our own request path (js-requests.ts): js.publish's nc.request builds an Error per answered request. */
function requestOptions(headers: PublishHeaders, o: PublishOptions) {
  return {
    headers,
    ...(o.msgID ? { msgID: o.msgID } : {}),
    ...(o.expect ? { expect: o.expect } : {}),
    ...(o.timeoutMs ? { timeout: o.timeoutMs } : {}),
  };
}
