import { PayloadError } from '@gantry/contracts';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeJson(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

/**
 * Parses a JSON payload; an empty payload decodes as `undefined`. Throws SyntaxError on garbage. The type argument
 * is an unchecked cast, kept for tests: production code decodes through a declaration with {@link decodePayload}
 * (a lint rule refuses `decodeJson<T>` in apps' and libs' sources).
 */
export function decodeJson<T = unknown>(data: Uint8Array): T {
  if (data.length === 0) return undefined as T;
  return JSON.parse(decoder.decode(data)) as T;
}

/** Anything that checks a decoded payload: a channel (`CHANNELS.*`), or an RPC's request/reply check. */
export interface PayloadContract<T> {
  readonly name: string;
  parse(value: unknown): T;
}

/**
 * Decodes a payload through its contract: JSON, then the contract's check. Every failure is a {@link PayloadError}
 * naming the contract and what was wrong (a message that can never be processed, whoever reads it).
 */
export function decodePayload<T>(contract: PayloadContract<T>, data: Uint8Array): T {
  let value: unknown;
  try {
    value = decodeJson(data);
  } catch (err) {
    throw new PayloadError('', `JSON (${err instanceof Error ? err.message : String(err)})`, contract.name);
  }
  return contract.parse(value);
}
