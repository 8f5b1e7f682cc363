/**
 * `s3://` inputs: one canonical form, and who may read what.
 *
 * The worker reads `s3://` inputs with its own credentials, so without a rule a client could name any object those
 * credentials reach — other tenants' outputs included (a confused deputy). And a prefix check on the URL as written
 * is not enough: `s3://bucket/x/../jobs/<their id>/out.mp4` does not start with `jobs/`, yet stores and proxies that
 * resolve dot segments (the embedded store does) serve `jobs/<their id>/out.mp4`. So every `s3://` URL is first
 * brought to one canonical form — percent-encoding decoded (`%2e%2e`, `%2f`, `%5c`), backslashes read as `/`, empty
 * and `.` segments dropped, `..` resolved (one that climbs out of the bucket is refused) — the policy is applied to
 * that form, and the worker reads exactly that key. Decoding repeats until nothing is left to decode, and a key that
 * still holds a `%` afterwards is refused: no later layer can decode the canonical key into something else. So keys
 * are read as URL paths (`%20` is a space) and an object whose key holds a literal `%` cannot be named.
 */

/** An S3 bucket name by the rules of AWS (3–63 characters, no `..`, not an IP address). */
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const MAX_KEY_BYTES = 1024;
/** Percent-decoding rounds before a key that still decodes is refused (`%252e` → `%2e` → `.`). */
const MAX_DECODE_ROUNDS = 4;

export type NormalizedS3Url = { ok: true; bucket: string; key: string; url: string } | { ok: false; reason: string };

/** The canonical `s3://bucket/key` of an `s3://` URL, or why it has none. */
export function normalizeS3Url(raw: string): NormalizedS3Url {
  const fail = (reason: string): NormalizedS3Url => ({ ok: false, reason });
  if (!raw.startsWith('s3://')) return fail('is not an s3:// URL');
  const rest = raw.slice('s3://'.length).replace(/\\/g, '/');
  const slash = rest.indexOf('/');
  if (slash < 0) return fail('must be s3://bucket/key');
  const bucket = rest.slice(0, slash);
  if (!BUCKET.test(bucket) || bucket.includes('..') || /^\d+\.\d+\.\d+\.\d+$/.test(bucket)) {
    return fail(`names an invalid bucket "${bucket}" (S3 bucket names: 3–63 of a-z 0-9 . -, no escapes)`);
  }
  let key = rest.slice(slash + 1);
  for (let round = 0; /%[0-9A-Fa-f]{2}/.test(key); round++) {
    if (round === MAX_DECODE_ROUNDS) return fail('has a key percent-encoded too many times over');
    try {
      key = decodeURIComponent(key);
    } catch {
      return fail('has a key with invalid percent-encoding');
    }
  }
  if (key.includes('%')) return fail('has a key that may not contain % once decoded (or invalid percent-encoding)');
  if (/[\u0000-\u001f\u007f]/.test(key)) return fail('has a key with control characters');
  const segments: string[] = [];
  for (const segment of key.replace(/\\/g, '/').split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') {
      if (segments.length === 0) return fail('has a key that leaves the bucket (..)');
      segments.pop();
      continue;
    }
    segments.push(segment);
  }
  const canonical = segments.join('/');
  if (canonical === '') return fail('names no object (empty key)');
  if (Buffer.byteLength(canonical) > MAX_KEY_BYTES) return fail(`has a key longer than ${MAX_KEY_BYTES} bytes`);
  return { ok: true, bucket, key: canonical, url: `s3://${bucket}/${canonical}` };
}

export interface JobTenantLookup {
  /** The tenant of a job, or undefined when there is no such job. */
  tenantOf(jobId: string): Promise<string | undefined>;
}

/**
 * Which `s3://` inputs a tenant's job may read:
 * - only buckets in S3_INPUT_BUCKETS (default: the outputs bucket; `*` = any bucket the credentials reach);
 * - in the outputs bucket, anything under `jobs/<id>` (job outputs) only when job `<id>` belongs to the same tenant,
 *   so one job's output can feed the next job of the same tenant.
 * Applied to the canonical form (`normalizeS3Url`): at submit by the gateway (400) and again by the worker before it
 * reads anything (defence in depth: a record written some other way is checked too).
 */
export class S3InputPolicy {
  private readonly anyBucket: boolean;
  private readonly buckets: ReadonlySet<string>;

  constructor(
    private readonly outputsBucket: string,
    allowed: string,
    private readonly jobs: JobTenantLookup,
  ) {
    this.anyBucket = allowed.trim() === '*';
    const list = allowed
      .split(',')
      .map((b) => b.trim())
      .filter(Boolean);
    this.buckets = new Set(list.length > 0 && !this.anyBucket ? list : [outputsBucket]);
  }

  /** Undefined when `tenant` may read the object, else why not. `key` must be canonical (see `refusalOfUrl`). */
  async refusal(tenant: string, bucket: string, key: string): Promise<string | undefined> {
    if (!this.anyBucket && !this.buckets.has(bucket)) return `bucket ${bucket} is not one of S3_INPUT_BUCKETS`;
    if (bucket !== this.outputsBucket) return undefined;
    const m = /^jobs\/([^/]+)/.exec(key);
    if (!m) return undefined;
    // One answer for "no such job" and "another tenant's job": the refusal must not tell a client which ids exist.
    const owner = await this.jobs.tenantOf(m[1]!);
    return owner === tenant ? undefined : `jobs/${m[1]} is not the output of one of this tenant's jobs`;
  }

  /** Undefined when `tenant` may read `url` (any spelling of it), else why not. */
  async refusalOfUrl(tenant: string, url: string): Promise<string | undefined> {
    const n = normalizeS3Url(url);
    if (!n.ok) return n.reason;
    return this.refusal(tenant, n.bucket, n.key);
  }
}
