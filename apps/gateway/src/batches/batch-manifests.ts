/**
 * Reading and writing batch manifests (`gantry.v1.batch.<id>`) and their parts (`gantry.v1.batch_part.<id>.<n>`).
 * Shared by the submit path and the repair consumer.
 */
import {
  CHANNELS,
  STREAMS,
  SUBJECTS,
  newJob,
  type BatchManifest,
  type Clock,
  type NewJobSpec,
  type StoredJob,
} from '@gantry/contracts';
import { randomBytes } from 'node:crypto';
import {
  decodePayload,
  isWrongLastSequence,
  mapBounded,
  publishEncoded,
  publishJson,
  retry,
  type BackoffOptions,
  type NatsHandle,
} from '@gantry/jetstream';
import { JobExistsError, JobStore } from '@gantry/job-store';
import type { StoredMsg } from '@nats-io/jetstream';
import { problems } from '../http/problem';

const textEncoder = new TextEncoder();

/** Specs up to this size (JSON) travel inside the manifest; larger batches are split into parts. */
export const INLINE_SPECS_BYTES = 64 * 1024;
/** Target size of one part (well under nats-server's default 1 MiB max_payload). */
const PART_BYTES = 512 * 1024;
/**
 * Job records written at once for one batch. (Publishing a whole batch in one synchronous sweep was tried: the client
 * already sends its buffered publishes in writes of its flush threshold, so the CPU per job did not move, and the
 * event loop stalled about twice as long per sweep: docs/performance.md, "Gateway".)
 */
const CREATE_CONCURRENCY = 256;
/** A record write that fails is tried twice more, 50 ms then 100 ms later. */
const CREATE_BACKOFF: BackoffOptions = { initialMs: 50, maxMs: 100, jitter: false };

/** The manifest already exists (a racing repeat of an idempotent batch submit). */
export class BatchExistsError extends Error {
  override readonly name = 'BatchExistsError';
  readonly code = 'BATCH_EXISTS';
  constructor(readonly batchId: string) {
    super(`batch ${batchId} already exists`);
  }
}

/** A manifest could not be read (the broker failed, it did not say "absent"): 503 for a client, retry for a consumer. */
export class BatchReadError extends Error {
  override readonly name = 'BatchReadError';
  readonly code = 'BATCH_READ_FAILED';
  constructor(
    readonly batchId: string,
    cause: unknown,
  ) {
    super(`batch ${batchId}: manifest could not be read: ${String(cause)}`, { cause });
  }
}

/** Each spec's JSON, encoded once for the size checks and the parts' payloads. */
export interface EncodedSpecs {
  json: string[];
  /** UTF-8 bytes of each. */
  bytes: number[];
}

export function encodeSpecs(specs: readonly NewJobSpec[]): EncodedSpecs {
  const json = specs.map((s) => JSON.stringify(s));
  return { json, bytes: json.map((j) => Buffer.byteLength(j)) };
}

/** Splits specs into parts of at most `limit` bytes of JSON (order kept): the index where each part ends. */
function partEnds(specs: readonly NewJobSpec[], bytes: readonly number[], limit: number): number[] {
  const ends: number[] = [];
  let size = 0;
  for (let i = 0; i < specs.length; i++) {
    const n = bytes[i]!;
    if (n > limit) throw problems.tooLarge(`job ${specs[i]!.id} is larger than ${limit} bytes once stored`);
    if (i > (ends.at(-1) ?? 0) && size + n > limit) {
      ends.push(i);
      size = 0;
    }
    size += n;
  }
  if (specs.length > (ends.at(-1) ?? 0)) ends.push(specs.length);
  return ends;
}

/** Splits specs into parts of at most `limit` bytes of JSON (order kept). */
export function splitIntoParts(specs: readonly NewJobSpec[], limit: number): NewJobSpec[][] {
  let start = 0;
  return partEnds(specs, encodeSpecs(specs).bytes, limit).map((end) => specs.slice(start, (start = end)));
}

/**
 * A part's payload, assembled from its specs' JSON: the same bytes as `JSON.stringify` of the `BatchPart`
 * (`batch-manifests.spec.ts`), without encoding each spec a second time.
 */
export function encodePart(batchId: string, part: number, specJson: readonly string[], attempt: string): string {
  return `{"v":1,"batchId":${JSON.stringify(batchId)},"part":${part},"specs":[${specJson.join(',')}],"attempt":${JSON.stringify(attempt)}}`;
}

export class BatchManifests {
  constructor(
    private readonly nats: NatsHandle,
    private readonly clock: Clock,
  ) {}

  /**
   * The latest manifest of a batch (committed or accepted), or undefined when the broker says there is none. Only
   * the client's own "no message found" answer (direct get returns null on the server's 404) means absent: any other
   * error (NATS down, a timeout, no responders) is thrown as {@link BatchReadError}, never read as "absent" — until
   * v1.1 every error was, so a GET during a broker blip answered 404 for a batch that exists, and an idempotent retry
   * went on to submit again.
   */
  async read(batchId: string): Promise<BatchManifest | undefined> {
    let msg: StoredMsg | null;
    try {
      msg = await this.nats.jsm.direct.getMessage(STREAMS.batches, { last_by_subj: SUBJECTS.batch(batchId) });
    } catch (err) {
      throw new BatchReadError(batchId, err);
    }
    return msg ? decodePayload(CHANNELS.batches, msg.data) : undefined;
  }

  /**
   * Writes the parts (if any), then the accepted manifest — the point from which the batch will exist whole, whatever
   * happens to this process. Throws {@link BatchExistsError} when a manifest with this id exists.
   *
   * Two calls for one batch id (a client retrying with the same Idempotency-Key while the first is still running, or
   * after it died between its parts and its manifest) race with different job ids. Each call's parts and manifest
   * carry message ids of its own (`attempt`), so the broker's de-duplication never swaps one call's part for
   * another's; the manifest names its parts by stream sequence and is created with compare-and-set, so exactly one
   * call wins and its manifest reads back exactly its own parts. (Until v1.1 the parts were de-duplicated per batch:
   * a retry's manifest could list its job ids over the parts of the first call.)
   */
  async accept(batchId: string, tenant: string, specs: readonly NewJobSpec[]): Promise<BatchManifest> {
    const attempt = randomBytes(6).toString('base64url');
    const base: BatchManifest = {
      v: 1,
      id: batchId,
      tenant,
      jobIds: specs.map((s) => s.id),
      createdAt: this.clock.now().toISOString(),
      state: 'accepted',
      attempt,
    };
    const encoded = encodeSpecs(specs);
    // The bytes of JSON.stringify(specs): each spec, a comma between two, and the brackets.
    const inlineBytes = encoded.bytes.reduce((a, b) => a + b, 0) + Math.max(0, specs.length - 1) + 2;
    const maxPayload = this.nats.nc.info?.max_payload ?? 1024 * 1024;
    let manifest: BatchManifest;
    if (inlineBytes <= Math.min(INLINE_SPECS_BYTES, maxPayload / 2)) {
      manifest = { ...base, specs: [...specs] };
    } else {
      const ends = partEnds(specs, encoded.bytes, Math.min(PART_BYTES, Math.floor(maxPayload * 0.8)));
      const acks = await Promise.all(
        ends.map((end, i) =>
          publishEncoded(
            this.nats.js,
            SUBJECTS.batchPart(batchId, i),
            textEncoder.encode(encodePart(batchId, i, encoded.json.slice(i === 0 ? 0 : ends[i - 1], end), attempt)),
            { msgID: `${batchId}.part.${i}.${attempt}` },
          ),
        ),
      );
      manifest = { ...base, parts: ends.length, partSeqs: acks.map((a) => a.seq) };
    }
    try {
      // The msgID is this call's own, so a duplicate answer is this very publish retried, never another call's.
      await publishJson(this.nats.js, SUBJECTS.batch(batchId), manifest, {
        msgID: `${batchId}.accepted.${attempt}`,
        expect: { lastSubjectSequence: 0 },
      });
    } catch (err) {
      if (isWrongLastSequence(err)) throw new BatchExistsError(batchId);
      throw err;
    }
    return manifest;
  }

  /** The specs of an accepted manifest (inline or from its parts). */
  async specs(m: BatchManifest): Promise<NewJobSpec[]> {
    if (m.specs) return m.specs;
    const out: NewJobSpec[] = [];
    if (m.partSeqs) {
      // Exactly the parts this manifest's own submit wrote, by sequence.
      for (const [i, seq] of m.partSeqs.entries()) {
        const msg = await this.nats.jsm.direct.getMessage(STREAMS.batches, { seq });
        const part =
          msg && msg.subject === SUBJECTS.batchPart(m.id, i) ? decodePayload(CHANNELS.batchParts, msg.data) : undefined;
        if (!part || part.attempt !== m.attempt) throw new Error(`batch ${m.id}: part ${i} (seq ${seq}) is missing`);
        out.push(...part.specs);
      }
      return out;
    }
    for (let i = 0; i < (m.parts ?? 0); i++) {
      const msg = await this.nats.jsm.direct.getMessage(STREAMS.batches, {
        last_by_subj: SUBJECTS.batchPart(m.id, i),
      });
      if (!msg) throw new Error(`batch ${m.id}: part ${i} is missing`);
      out.push(...decodePayload(CHANNELS.batchParts, msg.data).specs);
    }
    return out;
  }

  /**
   * Creates every job of the batch that does not exist yet (idempotent: a job id can be created once).
   * Returns the stored jobs this call created or found, and the ids it could not write (after retries).
   */
  async createJobs(
    specs: readonly NewJobSpec[],
    onCreated: (revision: number) => void = () => undefined,
  ): Promise<{ stored: Map<string, StoredJob>; failed: string[]; lastError?: unknown }> {
    const store = new JobStore(this.nats, this.clock);
    const stored = new Map<string, StoredJob>();
    const failed: string[] = [];
    let lastError: unknown;
    const now = this.clock.now();
    const createOne = async (spec: NewJobSpec): Promise<void> => {
      try {
        const created = await retry(() => store.create(newJob(spec, now)), {
          attempts: 3,
          backoff: CREATE_BACKOFF,
          retryable: (err) => !(err instanceof JobExistsError),
        });
        stored.set(spec.id, created);
        onCreated(created.revision);
      } catch (err) {
        if (err instanceof JobExistsError) {
          // The record exists, which is all this call must ensure; reading it back only adds it to `stored`
          // (callers use that for the reply's sequence watermark and views), so a failed read is left out.
          const s = await store.get(spec.id, { consistent: true }).catch(() => undefined);
          if (s) stored.set(spec.id, s);
          return;
        }
        failed.push(spec.id);
        lastError = err;
      }
    };
    await mapBounded(specs, CREATE_CONCURRENCY, createOne);
    return { stored, failed, ...(lastError !== undefined ? { lastError } : {}) };
  }

  /** Marks the batch whole (every record exists): the repair consumer then leaves it alone. */
  async commit(m: BatchManifest): Promise<void> {
    const committed: BatchManifest = {
      v: 1,
      id: m.id,
      tenant: m.tenant,
      jobIds: m.jobIds,
      createdAt: m.createdAt,
      state: 'committed',
    };
    await publishJson(this.nats.js, SUBJECTS.batch(m.id), committed, { msgID: `${m.id}.committed` });
  }
}
