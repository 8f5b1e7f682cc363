import { constants as fsConstants } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import type { JobOutput } from '@gantry/contracts';
import type { OutputStore } from '@gantry/storage';
import { inSpan } from '@gantry/telemetry';
import { JobFailure, type AttemptContext } from './executor';
import { lstatIfExists } from './lstat';
import { fromS3Error, putToUrl, redactUrl, withRetries, type TransferSettings } from './transfers';

/**
 * Uploads the declared outputs of an attempt: to `s3://$S3_BUCKET/jobs/{id}/{name}`, or — when the job gave an
 * `upload.url` — PUT to that presigned URL (such a job writes exactly one output; the gateway refuses others). Each
 * upload is tried up to 3 times with backoff. The dispatch is acked only after this returns.
 */
/**
 * A file the job wrote, read only when it is a regular file (not a symlink — the worker would follow it with its own
 * rights —, a FIFO or a device) and opened without following links; at most `maxBytes`. Undefined when absent.
 */
export async function readRegularFile(path: string, maxBytes: number): Promise<string | undefined> {
  const st = await lstatIfExists(path);
  if (!st) return undefined;
  if (!st.isFile()) throw new JobFailure('JOB_FAILED', `${path.split('/').pop()} is not a regular file`, false);
  const fh = await open(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
  try {
    const buf = Buffer.alloc(Math.min(maxBytes, st.size));
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    return buf.subarray(0, bytesRead).toString('utf8');
  } finally {
    await fh.close();
  }
}

/** Refuses, before any work, a job whose `upload.url` cannot take its outputs (exactly one is needed). */
export function assertUploadTarget(ctx: AttemptContext, names: readonly string[]): void {
  if (ctx.record.upload?.url && names.length !== 1) {
    throw new JobFailure(
      'INVALID_INPUT',
      `upload.url takes exactly one output; this job declares ${names.length}`,
      false,
    );
  }
}

async function uploadOutputsUntraced(
  ctx: AttemptContext,
  names: readonly string[],
  store: OutputStore,
  transfers: TransferSettings,
): Promise<JobOutput[]> {
  assertUploadTarget(ctx, names);
  const upload = ctx.record.upload?.url;
  for (const name of names) {
    // Outputs are the job's files: only regular files are uploaded (a symlink would be followed with the worker's
    // rights, a FIFO would block the upload forever).
    const st = await lstatIfExists(join(ctx.scratchDir, name));
    if (!st) throw new JobFailure('JOB_FAILED', `declared output ${name} was not written`, false);
    if (!st.isFile()) {
      throw new JobFailure(
        'JOB_FAILED',
        `declared output ${name} is not a regular file (a link, FIFO or device)`,
        false,
      );
    }
  }
  const out: JobOutput[] = [];
  ctx.progress(99, 'uploading');
  for (const name of names) {
    const path = join(ctx.scratchDir, name);
    try {
      if (upload) {
        const size = await putToUrl(upload, { path }, transfers, ctx.signal);
        out.push({ name, url: redactUrl(upload), sizeBytes: size });
      } else {
        // A fresh file stream per try: the SDK cannot retry a consumed stream body itself.
        out.push(
          await withRetries(transfers, ctx.signal, () =>
            store.uploadOutput(ctx.record.id, name, path, ctx.signal).catch((err: unknown) => {
              throw fromS3Error(err);
            }),
          ),
        );
      }
    } catch (err) {
      if (ctx.signal.aborted) throw err;
      throw new JobFailure('UPLOAD_FAILED', `cannot upload ${name}: ${(err as Error).message}`, true);
    }
  }
  return out;
}

/** Uploads the declared outputs inside a `job upload` span (child of `job run`). */
export async function uploadOutputs(
  ctx: AttemptContext,
  names: readonly string[],
  store: OutputStore,
  transfers: TransferSettings,
): Promise<JobOutput[]> {
  return inSpan(
    'job upload',
    { attributes: { 'gantry.outputs': names.length, 'gantry.upload.presigned': !!ctx.record.upload?.url } },
    async (span) => {
      const out = await uploadOutputsUntraced(ctx, names, store, transfers);
      span.setAttribute(
        'gantry.bytes',
        out.reduce((n, o) => n + o.sizeBytes, 0),
      );
      return out;
    },
  );
}
