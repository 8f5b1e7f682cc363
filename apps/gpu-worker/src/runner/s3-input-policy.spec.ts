import { S3InputPolicy } from './s3-input-policy';

const jobs = { tenantOf: async (id: string) => ({ a1: 'acme', b1: 'bravo' })[id] };

describe('S3InputPolicy', () => {
  it('reads only from the outputs bucket by default, and job outputs only of the same tenant', async () => {
    const p = new S3InputPolicy('gantry-outputs', '', jobs);
    expect(await p.refusal('acme', 'gantry-outputs', 'uploads/in.mp4')).toBeUndefined();
    expect(await p.refusal('acme', 'gantry-outputs', 'jobs/a1/out.mp4')).toBeUndefined();
    // Another tenant's job and a job that does not exist get the same answer: the refusal is no existence oracle.
    expect(await p.refusal('acme', 'gantry-outputs', 'jobs/b1/out.mp4')).toBe(
      "jobs/b1 is not the output of one of this tenant's jobs",
    );
    expect(await p.refusal('acme', 'gantry-outputs', 'jobs/zz/out.mp4')).toBe(
      "jobs/zz is not the output of one of this tenant's jobs",
    );
    expect(await p.refusal('acme', 'private-bucket', 'secrets.txt')).toBe(
      'bucket private-bucket is not one of S3_INPUT_BUCKETS',
    );
  });

  it('takes an explicit list, or * for any bucket (job outputs stay per tenant)', async () => {
    const listed = new S3InputPolicy('gantry-outputs', 'media-in, archive', jobs);
    expect(await listed.refusal('acme', 'media-in', 'x.mp4')).toBeUndefined();
    expect(await listed.refusal('acme', 'gantry-outputs', 'x.mp4')).toMatch(/not one of/);
    const any = new S3InputPolicy('gantry-outputs', '*', jobs);
    expect(await any.refusal('acme', 'whatever', 'x')).toBeUndefined();
    expect(await any.refusal('bravo', 'gantry-outputs', 'jobs/a1/out.mp4')).toMatch(
      /not the output of one of this tenant/,
    );
  });
});
