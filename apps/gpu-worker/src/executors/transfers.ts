/**
 * Moving bytes for a job: inputs from `http(s)://` (address policy enforced at connect time) or `s3://`, outputs to
 * S3 or to a client's presigned `upload.url`. HTTP transfers: connect 30 s, read/write idle 120 s, 3 attempts with
 * backoff; a 4xx other than 408/429 is not retried.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { BlockedAddressError, readText, safeRequest } from '@gantry/net';
import { normalizeS3Url } from '@gantry/contracts';
import { InputTooLargeError, byteCap, type OutputStore } from '@gantry/storage';
import { Backoff, sleep } from '@gantry/jetstream';
import { inSpan } from '@gantry/telemetry';
import { JobFailure } from './executor';

export interface TransferSettings {
  allowPrivate: boolean;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  attempts: number;
  backoffMs: number;
}

export const DEFAULT_TRANSFERS: TransferSettings = {
  allowPrivate: false,
  connectTimeoutMs: 30_000,
  idleTimeoutMs: 120_000,
  attempts: 3,
  backoffMs: 1_000,
};

/** A refusal that another attempt would get again (a 4xx, a private address): not retried. */
export class PermanentTransferError extends Error {
  override readonly name = 'PermanentTransferError';
  readonly code = 'TRANSFER_REFUSED';
}

function isPermanent(err: unknown): boolean {
  return (
    err instanceof PermanentTransferError || err instanceof BlockedAddressError || err instanceof InputTooLargeError
  );
}

/**
 * Runs `fn` up to `s.attempts` times with exponential backoff (backoffMs, ×2 …) unless the failure is permanent or
 * the attempt was aborted. `fn` must start from scratch each time (a fresh stream for a body).
 */
export async function withRetries<T>(s: TransferSettings, signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
  let last: unknown;
  const backoff = new Backoff({ initialMs: s.backoffMs, maxMs: Number.MAX_SAFE_INTEGER, jitter: false });
  for (let i = 0; i < s.attempts; i++) {
    if (signal.aborted) throw signal.reason;
    try {
      return await fn();
    } catch (err) {
      last = err;
      if (isPermanent(err) || signal.aborted) break;
      if (i < s.attempts - 1) await sleep(backoff.next(), signal);
    }
  }
  throw last;
}

/** 3xx (redirects are never followed: the target was not checked) and 4xx other than 408/429 are permanent. */
function permanent(status: number): boolean {
  return status >= 300 && status < 500 && status !== 408 && status !== 429;
}

/** An S3 SDK error as a transfer error: 4xx (NoSuchKey, AccessDenied, …) are permanent. */
export function fromS3Error(err: unknown): Error {
  const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  const name = err instanceof Error ? err.name : 'Error';
  const message = err instanceof Error ? err.message : String(err);
  if (status !== undefined && permanent(status))
    return new PermanentTransferError(`S3 answered ${status} ${name}: ${message}`);
  return err instanceof Error ? err : new Error(message);
}

/**
 * Downloads one input into `dest`; returns its size. `s3ReadRefusal` (the job's policy) may refuse an s3:// object
 * before anything is read. With `maxBytes`, an input announced or received larger than that fails the attempt with
 * `DISK_LIMIT` (not retryable), and the partial file is removed.
 */
async function downloadInputUntraced(
  url: string,
  dest: string,
  store: OutputStore,
  s: TransferSettings,
  signal: AbortSignal,
  s3ReadRefusal?: (bucket: string, key: string) => Promise<string | undefined>,
  maxBytes?: number,
): Promise<number> {
  if (url.startsWith('s3://') && s3ReadRefusal) {
    // The canonical form (dot segments, percent-encoding, backslashes resolved): the one the store reads.
    const n = normalizeS3Url(url);
    if (!n.ok) throw new JobFailure('INVALID_INPUT', `input ${url} may not be read: it ${n.reason}`, false);
    // The policy looks up the owner of a `jobs/<id>/…` object in the job store: a lookup that fails (NATS trouble)
    // says nothing about the owner, so it fails this attempt as retryable — until v1.1 it read as "not this tenant's
    // job" and failed the job for good with INVALID_INPUT.
    let refusal: string | undefined;
    try {
      refusal = await s3ReadRefusal(n.bucket, n.key);
    } catch (err) {
      throw new JobFailure(
        'DOWNLOAD_FAILED',
        `input ${url}: its owner could not be checked (${String(err)}); the attempt can be retried`,
        true,
        undefined,
        { cause: err },
      );
    }
    if (refusal) throw new JobFailure('INVALID_INPUT', `input ${url} may not be read: ${refusal}`, false);
  }
  try {
    if (url.startsWith('s3://')) {
      return await withRetries(s, signal, () =>
        store.download(url, dest, signal, maxBytes).catch((err: unknown) => {
          throw err instanceof InputTooLargeError ? err : fromS3Error(err);
        }),
      );
    }
    return await withRetries(s, signal, async () => {
      const res = await safeRequest({
        method: 'GET',
        url,
        timeoutMs: s.connectTimeoutMs + s.idleTimeoutMs,
        connectTimeoutMs: s.connectTimeoutMs,
        idleTimeoutMs: s.idleTimeoutMs,
        allowPrivate: s.allowPrivate,
        signal,
      });
      if (res.status < 200 || res.status >= 300) {
        await readText(res, 1_024).catch(() => '');
        const msg = `GET answered ${res.status}${res.status < 400 ? ' (redirects are not followed)' : ''}`;
        throw permanent(res.status) ? new PermanentTransferError(msg) : new Error(msg);
      }
      if (maxBytes !== undefined) {
        const announced = Number(res.headers['content-length']);
        if (Number.isFinite(announced) && announced > maxBytes) {
          res.body.destroy();
          throw new InputTooLargeError(maxBytes);
        }
        await pipeline(res.body, byteCap(maxBytes), createWriteStream(dest));
      } else {
        await pipeline(res.body, createWriteStream(dest));
      }
      return (await stat(dest)).size;
    });
  } catch (err) {
    if (signal.aborted) throw err;
    if (err instanceof InputTooLargeError) {
      // Best-effort: the partial file is in the attempt's scratch, removed with it; the DISK_LIMIT below is the point.
      await rm(dest, { force: true }).catch(() => undefined);
      throw new JobFailure(
        'DISK_LIMIT',
        `input ${redactUrl(url)} is ${err.message} (MAX_INPUT_BYTES, or what MAX_SCRATCH_BYTES leaves)`,
        false,
      );
    }
    throw new JobFailure(
      'DOWNLOAD_FAILED',
      `cannot download input ${redactUrl(url)}: ${(err as Error).message}`,
      !isPermanent(err),
    );
  }
}

/** PUTs a file (or a JSON error document) to a presigned URL. */
export async function putToUrl(
  url: string,
  body: { path: string } | { json: unknown },
  s: TransferSettings,
  signal: AbortSignal,
): Promise<number> {
  return withRetries(s, signal, async () => {
    let size: number;
    let payload: string | ReturnType<typeof createReadStream>;
    let contentType: string;
    if ('path' in body) {
      size = (await stat(body.path)).size;
      payload = createReadStream(body.path);
      contentType = 'application/octet-stream';
    } else {
      payload = JSON.stringify(body.json);
      size = Buffer.byteLength(payload);
      contentType = 'application/json';
    }
    const res = await safeRequest({
      method: 'PUT',
      url,
      headers: { 'content-type': contentType, 'content-length': String(size) },
      body: payload,
      timeoutMs: s.connectTimeoutMs + s.idleTimeoutMs,
      connectTimeoutMs: s.connectTimeoutMs,
      idleTimeoutMs: s.idleTimeoutMs,
      allowPrivate: s.allowPrivate,
      signal,
    });
    await readText(res, 4_096).catch(() => '');
    if (res.status < 200 || res.status >= 300) {
      const msg = `PUT answered ${res.status}`;
      throw permanent(res.status) ? new PermanentTransferError(msg) : new Error(msg);
    }
    return size;
  });
}

/** The URL without its query (the presigned signature is a secret). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return 'invalid-url';
  }
}

/** Downloads one input into `dest` (a `job download` span, child of the attempt's `job run`); returns its size. */
export async function downloadInput(
  url: string,
  dest: string,
  store: OutputStore,
  s: TransferSettings,
  signal: AbortSignal,
  s3ReadRefusal?: (bucket: string, key: string) => Promise<string | undefined>,
  maxBytes?: number,
): Promise<number> {
  return inSpan(
    'job download',
    { attributes: { 'url.full': redactUrl(url), 'file.name': dest.split('/').pop() ?? '' } },
    async (span) => {
      const size = await downloadInputUntraced(url, dest, store, s, signal, s3ReadRefusal, maxBytes);
      span.setAttribute('gantry.bytes', size);
      return size;
    },
  );
}
