/**
 * The dispatcher's cache of recently queued job records, bounded by **bytes**, not by count: a record can be up to
 * `MAX_JOB_BYTES` (input and metadata a tenant chose), so a count bound (it was 4,096 entries) let one tenant's large
 * jobs hold gigabytes in every scheduler replica, and the rebuild after a restart filled it again. Entries are kept in
 * insertion order (newest last, a re-queued job moves to the end) and the oldest are evicted until the estimated size
 * is within the budget; a record bigger than the whole budget is not cached (the dispatcher reads it when it needs it).
 *
 * The size is an estimate of the heap the decoded record holds (see {@link approxHeapBytes}), computed once per entry
 * in O(fields), so the budget bounds real memory within a small factor without serializing anything.
 */
import type { StoredJob } from '@gantry/contracts';
import { Gauge, type Registry } from '@gantry/telemetry';

/** V8 costs, approximately (64-bit, pointer compression off): header + slots. Erring high keeps the bound honest. */
const OBJECT_BYTES = 32;
const SLOT_BYTES = 8;
const STRING_BYTES = 16;
const NUMBER_BYTES = 16;
/** Per entry: the map's own entry, the id key, the StoredJob and event wrappers. */
const ENTRY_OVERHEAD = 160;

/**
 * Estimated heap bytes of a JSON-like value: strings count their length (one byte per Latin-1 char, two otherwise, as
 * V8 stores them), objects and arrays a header and a slot per member. Depth-first with an explicit stack (a hostile
 * document cannot overflow the call stack).
 */
export function approxHeapBytes(value: unknown): number {
  let bytes = 0;
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v === 'string') {
      bytes += STRING_BYTES + (isOneByte(v) ? v.length : 2 * v.length);
    } else if (typeof v === 'number') {
      bytes += NUMBER_BYTES;
    } else if (Array.isArray(v)) {
      bytes += OBJECT_BYTES + SLOT_BYTES * v.length;
      for (const x of v as unknown[]) if (x !== null && (typeof x === 'object' || typeof x === 'string')) stack.push(x);
    } else if (v !== null && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      for (const k of Object.keys(o)) {
        // A key costs a slot; key strings are interned and shared, but a document of unique keys makes them count.
        bytes += SLOT_BYTES + STRING_BYTES + k.length;
        const x = o[k];
        if (x !== null && (typeof x === 'object' || typeof x === 'string')) stack.push(x);
      }
      bytes += OBJECT_BYTES;
    }
  }
  return bytes;
}

function isOneByte(s: string): boolean {
  // A linear scan without allocation.
  return !/[^\u0000-\u00ff]/.test(s);
}

/** The estimated heap of one cached entry: the record (shared with the event's `job`) plus the event's own fields. */
export function storedJobBytes(s: StoredJob): number {
  const { job: _job, ...eventOwn } = s.event;
  return ENTRY_OVERHEAD + approxHeapBytes(s.record) + approxHeapBytes(eventOwn);
}

export class RecordCache {
  private readonly entries = new Map<string, { s: StoredJob; bytes: number }>();
  private total = 0;
  private evictedCount = 0;
  private skippedCount = 0;

  /** `budgetBytes` 0 disables the cache. */
  constructor(
    readonly budgetBytes: number,
    private readonly sizeOf: (s: StoredJob) => number = storedJobBytes,
  ) {}

  /**
   * Keeps `s` as the newest entry (replacing an older revision of the job), then evicts the oldest to fit.
   *
   * `ahead`: how many jobs will surely be dispatched before this one (its own tenant's jobs ahead of it, FIFO). When
   * that is more than the cache holds (its budget over the average entry), the record is not kept: the entries put
   * for those jobs would evict it before it is needed (oldest first), so keeping it only adds a decoded record to the
   * old generation of the heap until then — with a deep queue, the whole budget of records that are never taken
   * (issue 16: GC cost grew with depth). Its dispatch reads it, as it would have anyway.
   */
  put(s: StoredJob, ahead = 0): void {
    const id = s.record.id;
    this.delete(id);
    if (this.budgetBytes <= 0) return;
    if (ahead > 0 && this.entries.size > 0 && ahead > (this.budgetBytes / this.total) * this.entries.size) {
      this.skippedCount++;
      return;
    }
    const bytes = this.sizeOf(s);
    if (bytes > this.budgetBytes) return;
    this.entries.set(id, { s, bytes });
    this.total += bytes;
    while (this.total > this.budgetBytes) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      this.delete(oldest.value);
      this.evictedCount++;
    }
  }

  /** Removes and returns the entry of job `id` (a record is used once: by the dispatch that needed it). */
  take(id: string): StoredJob | undefined {
    return this.takeSized(id)?.s;
  }

  /** {@link take}, with the size estimated when the record was put (so the taker need not walk the record again). */
  takeSized(id: string): { s: StoredJob; bytes: number } | undefined {
    const e = this.entries.get(id);
    if (!e) return undefined;
    this.delete(id);
    return e;
  }

  private delete(id: string): void {
    const e = this.entries.get(id);
    if (!e) return;
    this.entries.delete(id);
    this.total -= e.bytes;
  }

  /** Estimated bytes held now (≤ `budgetBytes` at all times). */
  get bytes(): number {
    return this.total;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Records not kept since start because more jobs were ahead of theirs than the cache holds (see `put`). */
  get skipped(): number {
    return this.skippedCount;
  }

  /** Entries evicted to stay within the budget since start. */
  get evicted(): number {
    return this.evictedCount;
  }
}

/** `gantry_scheduler_record_cache_bytes` and `…_budget_bytes`, read when scraped. */
export function registerRecordCacheGauges(registry: Registry, bytes: () => number, budgetBytes: number): void {
  new Gauge({
    name: 'gantry_scheduler_record_cache_bytes',
    help: "Estimated heap bytes of the dispatcher's cache of recently queued job records",
    registers: [registry],
    collect() {
      this.set(bytes());
    },
  });
  new Gauge({
    name: 'gantry_scheduler_record_cache_budget_bytes',
    help: 'SCHEDULER_RECORD_CACHE_BYTES: the byte budget of that cache',
    registers: [registry],
  }).set(budgetBytes);
}
