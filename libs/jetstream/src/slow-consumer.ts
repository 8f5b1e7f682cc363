/**
 * Opening an ordered consumer whose creation is slow on the server.
 *
 * Creating a `DeliverLastPerSubject` consumer makes nats-server walk every subject of the stream before it answers:
 * 4.3–4.9 s at 1M job subjects on 2.9.10, against the client's 5 s default API timeout (ARCHITECTURE.md, "JetStream
 * traps"). A timed-out create is not a failed one: the server carries on and leaves a live consumer behind. And on
 * 2.9 the API call is handled on the connection's read loop, so everything else the process sends on that connection
 * waits behind it (a leader lease renewal, a dispatch). Hence:
 *
 * - the caller gives this call a connection of its own ({@link NatsHandle.sibling}) — the ordered consumer then
 *   lives on it, since its pulls and deliveries must use the connection it was created on;
 * - each attempt has a long API timeout of its own, growing from one attempt to the next;
 * - after a timeout the next attempt follows after a backoff; once one succeeds, the consumers the timed-out attempts
 *   may have left are deleted (their names are known: one name prefix per attempt). Ordered consumers are also
 *   created with a 5-minute inactive threshold, so an orphan the delete missed (the connection dropped meanwhile) is
 *   removed by the server.
 */
import { errors as coreErrors, nuid } from '@nats-io/nats-core';
import {
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  type Consumer,
  type OrderedConsumerOptions,
} from '@nats-io/jetstream';
import type { Logger } from '@gantry/telemetry';
import { sleep } from './async';
import { Backoff } from './backoff';
import type { NatsHandle } from './connection';

export interface SlowConsumerOptions {
  /** API timeout of each attempt; attempts past the end reuse the last one. Default 60 s, then 120 s, then 240 s. */
  timeoutsMs?: readonly number[];
  /** How many attempts before giving up (the error is thrown). Default 5. */
  attempts?: number;
  /** Pause before attempt n (n ≥ 2). Default 1 s doubling, at most 30 s. */
  backoffMs?: (attempt: number) => number;
  /** Called after an attempt timed out (tests and metrics). */
  onTimeout?: (attempt: number, timeoutMs: number) => void;
  /** Names the consumers `<prefix>-a<attempt>_<serial>`; a fresh random prefix by default. */
  namePrefix?: string;
  logger: Logger;
  /** For the log lines: what the consumer is for. */
  what: string;
}

const DEFAULT_TIMEOUTS_MS = [60_000, 120_000, 240_000];

function isTimeout(err: unknown): boolean {
  if (err instanceof coreErrors.TimeoutError) return true;
  // The JetStream client wraps a request's timeout in a RequestError whose cause is the TimeoutError.
  return err instanceof Error && err.cause instanceof coreErrors.TimeoutError;
}

/** The name the client gives the first server-side consumer of an ordered consumer with this prefix. */
export function orderedConsumerName(prefix: string): string {
  return `${prefix}_1`;
}

/**
 * Opens an ordered consumer on `nats`'s connection, retrying a create that timed out (see the file comment).
 * Errors other than a timeout (stream not found, a bad config) are thrown at once.
 */
export async function openSlowOrderedConsumer(
  nats: NatsHandle,
  stream: string,
  opts: Partial<OrderedConsumerOptions>,
  o: SlowConsumerOptions,
): Promise<Consumer> {
  const timeouts = o.timeoutsMs ?? DEFAULT_TIMEOUTS_MS;
  const attempts = o.attempts ?? 5;
  // 1 s before the second attempt, doubling up to 30 s.
  const delays = new Backoff({ initialMs: 1_000, maxMs: 30_000, jitter: false });
  const backoff = o.backoffMs ?? (() => delays.next());
  const base = o.namePrefix ?? `oc_${nuid.next()}`;
  const timedOut: string[] = [];
  // Deleted once an attempt succeeded (or the last one failed): the server handles the requests of one connection
  // in order, so by then the create each of them follows has been carried out.
  const deleteOrphans = async () => {
    for (const name of timedOut.splice(0)) await deleteOrphan(nats, stream, name, timeouts.at(-1)!, o.logger);
  };
  for (let attempt = 1; ; attempt++) {
    const timeout = timeouts[Math.min(attempt, timeouts.length) - 1]!;
    const prefix = `${base}-a${attempt}`;
    const started = Date.now();
    try {
      const js = jetstream(nats.nc, { timeout });
      const consumer = await js.consumers.get(stream, { ...opts, name_prefix: prefix });
      o.logger.info({ what: o.what, attempt, ms: Date.now() - started }, 'slow consumer created');
      await deleteOrphans();
      return consumer;
    } catch (err) {
      if (!isTimeout(err)) {
        await deleteOrphans();
        throw err;
      }
      timedOut.push(orderedConsumerName(prefix));
      o.onTimeout?.(attempt, timeout);
      o.logger.warn(
        { what: o.what, attempt, timeoutMs: timeout, stream },
        'creating the consumer timed out; retrying (what the server may still create is deleted afterwards)',
      );
      if (attempt >= attempts) {
        await deleteOrphans();
        throw err;
      }
      await sleep(backoff(attempt + 1));
    }
  }
}

async function deleteOrphan(
  nats: NatsHandle,
  stream: string,
  name: string,
  timeoutMs: number,
  logger: Logger,
): Promise<void> {
  try {
    // On the same connection, so the server handles it after the create it follows.
    const jsm = await jetstreamManager(nats.nc, { timeout: timeoutMs, checkAPI: false });
    await jsm.consumers.delete(stream, name);
    logger.info({ stream, consumer: name }, 'deleted the consumer a timed-out create left behind');
  } catch (err) {
    if (err instanceof JetStreamApiError && err.status === 404) return; // the create never happened
    logger.warn({ err, stream, consumer: name }, 'could not delete an orphaned consumer; the server expires it');
  }
}
