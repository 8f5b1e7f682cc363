/** Core NATS request/reply with a JSON envelope ({@link RpcReply}), trace headers and clear failures. */
import { headers as natsHeaders, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { PayloadError, anyJson, bool, int, literal, object, str, type Rpc, type RpcReply } from '@gantry/contracts';
import { inSpan, injectTrace, SpanKind, ATTR, type Context } from '@gantry/telemetry';
import { decodeJson, encodeJson } from './codec';
import { RpcError, RpcUnavailableError } from './errors';

export interface RpcCallOptions {
  timeoutMs: number;
  parent?: Context;
}

const okReply = object<{ ok: true; data: unknown }>({ ok: literal(true), data: anyJson });
const errorReply = object<{ ok: false; error: { status: number; title: string; detail: string } }>({
  ok: literal(false),
  error: object<{ status: number; title: string; detail: string }>({ status: int, title: str, detail: str }),
});
/** The reply envelope, told apart by its boolean `ok`. */
function parseEnvelope(value: unknown): RpcReply<unknown> {
  const ok = object<{ ok: boolean }>({ ok: bool })(value, '').ok;
  return ok ? okReply(value, '') : errorReply(value, '');
}

/**
 * Sends a request and returns the `data` of an ok reply, unchecked (the type argument is a cast, kept for tests and
 * the generic client proxy). Production code calls {@link rpcCall}, which checks the reply against its declaration. Throws {@link RpcUnavailableError} when nobody answers or the reply is not an
 * envelope, {@link RpcError} for an error reply.
 */
export async function rpcRequest<T = unknown>(
  nc: NatsConnection,
  subject: string,
  payload: unknown,
  options: RpcCallOptions,
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
      let body: RpcReply<unknown>;
      try {
        body = parseEnvelope(decodeJson(reply.data));
      } catch (err) {
        throw new RpcUnavailableError(subject, { cause: new Error('malformed reply', { cause: err }) });
      }
      if (body.ok) return body.data as T;
      throw new RpcError(body.error.status, body.error.title, body.error.detail);
    },
  );
}

/**
 * Calls a declared RPC: sends `request` on its subject and checks the reply against the declaration. A reply that
 * fails the check (a server of another contract version) is an {@link RpcError} 502 naming the bad field.
 * An `undefined` request sends `{}` (operations that take none; {@link RpcClient} allows it only for those).
 */
export async function rpcCall<Req, Res>(
  nc: NatsConnection,
  rpc: Rpc<Req, Res>,
  request: Req | undefined,
  options: RpcCallOptions,
): Promise<Res> {
  const data = await rpcRequest<unknown>(nc, rpc.subject, request, options);
  try {
    return rpc.parseReply(data);
  } catch (err) {
    if (!(err instanceof PayloadError)) throw err;
    throw new RpcError(502, 'Bad gateway', `the reply does not match its contract (${err.message})`);
  }
}

export function replyOk(msg: Msg, data: unknown): void {
  msg.respond(encodeJson({ ok: true, data } satisfies RpcReply<unknown>));
}

export function replyError(msg: Msg, status: number, title: string, detail: string): void {
  msg.respond(encodeJson({ ok: false, error: { status, title, detail } } satisfies RpcReply<unknown>));
}
