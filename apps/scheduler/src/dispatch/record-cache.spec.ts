import { newJob, type StoredJob } from '@gantry/contracts';
import { approxHeapBytes, RecordCache, storedJobBytes } from './record-cache';

function stored(id: string, inputBytes: number, generation = 1): StoredJob {
  const { record } = newJob(
    {
      id,
      tenant: 't',
      type: 'noop',
      input: { blob: 'x'.repeat(inputBytes) },
      priority: 'normal',
      pool: 'p',
      timeoutSeconds: 60,
      maxAttempts: 3,
      retryDelaysMs: [0],
      metadata: {},
    },
    new Date(0),
  );
  const r = { ...record, generation };
  return {
    record: r,
    revision: 7,
    event: { type: 'job.queued', timestamp: r.updatedAt, sequence: 1, generation, job: r },
  };
}

describe('approxHeapBytes', () => {
  it('counts string payloads at their stored width, whatever the nesting', () => {
    expect(approxHeapBytes('a'.repeat(1000))).toBeGreaterThanOrEqual(1000);
    expect(approxHeapBytes('é'.repeat(1000))).toBeGreaterThanOrEqual(1000);
    expect(approxHeapBytes('€'.repeat(1000))).toBeGreaterThanOrEqual(2000);
    const deep = { a: [{ b: ['x'.repeat(5000)] }] };
    expect(approxHeapBytes(deep)).toBeGreaterThan(5000);
    // Many small members cost more than their JSON text suggests (headers and slots), and are counted.
    const many = Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`k${i}`, i]));
    expect(approxHeapBytes(many)).toBeGreaterThan(JSON.stringify(many).length);
  });

  it('does not overflow the stack on a deeply nested document', () => {
    let v: unknown = 'leaf';
    for (let i = 0; i < 100_000; i++) v = [v];
    expect(approxHeapBytes(v)).toBeGreaterThan(100_000);
  });

  it('is at least the record’s JSON size for a realistic large job, and counts the shared job once', () => {
    const s = stored('big', 200_000);
    const json = JSON.stringify(s.record).length;
    expect(storedJobBytes(s)).toBeGreaterThanOrEqual(json);
    expect(storedJobBytes(s)).toBeLessThan(json * 1.2);
  });
});

describe('RecordCache (bounded by bytes)', () => {
  it('never holds more than its budget, evicting the oldest first', () => {
    const cache = new RecordCache(1_000_000);
    for (let i = 0; i < 300; i++) {
      cache.put(stored(`j${i}`, 200_000));
      expect(cache.bytes).toBeLessThanOrEqual(1_000_000);
    }
    // ~200 KB each: four fit in 1 MB; the newest are the ones kept.
    expect(cache.size).toBe(4);
    expect(cache.take('j299')?.record.id).toBe('j299');
    expect(cache.take('j295')).toBeUndefined();
    expect(cache.evicted).toBe(300 - 4);
  });

  it('keeps many small records where a count bound would have been the limit', () => {
    const cache = new RecordCache(32 * 1024 * 1024);
    for (let i = 0; i < 10_000; i++) cache.put(stored(`j${i}`, 10));
    expect(cache.size).toBe(10_000);
  });

  it('replaces an older revision of the same job and accounts bytes exactly', () => {
    const cache = new RecordCache(10_000_000);
    cache.put(stored('a', 100_000, 1));
    const one = cache.bytes;
    cache.put(stored('a', 100_000, 2));
    expect(cache.size).toBe(1);
    expect(cache.bytes).toBe(one);
    expect(cache.take('a')?.record.generation).toBe(2);
    expect(cache.bytes).toBe(0);
    expect(cache.take('a')).toBeUndefined();
  });

  it('takeSized gives the entry with the size estimated when it was put (what the dispatcher counts)', () => {
    const cache = new RecordCache(10_000_000);
    const s = stored('b', 5_000, 3);
    cache.put(stored('c', 7_000));
    cache.put(s);
    const before = cache.bytes;
    const hit = cache.takeSized('b');
    expect(hit?.s).toBe(s);
    expect(hit?.bytes).toBe(storedJobBytes(s));
    expect(cache.bytes).toBe(before - storedJobBytes(s));
    expect(cache.takeSized('b')).toBeUndefined();
  });

  it('does not cache a record bigger than the whole budget, and caches nothing with budget 0', () => {
    const small = new RecordCache(50_000);
    small.put(stored('huge', 100_000));
    expect(small.size).toBe(0);
    const off = new RecordCache(0);
    off.put(stored('a', 10));
    expect(off.size).toBe(0);
    expect(off.bytes).toBe(0);
  });

  it('does not keep a record with more jobs ahead of it than the cache holds (it would be evicted unused)', () => {
    const cache = new RecordCache(1_000_000);
    for (let i = 0; i < 4; i++) cache.put(stored(`j${i}`, 200_000)); // ~200 KB each: it holds four
    const held = cache.bytes;
    // 100 jobs of its tenant go first: the four newer records put for the first of them would evict it.
    cache.put(stored('deep', 200_000), 100);
    expect(cache.take('deep')).toBeUndefined();
    expect(cache.bytes).toBe(held);
    expect(cache.skipped).toBe(1);
    expect(cache.evicted).toBe(0);
    // Within what it holds: kept as before (the oldest evicted to fit).
    cache.put(stored('near', 200_000), 3);
    expect(cache.take('near')?.record.id).toBe('near');
    expect(cache.skipped).toBe(1);
    // A newer revision of a job the cache holds, now deep in the queue, drops the older one too.
    cache.put(stored('j3', 200_000, 1), 0);
    cache.put(stored('j3', 200_000, 2), 100);
    expect(cache.take('j3')).toBeUndefined();
    // An empty cache keeps the record whatever is ahead (nothing to size it by yet).
    const empty = new RecordCache(1_000_000);
    empty.put(stored('first', 200_000), 1_000);
    expect(empty.size).toBe(1);
  });
});
