import { normalizeS3Url, S3InputPolicy } from './s3-input';

describe('normalizeS3Url', () => {
  const canonical: [string, string][] = [
    ['s3://b-1/in.mp4', 's3://b-1/in.mp4'],
    ['s3://b-1/a/b/in.mp4', 's3://b-1/a/b/in.mp4'],
    ['s3://b-1/x/../jobs/J/out.mp4', 's3://b-1/jobs/J/out.mp4'],
    ['s3://b-1/./jobs/./J/out.mp4', 's3://b-1/jobs/J/out.mp4'],
    ['s3://b-1//jobs///J//out.mp4', 's3://b-1/jobs/J/out.mp4'],
    ['s3://b-1/x/%2e%2e/jobs/J/out.mp4', 's3://b-1/jobs/J/out.mp4'],
    ['s3://b-1/x/%2E%2E/jobs/J/out.mp4', 's3://b-1/jobs/J/out.mp4'],
    ['s3://b-1/x%2f..%2fjobs%2fJ/out.mp4', 's3://b-1/jobs/J/out.mp4'],
    ['s3://b-1/x/%252e%252e/jobs/J/out.mp4', 's3://b-1/jobs/J/out.mp4'],
    ['s3://b-1/x\\..\\jobs\\J\\out.mp4', 's3://b-1/jobs/J/out.mp4'],
    ['s3://b-1/x%5c..%5cjobs/J/out.mp4', 's3://b-1/jobs/J/out.mp4'],
    ['s3://b-1/my%20clip.mp4', 's3://b-1/my clip.mp4'],
  ];
  it.each(canonical)('%s → %s', (raw, url) => {
    expect(normalizeS3Url(raw)).toMatchObject({ ok: true, url });
  });

  const refused: [string, RegExp][] = [
    ['s3://b-1/../other-bucket/k', /leaves the bucket/],
    ['s3://b-1/x/../../k', /leaves the bucket/],
    ['s3://b-1/%2e%2e/k', /leaves the bucket/],
    ['s3://b-1/..%2fk', /leaves the bucket/],
    ['s3://b-1/', /empty key/],
    ['s3://b-1/./', /empty key/],
    ['s3://b-1', /s3:\/\/bucket\/key/],
    ['s3://B-1/k', /invalid bucket/],
    ['s3://b..1/k', /invalid bucket/],
    ['s3://b%2d1/k', /invalid bucket/],
    ['s3://user@b-1/k', /invalid bucket/],
    ['s3://b-1:9000/k', /invalid bucket/],
    ['s3://10.0.0.1/k', /invalid bucket/],
    ['s3://b-1\\..\\other/k', /leaves the bucket/],
    ['s3://b-1/100%25.mp4', /may not contain %/],
    ['s3://b-1/%zz', /percent-encoding/],
    ['s3://b-1/100%.mp4', /percent-encoding/],
    ['s3://b-1/%25252525252e', /too many times/],
    ['s3://b-1/a%00b', /control characters/],
    [`s3://b-1/${'k'.repeat(1025)}`, /longer than 1024/],
    ['https://b-1/k', /not an s3:\/\/ URL/],
  ];
  it.each(refused)('refuses %s', (raw, reason) => {
    const n = normalizeS3Url(raw);
    expect(n.ok).toBe(false);
    expect(n.ok ? '' : n.reason).toMatch(reason);
  });
});

describe('S3InputPolicy (canonical form)', () => {
  const tenants: Record<string, string> = { mine: 'acme', theirs: 'globex' };
  const policy = new S3InputPolicy('outputs', '', { tenantOf: (id) => Promise.resolve(tenants[id]) });

  it.each([
    's3://outputs/jobs/theirs/out.mp4',
    's3://outputs/x/../jobs/theirs/out.mp4',
    's3://outputs/x/%2e%2e/jobs/theirs/out.mp4',
    's3://outputs/x%2F..%2Fjobs%2Ftheirs%2Fout.mp4',
    's3://outputs//jobs//theirs/out.mp4',
    's3://outputs/./jobs/theirs/out.mp4',
    's3://outputs/x\\..\\jobs\\theirs\\out.mp4',
    's3://outputs/jobs/theirs',
  ])('refuses another tenant’s output written as %s', async (url) => {
    await expect(policy.refusalOfUrl('acme', url)).resolves.toBe(
      "jobs/theirs is not the output of one of this tenant's jobs",
    );
  });

  it('allows the same tenant’s outputs and other keys of allowed buckets; refuses other buckets', async () => {
    await expect(policy.refusalOfUrl('acme', 's3://outputs/jobs/mine/out.mp4')).resolves.toBeUndefined();
    await expect(policy.refusalOfUrl('acme', 's3://outputs/x/../jobs/mine/out.mp4')).resolves.toBeUndefined();
    await expect(policy.refusalOfUrl('acme', 's3://outputs/uploads/in.mp4')).resolves.toBeUndefined();
    await expect(policy.refusalOfUrl('acme', 's3://outputs/jobs/nobody/out.mp4')).resolves.toBe(
      "jobs/nobody is not the output of one of this tenant's jobs",
    );
    await expect(policy.refusalOfUrl('acme', 's3://elsewhere/in.mp4')).resolves.toMatch(/S3_INPUT_BUCKETS/);
    await expect(policy.refusalOfUrl('acme', 's3://outputs/../elsewhere/in.mp4')).resolves.toMatch(/leaves/);
  });
});
