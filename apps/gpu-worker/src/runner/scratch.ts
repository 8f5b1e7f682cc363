/**
 * Scratch space. Every worker process gets its own directory under WORKER_SCRATCH_DIR (`<root>/<workerId>`), and
 * every attempt a private directory inside it, removed when the attempt ends. A worker that was killed cannot remove
 * its directory, so the next worker starting on the same host removes the directories of processes that are gone
 * (each directory records its owner's host name and pid).
 */
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '@gantry/telemetry';

const OWNER_FILE = '.gantry-owner.json';

interface Owner {
  host: string;
  pid: number;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Creates this worker's scratch directory after removing those of dead workers on this host. */
export async function prepareScratch(root: string, workerId: string, logger: Logger): Promise<string> {
  await mkdir(root, { recursive: true });
  for (const entry of await readdir(root, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const dir = join(root, entry.name);
    const owner = await readFile(join(dir, OWNER_FILE), 'utf8').then(
      (t) => JSON.parse(t) as Owner,
      () => undefined,
    );
    if (!owner || owner.host !== hostname() || alive(owner.pid)) continue;
    // Best-effort: what cannot be removed now is tried again at the next worker start.
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    logger.info({ dir }, 'removed the scratch directory of a worker that is gone');
  }
  const mine = join(root, workerId);
  await mkdir(mine, { recursive: true });
  await writeFile(join(mine, OWNER_FILE), JSON.stringify({ host: hostname(), pid: process.pid } satisfies Owner));
  return mine;
}

export async function removeScratch(dir: string): Promise<void> {
  // Best-effort at stop: a leftover is removed by the next worker that starts on this host (its owner is gone).
  await rm(dir, { recursive: true, force: true }).catch(() => undefined);
}
