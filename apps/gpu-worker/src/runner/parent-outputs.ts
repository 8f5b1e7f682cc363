/**
 * Parent outputs as inputs (v1.1, docs/pipelines.md): a job input `job:<parent id>/<name>` is resolved at download
 * time to the object the parent stored, after the worker checked, on the records themselves (not trusting the
 * gateway, which a record written some other way bypassed):
 *
 * - the parent is in the child's `dependsOn`, exists and belongs to the child's tenant (an unknown parent and another
 *   tenant's read the same, revealing nothing);
 * - the parent is `completed` and lists an output of that name whose url is an `s3://` object in the outputs bucket
 *   under `jobs/<parent id>/` (a parent with `upload.url` sent its output to the client's URL: nothing is stored).
 *
 * Any refusal fails the attempt with INVALID_INPUT, not retryable: another attempt would read the same records. A
 * failed read of the parent's record (NATS trouble) is DOWNLOAD_FAILED, retryable. The returned `s3://` URL is then
 * downloaded like any s3:// input, under the same S3 input policy.
 */
import { normalizeS3Url, parseParentOutput, type JobRecord, type StoredJob } from '@gantry/contracts';
import { JobFailure } from '../executors/executor';

export interface ParentRecords {
  get(id: string, o?: { consistent?: boolean }): Promise<StoredJob | undefined>;
}

export class ParentOutputResolver {
  constructor(
    private readonly outputsBucket: string,
    private readonly jobs: ParentRecords,
  ) {}

  /** The `s3://` URL of the parent output `url` names for `child`, or a JobFailure saying why it may not be read. */
  async resolve(child: JobRecord, url: string): Promise<string> {
    const refuse = (why: string): never => {
      throw new JobFailure('INVALID_INPUT', `input ${url} may not be read: ${why}`, false);
    };
    const p = parseParentOutput(url);
    if (!p) return refuse('it is not job:<parent id>/<output name>');
    if (p.ref) return refuse('batch refs are resolved to ids at submit; a stored job names its parent by id');
    if (!child.dependsOn?.includes(p.parent)) return refuse(`job ${p.parent} is not in this job's dependsOn`);
    let stored: StoredJob | undefined;
    try {
      // The leader's copy: the parent completed moments ago, and a replica may not have that revision yet.
      stored = await this.jobs.get(p.parent, { consistent: true });
    } catch (err) {
      throw new JobFailure(
        'DOWNLOAD_FAILED',
        `input ${url}: the parent's record could not be read (${String(err)}); the attempt can be retried`,
        true,
        undefined,
        { cause: err },
      );
    }
    // One answer for "no such job" and "another tenant's job".
    if (!stored || stored.record.tenant !== child.tenant) return refuse(`job ${p.parent} is an unknown job`);
    const parent = stored.record;
    if (parent.status !== 'completed') return refuse(`job ${p.parent} is ${parent.status}, not completed`);
    if (parent.upload)
      return refuse(`job ${p.parent} sent its output to its upload.url, so Gantry stored no output "${p.name}"`);
    const out = parent.outputs?.find((o) => o.name === p.name);
    if (!out) return refuse(`job ${p.parent} has no output "${p.name}"`);
    const n = normalizeS3Url(out.url);
    if (!n.ok || n.bucket !== this.outputsBucket || !n.key.startsWith(`jobs/${p.parent}/`))
      return refuse(`output "${p.name}" of job ${p.parent} is not an object Gantry stored for it`);
    return n.url;
  }
}
