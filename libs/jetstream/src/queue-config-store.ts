/**
 * The runtime queue configuration in the config bucket (`CONFIG_KEYS.queue`): watched by every scheduler replica and
 * every gateway, written by the leading scheduler. Records are decoded with `parseQueueConfigRecord`, so a reader never
 * applies a record it does not understand, and updates are checked against `QUEUE_CONFIG_BOUNDS` before any write.
 */
import {
  BUCKETS,
  CONFIG_KEYS,
  parseQueueConfigRecord,
  parseQueueConfigUpdate,
  type QueueConfigRecord,
} from '@gantry/contracts';
import type { Logger } from '@gantry/telemetry';
import type { KV, KvEntry } from '@nats-io/kv';
import type { NatsHandle } from './connection';
import { encodeJson } from './codec';
import { isWrongLastSequence } from './errors';

/** Another writer kept winning the compare-and-set; nothing was written by this call. */
export class QueueConfigConflictError extends Error {
  override readonly name = 'QueueConfigConflictError';
  readonly code = 'QUEUE_CONFIG_CONFLICT';
  constructor(attempts: number) {
    super(`the queue config changed under ${attempts} update attempts in a row`);
  }
}

/** What an update may change. */
export type QueueConfigPatch = Partial<Pick<QueueConfigRecord, 'paused' | 'draining'>> & {
  maxConcurrentJobs?: number;
  maxQueueSize?: number;
};

const MAX_ATTEMPTS = 10;

export class QueueConfigStore {
  private stopWatch: (() => void) | undefined;
  private watching: Promise<void> | undefined;

  private constructor(
    private readonly kv: KV,
    private readonly logger: Logger,
  ) {}

  static async open(nats: NatsHandle, logger: Logger): Promise<QueueConfigStore> {
    return new QueueConfigStore(await nats.kvm.open(BUCKETS.config), logger);
  }

  /**
   * Calls `onChange` with the stored record (if any) and then every new one, until {@link stop}; resolves once the
   * watch is set up. A record that does not decode is logged and skipped (the last good one stays in force).
   */
  async watch(onChange: (c: QueueConfigRecord) => void): Promise<void> {
    const iter = await this.kv.watch({ key: CONFIG_KEYS.queue });
    this.stopWatch = () => iter.stop();
    this.watching = (async () => {
      try {
        for await (const e of iter) {
          if (e.operation !== 'PUT') continue;
          const c = this.decode(e);
          if (c) onChange(c);
        }
      } catch (err) {
        this.logger.error({ err }, 'queue config watch ended; config changes are no longer seen');
      }
    })();
  }

  /**
   * Applies `patch` to the stored record (or to `initial` when none is stored yet) with a compare-and-set, reading
   * again after a lost race; returns the record written. The caps are checked against `QUEUE_CONFIG_BOUNDS` first
   * (`InvalidQueueConfigError`, nothing written); {@link QueueConfigConflictError} after {@link MAX_ATTEMPTS} lost
   * races; any other error (NATS unreachable, a timeout) is thrown as it is.
   */
  async update(patch: QueueConfigPatch, initial: QueueConfigRecord, now: Date): Promise<QueueConfigRecord> {
    const caps = parseQueueConfigUpdate({
      maxConcurrentJobs: patch.maxConcurrentJobs,
      maxQueueSize: patch.maxQueueSize,
    });
    const flags = {
      ...(patch.paused !== undefined ? { paused: patch.paused } : {}),
      ...(patch.draining !== undefined ? { draining: patch.draining } : {}),
    };
    for (let i = 0; i < MAX_ATTEMPTS; i++) {
      const cur = await this.kv.get(CONFIG_KEYS.queue);
      const stored = cur?.operation === 'PUT' ? this.decode(cur) : undefined;
      const next: QueueConfigRecord = { ...(stored ?? initial), ...flags, ...caps, updatedAt: now.toISOString() };
      try {
        if (cur?.operation === 'PUT') await this.kv.update(CONFIG_KEYS.queue, encodeJson(next), cur.revision);
        else await this.kv.create(CONFIG_KEYS.queue, encodeJson(next));
        return next;
      } catch (err) {
        if (!isWrongLastSequence(err)) throw err;
        // Lost a race with another writer: read again.
      }
    }
    throw new QueueConfigConflictError(MAX_ATTEMPTS);
  }

  /** Ends the watch and waits for it to wind down. */
  async stop(): Promise<void> {
    this.stopWatch?.();
    await this.watching;
  }

  private decode(e: Pick<KvEntry, 'json' | 'revision'>): QueueConfigRecord | undefined {
    try {
      return parseQueueConfigRecord(e.json<unknown>());
    } catch (err) {
      this.logger.error({ err, revision: e.revision }, 'bad queue config record; the last good one stays in force');
      return undefined;
    }
  }
}
