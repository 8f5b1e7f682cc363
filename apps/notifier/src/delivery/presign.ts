/**
 * `downloadUrl`s are presigned at delivery time (API.md §5), never stored: a retry hours later still carries a URL that
 * works for S3_PRESIGN_SECONDS from that attempt.
 */
import type { JobOutput, WebhookBody } from '@gantry/contracts';

/** Presigned URLs by output name (outputs it cannot presign are left out). */
export type Presigner = (outputs: readonly JobOutput[]) => Promise<Record<string, string>>;

function isOutput(o: unknown): o is JobOutput {
  return typeof o === 'object' && o !== null && typeof (o as JobOutput).name === 'string';
}

/** The body's JSON text with fresh `downloadUrl`s in `data.outputs`. */
export async function renderBody(body: WebhookBody, presign: Presigner | undefined): Promise<string> {
  const data = body.data as { outputs?: unknown } | null;
  const outputs = Array.isArray(data?.outputs) ? data.outputs.filter(isOutput) : [];
  if (!presign || outputs.length === 0) return JSON.stringify(body);
  const urls = await presign(outputs);
  const fresh = outputs.map((o) => {
    const downloadUrl = urls[o.name];
    const { downloadUrl: _stale, ...rest } = o;
    return downloadUrl ? { ...rest, downloadUrl } : rest;
  });
  return JSON.stringify({ ...body, data: { ...(body.data as object), outputs: fresh } });
}
