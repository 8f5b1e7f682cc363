/**
 * Which queued jobs to dispatch now, and where: the pure core of the leader's dispatch round.
 *
 * Repeatedly takes the best job over every pool (strict priority with aging applied, then weighted fair share between
 * tenants of one level, then FIFO) and places it on a worker
 * of its pool with a free slot, token, and — for GPU jobs — GPU memory. A job that does not fit *now* blocks its
 * pool for the rest of the round: nothing behind it may take the slot it is waiting for (no priority inversion).
 * A job no worker of its pool could ever fit is remembered in `unplaceable` and skipped (it would block forever);
 * so are jobs whose tenant is at its cap. Every decision holds its tokens in `state` before the next is made.
 */
import { compareCandidates, type Candidate, type RankFn } from './order-index';
import type { SchedulerState } from './scheduler-state';

export interface Decision {
  candidate: Candidate;
  workerId: string;
  gpuIndices: number[];
  memoryMb: number;
}

export interface PlanOptions {
  now: number;
  agingMs: number;
  /** At most this many decisions. */
  limit: number;
  /** Job ids that no worker of their pool can ever fit (grows as such jobs are met). */
  unplaceable: Set<string>;
  /** Fair-share rank of a tenant's head (default: the state's fair share). */
  rank?: RankFn;
}

export function planDispatch(state: SchedulerState, o: PlanOptions): Decision[] {
  const out: Decision[] = [];
  const blockedPools = new Set<string>();
  const tenantBlocked = (t: string) => state.capacity.tenantBlocked(t);
  const rank = o.rank ?? ((t: string, gpuCount: number) => state.rank(t, gpuCount, o.now));
  while (out.length < o.limit && state.capacity.globalFree > 0) {
    let best: Candidate | undefined;
    for (const pool of state.index.poolNames()) {
      if (blockedPools.has(pool)) continue;
      const c = state.index.best(pool, o.now, o.agingMs, tenantBlocked, o.unplaceable, rank);
      if (c && (!best || compareCandidates(c, best) < 0)) best = c;
    }
    if (!best) break;
    const p = state.capacity.place({
      pool: best.pool,
      gpuCount: best.entry.gpuCount,
      gpuMemoryMb: best.entry.gpuMemoryMb,
    });
    if (!p.ok) {
      if (p.reason === 'never-fits') o.unplaceable.add(best.entry.id);
      else blockedPools.add(best.pool);
      continue;
    }
    state.hold(best, { workerId: p.workerId, gpuIndices: p.gpuIndices, memoryMb: p.memoryMb }, o.now);
    out.push({ candidate: best, workerId: p.workerId, gpuIndices: p.gpuIndices, memoryMb: p.memoryMb });
  }
  return out;
}

/**
 * The decisions of a round in progress to give back because jobs of a strictly higher priority were queued in their
 * pool since the round was planned (a round awaits record reads before it publishes; with a deep queue the records of
 * the jobs it dispatches are read from the stream, not cached). Worst decisions first (`decisions` is in plan order,
 * best first), at most as many per pool as such jobs wait there (tenants at their cap not counted). The caller
 * requeues them — each goes back to its place — and plans again at once: the higher-priority jobs take the tokens
 * instead of waiting until the round's lower-priority dispatches finish.
 *
 * The better jobs are counted by base level against each decision's effective level, so a job that aging promoted
 * is never given back for a job merely aged to the same level, and an urgent arrival always counts. Jobs no worker
 * can ever fit (`unplaceable`) are subtracted from every count, so they never make a decision go back.
 */
export function outranked(
  state: SchedulerState,
  decisions: readonly Decision[],
  unplaceable: ReadonlySet<string> = new Set(),
): Decision[] {
  const out: Decision[] = [];
  const tenantBlocked = (t: string) => state.capacity.tenantBlocked(t);
  /** Per pool: jobs already matched by a decision given back. */
  const matched = new Map<string, number>();
  /** Per pool and level: eligible queued jobs above it (computed once per pool and level). */
  const above = new Map<string, number>();
  for (let i = decisions.length - 1; i >= 0; i--) {
    const d = decisions[i]!;
    const { pool, effective } = d.candidate;
    if (effective <= 0) continue;
    const key = `${effective}\u0000${pool}`;
    let n = above.get(key);
    if (n === undefined) {
      n = Math.max(0, state.index.countAbove(pool, effective, tenantBlocked) - unplaceable.size);
      above.set(key, n);
    }
    const m = matched.get(pool) ?? 0;
    if (n <= m) continue;
    matched.set(pool, m + 1);
    out.push(d);
  }
  return out;
}
