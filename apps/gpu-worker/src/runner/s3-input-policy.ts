/**
 * Which `s3://` inputs a job may read: the policy lives in `@gantry/contracts` (`S3InputPolicy`, applied to the
 * canonical form of the URL) because the gateway applies the same one at submit.
 */
import type { JobStore } from '@gantry/job-store';

export { S3InputPolicy, type JobTenantLookup } from '@gantry/contracts';

/**
 * The owner of a job, read from the job store: undefined only when the store says there is no such job. A failed read
 * rejects (it used to read as "no such job", so a NATS blip refused a tenant its own outputs and failed the job for
 * good); the download turns that into a retryable failure of the attempt.
 */
export function jobTenantLookup(jobs: Pick<JobStore, 'get'>): (jobId: string) => Promise<string | undefined> {
  return async (jobId) => (await jobs.get(jobId))?.record.tenant;
}
