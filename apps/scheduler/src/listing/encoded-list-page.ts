/**
 * A listing page as the writer holds it between flushes: each entry kept as its own JSON text, encoded once when the
 * entry changes, instead of the page re-encoded whole at every flush (issue 16: `JSON.stringify` of up to 1,024 entries
 * per dirty page every 100 ms was 5.4–8.2 % of the scheduler's CPU, for the few entries that had changed).
 *
 * The payload {@link EncodedListPage.encode} assembles is byte for byte what `encodeJson(page)` gives for the same
 * page (the {@link ListPage} format the gateway reads is unchanged; encoded-list-page.spec.ts checks it over random
 * pages). The decoded tuples are not kept beside their text: the writer only needs an entry's createSeq (to place it)
 * and its JSON (to write it), so a page held this way is smaller than the decoded page was.
 */
import type { ListEntry, ListPage } from '@gantry/contracts';

const encoder = new TextEncoder();

export class EncodedListPage {
  readonly tenant: string;
  readonly bucket: number;
  readonly prev: number | null;
  /** Each entry's createSeq, descending (newest first), as in the page. */
  private readonly seqs: number[];
  /** `JSON.stringify` of each entry, in the order of `seqs`. */
  private readonly parts: string[];

  constructor(page: ListPage) {
    this.tenant = page.tenant;
    this.bucket = page.bucket;
    this.prev = page.prev;
    // A page read back was written sorted; sorting again costs nothing then, and keeps the order an invariant here.
    const entries = [...page.entries].sort((a, b) => b[0] - a[0]);
    this.seqs = entries.map((e) => e[0]);
    this.parts = entries.map((e) => JSON.stringify(e));
  }

  get size(): number {
    return this.seqs.length;
  }

  /** Where `createSeq` is or would go (binary search over descending sequences). */
  private indexOf(createSeq: number): number {
    const seqs = this.seqs;
    let lo = 0;
    let hi = seqs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (seqs[mid]! > createSeq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /**
   * Inserts or replaces the entry of `e[0]` (its createSeq). Returns false when the page already held exactly this
   * entry: nothing to write (a revision that changed none of the listed fields).
   */
  upsert(e: ListEntry): boolean {
    const json = JSON.stringify(e);
    const i = this.indexOf(e[0]);
    if (this.seqs[i] === e[0]) {
      if (this.parts[i] === json) return false;
      this.parts[i] = json;
    } else {
      this.seqs.splice(i, 0, e[0]);
      this.parts.splice(i, 0, json);
    }
    return true;
  }

  /** Drops the entry of `createSeq`; false when the page had none. */
  remove(createSeq: number): boolean {
    const i = this.indexOf(createSeq);
    if (this.seqs[i] !== createSeq) return false;
    this.seqs.splice(i, 1);
    this.parts.splice(i, 1);
    return true;
  }

  /**
   * The page's payload: the same bytes as `encodeJson({ v: 1, tenant, bucket, prev, entries })` (the fields in that
   * order, as the writer has always built pages), from the entries' kept JSON.
   */
  encode(): Uint8Array {
    return encoder.encode(
      `{"v":1,"tenant":${JSON.stringify(this.tenant)},"bucket":${JSON.stringify(this.bucket)},` +
        `"prev":${JSON.stringify(this.prev)},"entries":[${this.parts.join(',')}]}`,
    );
  }
}
