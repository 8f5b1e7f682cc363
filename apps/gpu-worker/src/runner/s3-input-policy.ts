/**
 * Which `s3://` inputs a job may read: the policy lives in `@gantry/contracts` (`S3InputPolicy`, applied to the
 * canonical form of the URL) because the gateway applies the same one at submit.
 */
export { S3InputPolicy, type JobTenantLookup } from '@gantry/contracts';
