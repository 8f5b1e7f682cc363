import { access } from 'node:fs/promises';
import { join } from 'node:path';
import type { JobOutput } from '@gantry/contracts';
import type { OutputStore } from '@gantry/storage';
import { JobFailure, type AttemptContext } from './executor';
import { putToUrl, redactUrl, type TransferSettings } from './transfers';

/**
 * Uploads the declared outputs of an attempt: to `s3://$S3_BUCKET/jobs/{id}/{name}`, or — when the job gave an
 * `upload.url` — PUT to that presigned URL (one output). Acked only after this succeeds.
 */
export async function uploadOutputs(
  ctx: AttemptContext,
  names: readonly string[],
  store: OutputStore,
  transfers: TransferSettings,
): Promise<JobOutput[]> {
  const out: JobOutput[] = [];
  for (const name of names) {
    const path = join(ctx.scratchDir, name);
    try {
      await access(path);
    } catch {
      throw new JobFailure('JOB_FAILED', `declared output ${name} was not written`, false);
    }
  }
  ctx.progress(99, 'uploading');
  for (const name of names) {
    const path = join(ctx.scratchDir, name);
    try {
      const upload = ctx.record.upload?.url;
      if (upload) {
        const size = await putToUrl(upload, { path }, transfers, ctx.signal);
        out.push({ name, url: redactUrl(upload), sizeBytes: size });
      } else {
        out.push(await store.uploadOutput(ctx.record.id, name, path, ctx.signal));
      }
    } catch (err) {
      if (ctx.signal.aborted) throw err;
      throw new JobFailure('UPLOAD_FAILED', `cannot upload ${name}: ${(err as Error).message}`, true);
    }
  }
  return out;
}
