/**
 * Which `s3://` inputs a job may read. The worker reads them with its own credentials, so without a rule a client
 * could name any object those credentials reach — other tenants' outputs included (a confused deputy). The rule:
 * - only buckets in S3_INPUT_BUCKETS (default: the outputs bucket; `*` = any bucket the credentials reach);
 * - in the outputs bucket, `jobs/<id>/…` (job outputs) only when job `<id>` belongs to the same tenant, so one job's
 *   output can feed the next job of the same tenant.
 */
export interface JobTenantLookup {
  /** The tenant of a job, or undefined when there is no such job. */
  tenantOf(jobId: string): Promise<string | undefined>;
}

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

  /** Undefined when `tenant` may read the object, else why not. */
  async refusal(tenant: string, bucket: string, key: string): Promise<string | undefined> {
    if (!this.anyBucket && !this.buckets.has(bucket)) return `bucket ${bucket} is not one of S3_INPUT_BUCKETS`;
    if (bucket !== this.outputsBucket) return undefined;
    const m = /^jobs\/([^/]+)\//.exec(key);
    if (!m) return undefined;
    const owner = await this.jobs.tenantOf(m[1]!);
    if (owner === undefined) return `job ${m[1]} does not exist`;
    return owner === tenant ? undefined : `it is an output of another tenant's job`;
  }
}
