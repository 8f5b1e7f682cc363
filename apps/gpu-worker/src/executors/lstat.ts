import type { Stats } from 'node:fs';
import { lstat } from 'node:fs/promises';

/**
 * `lstat` that answers undefined only when the path is not there (ENOENT, or ENOTDIR for a parent that is a file);
 * any other failure (EACCES, EIO, …) is thrown, so it is never mistaken for "absent".
 */
export async function lstatIfExists(path: string): Promise<Stats | undefined> {
  try {
    return await lstat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
}
