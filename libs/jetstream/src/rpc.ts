/** Core NATS request/reply with a JSON envelope ({@link RpcReply}), trace headers and clear failures. */
import { headers as natsHeaders, type Msg, type NatsConnection } from '@nats-io/transport-node';
import type { RpcReply } from '@gantry/contracts';
import { inSpan, injectTrace, SpanKind, ATTR, type Context } from '@gantry/telemetry';
import { decodeJson, encodeJson } from './codec';
import { RpcError, RpcUnavailableError } from './errors';

export async function rpcRequest<T>(
  nc: NatsConnection,
  subject: string,
  payload: unknown,
  options: { timeoutMs: number; parent?: Context },
): Promise<T> {
  return inSpan(
    `${subject} request`,
    {
      kind: SpanKind.CLIENT,
      attributes: { [ATTR.system]: 'nats', [ATTR.destination]: subject, [ATTR.operation]: 'send' },
      ...(options.parent ? { parent: options.parent } : {}),
    },
    async () => {
      const h = natsHeaders();
      injectTrace(h);
      let reply: Msg;
      try {
        reply = await nc.request(subject, encodeJson(payload ?? {}), { timeout: options.timeoutMs, headers: h });
      } catch (err) {
        throw new RpcUnavailableError(subject, { cause: err });
      }
      const body = decodeJson<RpcReply<T>>(reply.data);
      if (!body || typeof body !== 'object' || !('ok' in body))
        throw new RpcUnavailableError(subject, { cause: new Error('malformed reply') });
      if (body.ok) return body.data;
      throw new RpcError(body.error.status, body.error.title, body.error.detail);
    },
  );
}

export function replyOk(msg: Msg, data: unknown): void {
  msg.respond(encodeJson({ ok: true, data } satisfies RpcReply<unknown>));
}

export function replyError(msg: Msg, status: number, title: string, detail: string): void {
  msg.respond(encodeJson({ ok: false, error: { status, title, detail } } satisfies RpcReply<unknown>));
}
