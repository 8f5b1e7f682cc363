/**
 * Job outputs in S3 (or any S3-compatible store) with `@aws-sdk/client-s3`: upload under `jobs/{id}/{name}`, presign
 * downloads (at read and delivery time, never stored), download `s3://` inputs, and delete a job's outputs at retention.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { normalizeS3Url, type JobOutput } from '@gantry/contracts';

export interface S3Settings {
  S3_ENDPOINT?: string | undefined;
  S3_REGION: string;
  S3_BUCKET: string;
  S3_FORCE_PATH_STYLE: boolean;
  AWS_ACCESS_KEY_ID?: string | undefined;
  AWS_SECRET_ACCESS_KEY?: string | undefined;
  S3_PRESIGN_SECONDS: number;
}

/**
 * The bucket and key of an `s3://` URL in its canonical form (`normalizeS3Url`: dot segments resolved, percent-encoding
 * decoded): what is read is exactly what the input policy checked.
 */
export function parseS3Url(url: string): { bucket: string; key: string } {
  const n = normalizeS3Url(url);
  if (!n.ok) throw new Error(`not a valid s3://bucket/key URL (${n.reason}): ${url}`);
  return { bucket: n.bucket, key: n.key };
}

/** A download that would pass its byte cap (the object's announced length, or the bytes actually received). */
export class InputTooLargeError extends Error {
  override readonly name = 'InputTooLargeError';
  readonly code = 'INPUT_TOO_LARGE';
  constructor(readonly maxBytes: number) {
    super(`larger than the ${maxBytes}-byte cap`);
  }
}

/** A pass-through stream that fails with InputTooLargeError once more than `maxBytes` went through. */
export function byteCap(maxBytes: number): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      seen += chunk.length;
      if (seen > maxBytes) done(new InputTooLargeError(maxBytes));
      else done(null, chunk);
    },
  });
}

export class OutputStore {
  readonly client: S3Client;

  constructor(private readonly s: S3Settings) {
    this.client = new S3Client({
      region: s.S3_REGION,
      forcePathStyle: s.S3_FORCE_PATH_STYLE,
      ...(s.S3_ENDPOINT ? { endpoint: s.S3_ENDPOINT } : {}),
      ...(s.AWS_ACCESS_KEY_ID && s.AWS_SECRET_ACCESS_KEY
        ? { credentials: { accessKeyId: s.AWS_ACCESS_KEY_ID, secretAccessKey: s.AWS_SECRET_ACCESS_KEY } }
        : {}),
      maxAttempts: 3,
      // Connect 30 s; a socket idle for 120 s fails the request (the caller retries with a fresh body).
      requestHandler: { connectionTimeout: 30_000, requestTimeout: 120_000 },
      // Checksums only where S3 requires them: many S3-compatible stores (MinIO versions, s3rver) reject the
      // streaming trailer checksums the SDK sends by default since 2025.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }

  get bucket(): string {
    return this.s.S3_BUCKET;
  }

  outputKey(jobId: string, name: string): string {
    return `jobs/${jobId}/${name}`;
  }

  /** Uploads a local file as a job output; returns the output descriptor (without a download URL). */
  async uploadOutput(jobId: string, name: string, path: string, signal?: AbortSignal): Promise<JobOutput> {
    const { size } = await stat(path);
    const key = this.outputKey(jobId, name);
    await this.client.send(
      new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: createReadStream(path), ContentLength: size }),
      signal ? { abortSignal: signal } : {},
    );
    return { name, url: `s3://${this.bucket}/${key}`, sizeBytes: size };
  }

  async putObject(key: string, body: string | Buffer, contentType = 'application/octet-stream'): Promise<void> {
    await this.client.send(
      new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentType: contentType }),
    );
  }

  /** Downloads `s3://bucket/key` to a local file. */
  /** Downloads an object into `path`; with `maxBytes`, a larger object fails with InputTooLargeError. */
  async download(url: string, path: string, signal?: AbortSignal, maxBytes?: number): Promise<number> {
    const { bucket, key } = parseS3Url(url);
    const res = await this.client.send(
      new GetObjectCommand({ Bucket: bucket, Key: key }),
      signal ? { abortSignal: signal } : {},
    );
    if (!res.Body) throw new Error(`empty object ${url}`);
    const body = res.Body as Readable;
    if (maxBytes !== undefined) {
      if (res.ContentLength !== undefined && res.ContentLength > maxBytes) {
        body.destroy();
        throw new InputTooLargeError(maxBytes);
      }
      await pipeline(body, byteCap(maxBytes), createWriteStream(path));
      return (await stat(path)).size;
    }
    await pipeline(body, createWriteStream(path));
    return (await stat(path)).size;
  }

  /** A presigned GET URL for an `s3://` output (undefined for outputs stored elsewhere). */
  async presign(output: JobOutput): Promise<string | undefined> {
    if (!output.url.startsWith('s3://')) return undefined;
    const { bucket, key } = parseS3Url(output.url);
    return getSignedUrl(this.client, new GetObjectCommand({ Bucket: bucket, Key: key }), {
      expiresIn: this.s.S3_PRESIGN_SECONDS,
    });
  }

  /** Presigned URLs by output name (failures leave a name out rather than failing the read). */
  async presignAll(outputs: readonly JobOutput[] | undefined): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const o of outputs ?? []) {
      // A URL that cannot be signed now is left out of this read (documented above); the next read signs again.
      const url = await this.presign(o).catch(() => undefined);
      if (url) out[o.name] = url;
    }
    return out;
  }

  /**
   * Removes the given outputs that Gantry stored itself (`s3://` URLs; outputs PUT to a client's URL are not ours),
   * one DeleteObject each (retention). Returns how many were deleted; a missing object counts as deleted.
   */
  async deleteOutputs(outputs: readonly JobOutput[]): Promise<number> {
    let n = 0;
    for (const o of outputs) {
      if (!o.url.startsWith('s3://')) continue;
      const { bucket, key } = parseS3Url(o.url);
      await this.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
      n++;
    }
    return n;
  }

  /** Removes every output of a job (retention). */
  async deleteJobOutputs(jobId: string): Promise<number> {
    const prefix = `jobs/${jobId}/`;
    const list = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix }));
    const keys = (list.Contents ?? []).map((o) => ({ Key: o.Key! }));
    if (keys.length === 0) return 0;
    await this.client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: keys } }));
    return keys.length;
  }

  destroy(): void {
    this.client.destroy();
  }
}
