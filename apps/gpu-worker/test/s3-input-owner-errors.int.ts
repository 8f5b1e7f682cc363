/**
 * An `s3://…/jobs/<id>/…` input is checked against the owner of job `<id>` in the job store. Against a real
 * nats-server: another tenant's job is refused for good (INVALID_INPUT, not retryable); with nats-server stopped the
 * lookup fails, and that fails the attempt as retryable (DOWNLOAD_FAILED) — until v1.1 the failed lookup read as
 * "not this tenant's job" and failed the job for good on a broker blip.
 */
import { newJob, streamDeclarations, systemClock } from '@gantry/contracts';
import { NatsHandle, provision } from '@gantry/jetstream';
import { JobStore } from '@gantry/job-store';
import { OutputStore } from '@gantry/storage';
import { NatsServer, noopSpec } from '@gantry/testing';
import { createLogger } from '@gantry/telemetry';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JobFailure } from '../src/executors/executor';
import { DEFAULT_TRANSFERS, downloadInput } from '../src/executors/transfers';
import { S3InputPolicy, jobTenantLookup } from '../src/runner/s3-input-policy';

const logger = createLogger('s3-input-owner-errors-test', 'silent');
const BUCKET = 'gantry-outputs';

describe('s3 input owner check while nats-server is down (real nats-server)', () => {
  let server: NatsServer;
  let nats: NatsHandle;
  let dir: string;
  const store = new OutputStore({
    S3_REGION: 'us-east-1',
    S3_BUCKET: BUCKET,
    S3_FORCE_PATH_STYLE: true,
    S3_PRESIGN_SECONDS: 60,
    S3_ENDPOINT: 'http://127.0.0.1:9',
  });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gantry-owner-'));
    server = await NatsServer.start();
    nats = await NatsHandle.connect({ servers: [server.url], name: 's3-owner-test', logger, timeoutMs: 300 });
    await provision(nats, { streams: [streamDeclarations().jobs], buckets: [] }, logger);
  });
  afterAll(async () => {
    store.destroy();
    await nats?.drain().catch(() => undefined);
    await server?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses another tenant for good, but a failed lookup is a retryable failure of the attempt', async () => {
    const jobs = new JobStore(nats, systemClock);
    await jobs.create(newJob(noopSpec('owned-by-bravo', { tenant: 'bravo' }), systemClock.now()));
    const policy = new S3InputPolicy(BUCKET, '', { tenantOf: jobTenantLookup(jobs) });
    const download = (name: string) =>
      downloadInput(
        `s3://${BUCKET}/jobs/owned-by-bravo/out.bin`,
        join(dir, name),
        store,
        DEFAULT_TRANSFERS,
        new AbortController().signal,
        (bucket, key) => policy.refusal('acme', bucket, key),
      ).then(
        () => {
          throw new Error('expected a failure');
        },
        (e: unknown) => e as JobFailure,
      );

    const refused = await download('a');
    expect(refused).toMatchObject({ code: 'INVALID_INPUT', retryable: false });

    await server.stop();
    try {
      const failed = await download('b');
      expect(failed).toMatchObject({ code: 'DOWNLOAD_FAILED', retryable: true });
      expect(failed.message).toMatch(/owner could not be checked/);
    } finally {
      await server.restart();
    }
  }, 60_000);
});
