/**
 * Durable publishes with a producer span and W3C trace context in the headers, over the connection's reply mux
 * (reply-mux.ts) instead of nc.request: the same acks and errors as `js.publish`.
 */
import type { JetStreamClient, PubAck } from '@nats-io/jetstream';
import {
  ATTR,
  inSpan,
  injectTrace,
  publishAttributes,
  SpanKind,
  spansRecorded,
  type Attributes,
  type Context,
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
  attributes?: Attributes;
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
  // Id-only spans keep no attributes: not built at all (two object spreads per publish).
  const attributes = spansRecorded()
    ? publishAttributes(subject, { ...(o.msgID ? { [ATTR.messageId]: o.msgID } : {}), ...o.attributes })
    : undefined;
  return inSpan(
    o.spanName ?? `${subject} publish`,
    { kind: SpanKind.PRODUCER, ...(attributes ? { attributes } : {}), ...(o.parent ? { parent: o.parent } : {}) },
    async () => {
      const h = new PublishHeaders();
      if (o.headers) for (const k in o.headers) h.set(k, o.headers[k]!);
      injectTrace(h);
      // Our own request path (js-requests.ts): js.publish's nc.request builds an Error per answered request.
      return jsPublish(js, subject, payload, {
        headers: h,
        ...(o.msgID ? { msgID: o.msgID } : {}),
        ...(o.expect ? { expect: o.expect } : {}),
        ...(o.timeoutMs ? { timeout: o.timeoutMs } : {}),
      });
    },
  );
}
