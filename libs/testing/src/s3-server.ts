/**
 * An S3-compatible object store on loopback (s3rver: real HTTP, SigV4 checked, presigned URLs work), for tests and
 * for `npm run up`'s embedded store. Credentials are s3rver's fixed pair.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import S3rver from '@20minutes/s3rver';

export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

export interface S3ServerOptions {
  port?: number;
  directory?: string;
  buckets?: string[];
}

export class S3Server {
  private constructor(
    private readonly server: { close(): Promise<void> },
    readonly endpoint: string,
    readonly directory: string,
    private readonly ownsDirectory: boolean,
  ) {}

  static async start(o: S3ServerOptions = {}): Promise<S3Server> {
    const directory = o.directory ?? mkdtempSync(join(tmpdir(), 'gantry-s3-'));
    const server = new S3rver({
      address: '127.0.0.1',
      port: o.port ?? 0,
      directory,
      silent: true,
      configureBuckets: (o.buckets ?? ['gantry-outputs']).map((name) => ({ name, configs: [] })),
    });
    const addr = (await server.run()) as { port: number };
    return new S3Server(server, `http://127.0.0.1:${addr.port}`, directory, !o.directory);
  }

  /** Environment variables that point Gantry's services at this store. */
  env(bucket = 'gantry-outputs'): Record<string, string> {
    return {
      S3_ENDPOINT: this.endpoint,
      S3_BUCKET: bucket,
      S3_REGION: 'us-east-1',
      S3_FORCE_PATH_STYLE: 'true',
      AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
    };
  }

  async stop(): Promise<void> {
    await this.server.close();
    if (this.ownsDirectory) rmSync(this.directory, { recursive: true, force: true });
  }
}
