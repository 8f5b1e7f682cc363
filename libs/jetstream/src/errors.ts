/**
 * Named errors with a stable `code` and a `cause`. Thrown from a message handler, they decide the message's fate:
 * {@link RetryLaterError} → `nak(delay)` (transient infrastructure trouble), {@link PoisonMessageError} → `term`
 * (the message can never be processed). Any other error is treated as transient and nak'ed with backoff.
 */
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { JetStreamStatusError, jserrors } from '@nats-io/jetstream/internal';
import { errors as natsErrors } from '@nats-io/nats-core';
import { RpcException } from '@nestjs/microservices';

/**
 * Nest's exception filter replaces any error a handler throws with `{ status: 'error', message: … }` unless it is an
 * RpcException, whose `getError()` it passes on. These errors return themselves, so the transport sees the original.
 */
abstract class TransportSignal extends RpcException {
  override getError(): object {
    return this;
  }
}

export class RetryLaterError extends TransportSignal {
  override readonly name = 'RetryLaterError';
  readonly code = 'RETRY_LATER';
  readonly delayMs: number;
  constructor(message: string, options: { delayMs: number; cause?: unknown }) {
    super(message);
    this.delayMs = options.delayMs;
    this.cause = options.cause;
  }
}

export class PoisonMessageError extends TransportSignal {
  override readonly name = 'PoisonMessageError';
  readonly code = 'POISON_MESSAGE';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message);
    this.cause = options.cause;
  }
}

export class ProvisionError extends Error {
  override readonly name = 'ProvisionError';
  readonly code = 'PROVISION_FAILED';
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { cause: options.cause });
  }
}

/**
 * The connected nats-server cannot give what the configuration asks for. Fatal at boot: retrying cannot help, so the
 * service exits with {@link UnsupportedServerError.exitCode} (69, EX_UNAVAILABLE) instead of 1 or a retry loop.
 */
export class UnsupportedServerError extends Error {
  override readonly name = 'UnsupportedServerError';
  readonly code = 'UNSUPPORTED_SERVER';
  readonly exitCode = 69;
  constructor(message: string) {
    super(message);
  }
}

/** A request/reply call got an error reply (it carries the HTTP status the caller should answer with). */
export class RpcError extends TransportSignal {
  override readonly name = 'RpcError';
  readonly code = 'RPC_ERROR';
  constructor(
    readonly status: number,
    readonly title: string,
    readonly detail: string,
  ) {
    super(`${title}: ${detail}`);
  }
}

/** Nobody answered a request/reply call in time (no responders, timeout, or NATS down). */
export class RpcUnavailableError extends Error {
  override readonly name = 'RpcUnavailableError';
  readonly code = 'RPC_UNAVAILABLE';
  constructor(
    readonly subject: string,
    options: { cause?: unknown } = {},
  ) {
    super(`no answer on ${subject}`, { cause: options.cause });
  }
}

/**
 * Server error codes (nats-server's `errors.json`) that `@nats-io/jetstream` does not name in `JetStreamApiCodes`.
 * Errors are told apart by these codes, never by their text.
 */
const SERVER_CODES = {
  /** JSStreamNameExistErr: "stream name already in use with a different configuration". */
  StreamNameInUse: 10058,
  /** JSConsumerNameExistErr: "consumer name already in use". */
  ConsumerNameInUse: 10013,
  /** JSConsumerAlreadyExists: "consumer already exists". */
  ConsumerAlreadyExists: 10148,
} as const;

function apiCode(err: unknown): number | undefined {
  return err instanceof JetStreamApiError ? err.code : undefined;
}

/**
 * A compare-and-set publish (Nats-Expected-Last-[Subject-]Sequence) lost the race; for a KV bucket, `create` of a key
 * that exists (the client rejects with the same codes).
 */
export function isWrongLastSequence(err: unknown): boolean {
  const code = apiCode(err);
  return (
    code === JetStreamApiCodes.StreamWrongLastSequence || code === JetStreamApiCodes.StreamWrongLastSequenceUnknown
  );
}

/** The server answered 404: no such stream, consumer or message. */
export function isNotFound(err: unknown): boolean {
  return err instanceof JetStreamApiError && err.status === 404;
}

/** A stream or consumer of that name exists already (another replica created it first). */
export function isAlreadyExists(err: unknown): boolean {
  const code = apiCode(err);
  return (
    code === SERVER_CODES.StreamNameInUse ||
    code === SERVER_CODES.ConsumerNameInUse ||
    code === SERVER_CODES.ConsumerAlreadyExists
  );
}

/**
 * The broker could not be reached or did not answer: the connection is closed, draining or failing, a request timed
 * out or had no responders, or JetStream itself is unavailable (`JetStreamNotEnabled` is how the client reads a 503
 * "no responders" to a JetStream publish on a cluster whose stream leader is down; a 503 API error is the server's
 * "JetStream system temporarily unavailable", a 503/408 status on a pull or direct get no responders or a request
 * timeout). Looked for along the `cause` chain, by class, never by message text.
 */
export function isNatsUnavailable(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (
      e instanceof natsErrors.ClosedConnectionError ||
      e instanceof natsErrors.DrainingConnectionError ||
      e instanceof natsErrors.ConnectionError ||
      e instanceof natsErrors.RequestError ||
      e instanceof natsErrors.TimeoutError ||
      e instanceof natsErrors.NoRespondersError ||
      e instanceof jserrors.JetStreamNotEnabled ||
      (e instanceof JetStreamApiError && e.status === 503) ||
      (e instanceof JetStreamStatusError && (e.code === 503 || e.code === 408))
    )
      return true;
  }
  return false;
}
