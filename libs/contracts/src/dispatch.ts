import type { DispatchMessage, DispatchPayload } from './messages';

/** Most attempts one dispatch message may carry (a longer batch is malformed: terminated as poison). */
export const DISPATCH_BATCH_LIMIT = 32;

/** The attempts a dispatch message carries, each with the message's envelope (a single-attempt message: itself). */
export function dispatchAttempts(p: DispatchPayload): DispatchMessage[] {
  if (!('attempts' in p)) return [p];
  const { attempts, v, workerId, epoch, dispatchedAt } = p;
  return attempts.map((a) => ({ ...a, v, workerId, epoch, dispatchedAt }));
}
