import { isParentOutputUrl } from '@gantry/contracts';
import { JobFailure, type AttemptContext } from './executor';

/**
 * The URL to download for one input: a parent output (`job:<parent id>/<name>`, v1.1) is resolved to the object the
 * parent stored (see runner/parent-outputs.ts); any other URL is returned as it is.
 */
export async function inputUrl(ctx: AttemptContext, url: string): Promise<string> {
  if (!isParentOutputUrl(url)) return url;
  if (!ctx.parentOutput)
    throw new JobFailure('INVALID_INPUT', `input ${url}: this worker cannot resolve parent outputs`, false);
  return ctx.parentOutput(url);
}
