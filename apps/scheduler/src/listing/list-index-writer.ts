/**
 * The newest-first listing index (`GET /v1/jobs`), written by the leader only (one writer, no contention).
 *
 * Jobs are filed per tenant in pages keyed by `floor(createSeq / BUCKET)` (createSeq: the stream sequence of the job's
 * first revision, i.e. acceptance order). A page holds, newest first, one compact entry per job —
 * [createSeq, id, status, type, priority, createdAtMs] — and links to the tenant's previous non-empty page, so a reader
 * walks newest to oldest touching only pages (never every job). Entries carry the current status, priority and type,
 * so filters need no record reads. Dirty pages are flushed every FLUSH_MS, followed by a checkpoint of the last
 * applied stream sequence; a new leader resumes from that checkpoint, re-applying at most one flush window
 * (idempotent: an entry is keyed by createSeq). Once it has caught up with the scheduler's projection it takes the
 * revisions the projection already decoded instead of reading the stream a second time.
 */
import {
  CHANNELS,
  BUCKETS,
  CONFIG_KEYS,
  STREAMS,
  SUBJECTS,
  type ListHead,
  type JobStatus,
  type Priority,
  type StoredJob,
} from '@gantry/contracts';
import {
  Backoff,
  decodePayload,
  encodeJson,
  jsPublish,
  openSlowOrderedConsumer,
  type NatsHandle,
} from '@gantry/jetstream';
import { decodeStored } from '@gantry/job-store';
import type { Logger } from '@gantry/telemetry';
import { DeliverPolicy, type ConsumerMessages } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { EncodedListPage } from './encoded-list-page';

export const LIST_BUCKET = 1_024;
/** While a sync waits, how often it checks whether the revisions it waits for still exist (retention may purge them). */
const GAP_CHECK_MS = 100;

/** The writer could not take in every revision up to the one asked for in time (it is catching up, or NATS is slow). */
export class ListingBehindError extends Error {
  override readonly name = 'ListingBehindError';
  constructor(
    readonly target: number,
    readonly applied: number,
  ) {
    super(`the listing index has applied revisions up to ${applied}, not yet ${target}`);
  }
}
const FLUSH_MS = 100;
// Pages kept in memory: the hot ones are each tenant's newest page and the oldest ones being dispatched. Bounded, since a
// page holds up to LIST_BUCKET entries (each kept as its JSON text, ~80–100 bytes; see EncodedListPage).
const CACHE_PAGES = 64;

export function listBucket(createSeq: number): number {
  return Math.floor(createSeq / LIST_BUCKET);
}

/**
 * Reading a listing page or head failed (NATS trouble). Not "no page": a writer that read it so started an empty page
 * and its next flush overwrote the real one, dropping its entries (until v1.1). The revision is applied again after a
 * backoff instead.
 */
export class ListingReadError extends Error {
  override readonly name = 'ListingReadError';
  readonly code = 'LISTING_READ_FAILED';
  constructor(subject: string, options: { cause: unknown }) {
    super(`cannot read ${subject}`, options);
  }
}

/**
 * Revisions the catch-up consumer asks for at once. Each one is a whole job record (up to MAX_JOB_BYTES of a tenant's
 * input and metadata), and the client holds a pull's messages until they are handled: with 1,024 (as before issue 15)
 * a catch-up over 64 KiB records held ~64 MB of buffers, over 200 KB records ~200 MB, past the scheduler's memory
 * budget. 50, as the projection's pulls (50 × 64 KiB ≈ 3.2 MB; see docs/performance.md).
 */
const CATCH_UP_PULL_MESSAGES = 50;

/**
 * What the index needs of a revision: a few short fields. The revisions waiting for their turn (the projection feeds
 * them faster than pages are read) are held in this form, not as whole records: a backlog of decoded records was
 * bounded by nothing but how far the writer lagged, and each one can be up to MAX_JOB_BYTES.
 */
export interface ListedRevision {
  revision: number;
  createSeq: number;
  id: string;
  tenant: string;
  status: JobStatus;
  type: string;
  priority: Priority;
  createdAtMs: number;
}

export function listedRevision(s: StoredJob): ListedRevision {
  const r = s.record;
  return {
    revision: s.revision,
    createSeq: r.createSeq ?? s.revision,
    id: r.id,
    tenant: r.tenant,
    status: r.status,
    type: r.type,
    priority: r.priority,
    createdAtMs: Date.parse(r.createdAt),
  };
}

/** Where the writer gets revisions once it has caught up: the scheduler's projection (decoded once). */
export interface ListingFeed {
  readonly lastApplied: number;
  subscribe(fn: (s: StoredJob) => void): () => void;
}

export class ListIndexWriter {
  private messages: ConsumerMessages | undefined;
  private readonly pages = new Map<string, EncodedListPage>();
  private readonly dirty = new Set<string>();
  /**
   * Pages being written by a flush (no longer dirty, not yet stored). Never evicted: a failed flush marks them dirty
   * again and needs them, and a page evicted before its write landed would be read back without its new entries.
   */
  private readonly writing = new Set<string>();
  private readonly heads = new Map<string, number>();
  private readonly dirtyHeads = new Set<string>();
  private lastSeq = 0;
  private checkpointed = 0;
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private config: KV | undefined;
  private fed = false;
  private applying: Promise<void> = Promise.resolve();
  private stopped = false;
  private abandoned = false;
  private readonly readBackoff = new Backoff({ initialMs: 100, maxMs: 5_000 });
  private catchingUp: Promise<void> | undefined;
  private unsubscribe: (() => void) | undefined;
  private readonly waiters = new Set<{ seq: number; resolve: () => void }>();
  /** A flush asked for by syncs and not started yet: later syncs join it instead of queueing another. */
  private nextFlush: Promise<void> | undefined;
  /** The catch-up consumer's own connection (see start). */
  private conn: NatsHandle | undefined;

  constructor(
    private readonly nats: NatsHandle,
    private readonly logger: Logger,
    private readonly feed: ListingFeed,
  ) {}

  async start(): Promise<void> {
    this.config = await this.nats.kvm.open(BUCKETS.config);
    // A read error fails the start (and so the takeover), rather than rebuilding from sequence 0.
    const cp = await this.config.get(CONFIG_KEYS.listCheckpoint);
    const from = cp?.operation === 'PUT' ? Number(cp.string()) || 0 : 0;
    this.lastSeq = from;
    this.checkpointed = from;
    this.unsubscribe = this.feed.subscribe((s) => {
      if (!this.fed) return; // the catch-up consumer delivers it
      const l = listedRevision(s);
      this.applying = this.applying.then(() => this.applyOnce(l));
    });
    if (from >= this.feed.lastApplied) {
      this.fed = true;
    } else {
      // Behind the projection (a checkpoint from the previous leader): read the stream from the checkpoint until this
      // writer has applied everything the projection has, then switch to the projection's feed.
      // Creating a consumer filtered on every job subject is slow with many jobs (the server counts what is pending
      // across all subjects: seconds at 1M on 2.9) and on 2.9 holds up the rest of its connection — here the leader's
      // lease renewals. Like the projection's rebuild consumer: a connection of its own, long timeouts, retries.
      this.conn = await this.nats.sibling('listing');
      const consumer = await openSlowOrderedConsumer(
        this.conn,
        STREAMS.jobs,
        {
          filter_subjects: SUBJECTS.jobsAll,
          ...(from > 0
            ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: from + 1 }
            : { deliver_policy: DeliverPolicy.All }),
        },
        { logger: this.logger, what: 'listing index catch-up' },
      );
      this.messages = await consumer.consume({ max_messages: CATCH_UP_PULL_MESSAGES });
      this.catchingUp = (async () => {
        for await (const m of this.messages!) {
          await this.applyOnce(listedRevision(decodeStored(m)));
          // Checked synchronously after the await: any revision the projection applied meanwhile is still ahead of
          // lastSeq, so the consumer delivers it before the switch.
          if (this.lastSeq >= this.feed.lastApplied) {
            this.fed = true;
            this.logger.info({ seq: this.lastSeq }, 'listing index caught up; following the projection');
            break;
          }
        }
      })();
      void this.catchingUp.finally(
        () =>
          void this.messages
            ?.close()
            // Caught up: the consumer is done with either way (a failed close expires on the server).
            .catch(() => undefined)
            .then(() => this.conn?.drain()),
      );
    }
    this.timer = setInterval(() => void this.flush(), FLUSH_MS);
    this.logger.info({ from, fed: this.fed }, 'listing index writer started');
  }

  private async applyOnce(s: ListedRevision): Promise<void> {
    if (s.revision <= this.lastSeq || this.abandoned) return;
    for (;;) {
      try {
        await this.apply(s);
        this.readBackoff.reset();
        break;
      } catch (err) {
        if (err instanceof ListingReadError && !this.stopped) {
          // NATS trouble: the same revision again after a backoff (revisions stay in order behind it).
          const waitMs = this.readBackoff.next();
          this.logger.warn({ err, seq: s.revision, retryInMs: waitMs }, 'listing index: read failed; retrying');
          await new Promise((r) => setTimeout(r, waitMs));
          continue;
        }
        if (err instanceof ListingReadError) {
          // Stopping: nothing from here on is applied or checkpointed; the next leader re-applies from the checkpoint.
          this.abandoned = true;
          return;
        }
        this.logger.error({ err, seq: s.revision }, 'listing index: cannot apply a revision; skipping it');
        break;
      }
    }
    this.lastSeq = s.revision;
    for (const w of this.waiters) {
      if (w.seq <= this.lastSeq) {
        this.waiters.delete(w);
        w.resolve();
      }
    }
  }

  /** Resolves true once revisions up to `seq` are applied, false after `ms`. */
  private appliedUpTo(seq: number, ms: number): Promise<boolean> {
    if (this.lastSeq >= seq) return Promise.resolve(true);
    return new Promise((resolve) => {
      const w = {
        seq,
        resolve: () => {
          clearTimeout(timer);
          resolve(true);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.delete(w);
        resolve(false);
      }, ms);
      this.waiters.add(w);
    });
  }

  /**
   * Read-your-writes for `GET /v1/jobs`: waits until every revision up to `target` (the jobs stream's last sequence
   * when a listing asked) is applied, then writes the dirty pages, so that pages read after this resolves hold every
   * job accepted before the listing was asked for, with the status of its latest revision. Concurrent syncs share one
   * flush. Returns the sequence the index is written up to; throws {@link ListingBehindError} after `timeoutMs`.
   */
  async syncTo(target: number, timeoutMs: number): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (this.lastSeq < target) {
      const left = deadline - Date.now();
      if (left <= 0) throw new ListingBehindError(target, this.lastSeq);
      if (await this.appliedUpTo(target, Math.min(left, GAP_CHECK_MS))) break;
      // The newest revisions may be gone (retention purged them) and will never be delivered: nothing left to wait
      // for when no revision exists between what was applied and the target.
      const next = await this.nats.jsm.direct.getMessage(STREAMS.jobs, {
        seq: this.lastSeq + 1,
        next_by_subj: SUBJECTS.jobsAll,
      });
      if (!next || next.seq > target) break;
    }
    const covered = Math.min(target, this.lastSeq);
    if (this.checkpointed < covered) {
      this.nextFlush ??= this.flushing.then(() => {
        this.nextFlush = undefined;
        return this.flush();
      });
      await this.nextFlush;
    }
    if (this.checkpointed < covered) throw new ListingBehindError(covered, this.checkpointed);
    return this.checkpointed;
  }

  /** The last message of a listing subject; null only when there is none. */
  private async readLast(subject: string): Promise<{ data: Uint8Array } | null> {
    try {
      return await this.nats.jsm.direct.getMessage(STREAMS.list, { last_by_subj: subject });
    } catch (err) {
      throw new ListingReadError(subject, { cause: err });
    }
  }

  private pageKey(tenant: string, bucket: number): string {
    return `${tenant}\u0000${bucket}`;
  }

  private async head(tenant: string): Promise<number | null> {
    const cached = this.heads.get(tenant);
    if (cached !== undefined) return cached;
    const msg = await this.readLast(SUBJECTS.listHead(tenant));
    if (!msg) return null;
    const h = decodePayload(CHANNELS.listHeads, msg.data);
    this.heads.set(tenant, h.bucket);
    return h.bucket;
  }

  private async page(tenant: string, bucket: number): Promise<EncodedListPage | undefined> {
    const key = this.pageKey(tenant, bucket);
    const cached = this.pages.get(key);
    if (cached) {
      // Least recently used goes first: move a hit to the end of the map's order.
      this.pages.delete(key);
      this.pages.set(key, cached);
      return cached;
    }
    const msg = await this.readLast(SUBJECTS.listPage(tenant, bucket));
    if (!msg) return undefined;
    return this.hold(key, new EncodedListPage(decodePayload(CHANNELS.listPages, msg.data)));
  }

  /**
   * The page to change for `key`, called synchronously before the change is made and the key marked dirty: the copy
   * held already when there is one (another read of the same page may have finished during an await, and its copy may
   * hold changes), else `p`, held from now on. Before this, a page read back while another was changed replaced it
   * (dropping that change), and a page changed after an await could have been evicted meanwhile (a dirty key without
   * a page: every later flush failed on it).
   */
  private hold(key: string, p: EncodedListPage): EncodedListPage {
    const held = this.pages.get(key);
    if (held) return held;
    this.remember(key, p);
    return p;
  }

  private remember(key: string, p: EncodedListPage): void {
    this.pages.set(key, p);
    if (this.pages.size > CACHE_PAGES) {
      for (const k of this.pages.keys()) {
        if (this.pages.size <= CACHE_PAGES) break;
        // Never the page just taken in: the caller is about to change it and mark it dirty. When more than CACHE_PAGES
        // pages were dirty or being written it was the only one left to evict (until issue 16), and every flush after
        // that failed on its dirty key (the listing's checkpoint stopped for good).
        if (k !== key && !this.dirty.has(k) && !this.writing.has(k)) this.pages.delete(k);
      }
    }
  }

  async apply(s: StoredJob | ListedRevision): Promise<void> {
    const r = 'record' in s ? listedRevision(s) : s;
    const createSeq = r.createSeq;
    const bucket = listBucket(createSeq);
    const key = this.pageKey(r.tenant, bucket);
    const found = await this.page(r.tenant, bucket);
    let page: EncodedListPage;
    if (found) {
      page = this.hold(key, found);
    } else {
      const head = await this.head(r.tenant);
      page = this.hold(
        key,
        new EncodedListPage({
          v: 1,
          tenant: r.tenant,
          bucket,
          prev: head !== null && head < bucket ? head : null,
          entries: [],
        }),
      );
      if (head === null || bucket > head) {
        this.heads.set(r.tenant, bucket);
        this.dirtyHeads.add(r.tenant);
      }
    }
    // A page that already holds this very entry stays as it is (and is not written again for it): the page in memory is
    // what is stored or what a flush under way or to come writes, so read-your-writes holds without it.
    if (page.upsert([createSeq, r.id, r.status, r.type, r.priority, r.createdAtMs])) this.dirty.add(key);
  }

  /** Stream sequence of the last revision applied. */
  get appliedSeq(): number {
    return this.lastSeq;
  }

  /** Drops a job's entry (retention removed the job). Written with the next flush. */
  async remove(tenant: string, createSeq: number): Promise<void> {
    const bucket = listBucket(createSeq);
    const found = await this.page(tenant, bucket);
    if (!found) return;
    const key = this.pageKey(tenant, bucket);
    if (this.hold(key, found).remove(createSeq)) this.dirty.add(key);
  }

  /** Writes dirty pages, then heads, then the checkpoint (so a crash re-applies instead of skipping). */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      const seq = this.lastSeq;
      const keys = [...this.dirty];
      this.dirty.clear();
      for (const k of keys) this.writing.add(k);
      const heads = [...this.dirtyHeads];
      this.dirtyHeads.clear();
      if (keys.length === 0 && heads.length === 0 && seq === this.checkpointed) return;
      try {
        await Promise.all(
          keys.map((k) => {
            const p = this.pages.get(k)!;
            return jsPublish(this.nats.js, SUBJECTS.listPage(p.tenant, p.bucket), p.encode());
          }),
        );
        await Promise.all(
          heads.map((t) =>
            jsPublish(
              this.nats.js,
              SUBJECTS.listHead(t),
              encodeJson({ v: 1, bucket: this.heads.get(t)! } satisfies ListHead),
            ),
          ),
        );
        await this.config?.put(CONFIG_KEYS.listCheckpoint, String(seq));
        this.checkpointed = seq;
      } catch (err) {
        for (const k of keys) this.dirty.add(k);
        for (const t of heads) this.dirtyHeads.add(t);
        this.logger.warn({ err }, 'listing index flush failed; retrying');
      } finally {
        for (const k of keys) this.writing.delete(k);
      }
    });
    return this.flushing;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.unsubscribe?.();
    // Stopping: a consumer that fails to close expires on the server, the catch-up's errors were logged where they
    // happened, and a failed drain leaves a connection the server drops; what matters below is the last flush.
    await this.messages?.close().catch(() => undefined);
    await this.catchingUp?.catch(() => undefined);
    await this.conn?.drain().catch(() => undefined);
    await this.applying;
    await this.flush();
  }
}
