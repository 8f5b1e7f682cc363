/**
 * Jobs with dependencies (`dependsOn`) wait in their record (status `waiting`) until every parent has `completed`;
 * when a parent ends `failed` or `cancelled` they end `cancelled` with `DEPENDENCY_FAILED`. Every replica keeps the
 * edges warm ({@link DependencyIndex}, fed by the projection, rebuilt from the records on start); the leader alone
 * decides and writes, with a compare-and-set on each child's record (so a deposed leader racing the new one writes
 * nothing twice), and re-evaluates every waiting job when it takes over.
 *
 * A child's own end is a revision like any other: the projection hands it back here as a parent that ended, so a
 * failure cascades down the graph one level per pass — no walk over the graph, no scan of all jobs. A parent whose
 * state is not known (its revisions passed before any child named it: terminal parents are not in the queue model)
 * is read from the job store, once per pass for all its children, with bounded concurrency.
 *
 * Each decision is a span in the child's own trace (`job.release`, `job.dependency_failed`) whose links point at the
 * parents' traces — the one whose completion released it, or the one that failed it, marked (docs/observability.md) —
 * and counts in `gantry_jobs_released_total` / `gantry_jobs_dependency_failed_total` by pool.
 *
 * A parent with many children releases them in chunks: each chunk reads its children's records (bounded) and writes
 * their releases with bounded concurrency in acceptance order, so the children take their FIFO places in the order
 * they were accepted.
 */
import {
  TransitionRefused,
  dependencyFailed,
  releaseWaiting,
  type Clock,
  type JobRecord,
  type StoredJob,
  type Transition,
} from '@gantry/contracts';
import { Backoff, mapBounded, type BackoffOptions } from '@gantry/jetstream';
import { JobNotFoundError, type JobStore } from '@gantry/job-store';
import {
  ATTR,
  Counter,
  contextFromTraceparent,
  inSpan,
  linkToTraceparent,
  type Link,
  type Logger,
  type Registry,
} from '@gantry/telemetry';
import { decide, parentStateOf, type ParentState, type WaitingChild } from '../domain/dependency-index';
import type { SchedulerState } from '../domain/scheduler-state';
import { DUE_TIMER_BACKOFF } from '../timers/due-timer';

export interface DependencyTrackerOptions {
  /** Children evaluated per step (default 1,024). */
  chunk?: number;
  /** Record reads and writes in flight (default 64). */
  concurrency?: number;
  /**
   * A parent with no record fails its children only once they have waited this long (default 30 s): a batch's
   * jobs may land in any order, and a child must not fail because its parent's first revision is a moment behind.
   */
  missingParentGraceMs?: number;
  backoff?: BackoffOptions;
  metrics?: DependencyMetrics;
  /** Each step's outcome (metrics, tests, the figures). */
  onStep?: (s: StepReport) => void;
}

export interface StepReport {
  released: number;
  failed: number;
  /** Writes that did not reach the broker (tried again after the backoff). */
  errors: number;
  ms: number;
}

/** Counters of the leader's decisions, by the child's pool (docs/observability.md, Metrics). */
export class DependencyMetrics {
  readonly released: Counter<'pool'>;
  readonly failed: Counter<'pool'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.released = new Counter({
      name: 'gantry_jobs_released_total',
      help: 'Waiting jobs released (every parent completed) by this scheduler as leader, by pool',
      labelNames: ['pool'],
      registers,
    });
    this.failed = new Counter({
      name: 'gantry_jobs_dependency_failed_total',
      help: 'Waiting jobs cancelled with DEPENDENCY_FAILED (a parent failed, was cancelled or is missing) by this scheduler as leader, by pool',
      labelNames: ['pool'],
      registers,
    });
  }
}

/** What a link's `gantry.link.kind` says about the linked span (docs/observability.md). */
const LINK_KIND = 'gantry.link.kind';

/**
 * The links of a child's decision span: for a release, every parent's trace, the one whose completion released it
 * (the latest revision) marked `released_by`; for a cascade, the parent that failed it (`failed_by`).
 */
function decisionLinks(
  parents: readonly string[],
  stateOf: (id: string) => ParentState | undefined,
  failedBy?: string,
): Link[] {
  const link = (id: string, kind: string): Link | undefined => {
    const st = stateOf(id);
    return linkToTraceparent(st?.traceparent, st?.tracestate, { [LINK_KIND]: kind, [ATTR.jobId]: id });
  };
  if (failedBy !== undefined) {
    const l = link(failedBy, 'failed_by');
    return l ? [l] : [];
  }
  let last: string | undefined;
  let lastRevision = -1;
  for (const p of parents) {
    const r = stateOf(p)?.revision ?? -1;
    if (r > lastRevision) [last, lastRevision] = [p, r];
  }
  return parents.flatMap((p) => link(p, p === last ? 'released_by' : 'parent') ?? []);
}

export class DependencyTracker {
  private active = false;
  private readonly dirty = new Set<string>();
  private pending = false;
  private running: Promise<void> | undefined;
  private readonly later = new Set<NodeJS.Timeout>();
  private readonly backoff: Backoff;
  private readonly chunk: number;
  private readonly concurrency: number;
  private readonly graceMs: number;

  constructor(
    private readonly jobs: JobStore,
    private readonly state: SchedulerState,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly options: DependencyTrackerOptions = {},
  ) {
    this.backoff = new Backoff(options.backoff ?? DUE_TIMER_BACKOFF);
    this.chunk = options.chunk ?? 1_024;
    this.concurrency = options.concurrency ?? 64;
    this.graceMs = options.missingParentGraceMs ?? 30_000;
  }

  /** The projection says these waiting children may be decidable now (ignored unless leading). */
  mark(childIds: readonly string[]): void {
    if (!this.active) return;
    for (const id of childIds) this.dirty.add(id);
    this.kick();
  }

  /** Leading: every waiting job is evaluated against its parents' current state. */
  activate(): void {
    this.active = true;
    for (const id of this.state.dependencies.ids()) this.dirty.add(id);
    this.kick();
  }

  deactivate(): void {
    this.active = false;
    this.dirty.clear();
    for (const t of this.later) clearTimeout(t);
    this.later.clear();
  }

  /** Resolves once nothing is left to evaluate now (tests). */
  async idle(): Promise<void> {
    while (this.running || this.pending) await (this.running ?? new Promise((r) => setImmediate(r)));
  }

  private kick(): void {
    if (this.pending || this.running || !this.active) return;
    this.pending = true;
    // After the revisions that arrived together are applied: one pass for a parent's thousands of children.
    setImmediate(() => {
      this.pending = false;
      this.running = this.drain()
        .catch((err: unknown) => this.logger.error({ err }, 'dependency evaluation failed'))
        .finally(() => {
          this.running = undefined;
          if (this.dirty.size > 0) this.kick();
        });
    });
  }

  private evaluateLater(ids: readonly string[], ms: number): void {
    const t = setTimeout(() => {
      this.later.delete(t);
      this.mark(ids);
    }, ms);
    this.later.add(t);
  }

  private async drain(): Promise<void> {
    while (this.active && this.dirty.size > 0) {
      const batch: string[] = [];
      for (const id of this.dirty) {
        this.dirty.delete(id);
        batch.push(id);
        if (batch.length >= this.chunk) break;
      }
      await this.step(batch);
    }
  }

  private async step(batch: readonly string[]): Promise<void> {
    const started = Date.now();
    const index = this.state.dependencies;
    const waiting = (ids: readonly string[]) =>
      ids.flatMap((id) => {
        const c = index.get(id);
        return c ? [[id, c] as const] : [];
      });
    let children = waiting(batch);
    if (children.length === 0) return;

    // Parents not known yet: one read each for the whole step.
    const unknown = new Set<string>();
    for (const [, c] of children) for (const p of c.parents) if (!index.stateOf(p)) unknown.add(p);
    if (unknown.size > 0) {
      try {
        const read = await this.jobs.getMany([...unknown], { consistent: true, concurrency: this.concurrency });
        for (const p of unknown) {
          const s = read.get(p);
          index.learn(p, s ? parentStateOf(s) : { status: 'missing', revision: 0 });
        }
      } catch (err) {
        this.failedStep(
          children.map(([id]) => id),
          err,
        );
        return;
      }
      children = waiting(batch);
    }

    const now = this.clock.now();
    const decisions: {
      id: string;
      c: WaitingChild;
      decide: (cur: JobRecord) => Transition;
      release: boolean;
      links: Link[];
      cause?: string;
    }[] = [];
    const recheck: string[] = [];
    let recheckMs = this.graceMs;
    for (const [id, c] of children) {
      const v = decide(c.parents, (p) => index.stateOf(p));
      switch (v.kind) {
        case 'release':
          decisions.push({
            id,
            c,
            release: true,
            decide: (cur) => releaseWaiting(cur, now),
            links: decisionLinks(c.parents, (p) => index.stateOf(p)),
          });
          break;
        case 'fail': {
          if (v.status === 'missing') {
            const waited = now.getTime() - c.since;
            if (waited < this.graceMs) {
              // Read again at the end of the grace (its first revision may still be on its way).
              index.forget(v.parentId);
              recheck.push(id);
              recheckMs = Math.min(recheckMs, Math.max(100, this.graceMs - waited));
              break;
            }
          }
          const { parentId, status } = v;
          decisions.push({
            id,
            c,
            release: false,
            decide: (cur) => dependencyFailed(cur, now, parentId, status),
            links: decisionLinks(c.parents, (p) => index.stateOf(p), parentId),
            cause: parentId,
          });
          break;
        }
        case 'unknown':
          // Its parent's state was dropped while reading (the child stopped waiting meanwhile, or a race): again.
          recheck.push(id);
          break;
        case 'wait':
          break;
      }
    }
    if (recheck.length > 0) this.evaluateLater(recheck, recheckMs);
    if (decisions.length === 0) return;

    // The children's records first (bounded), then the writes started in acceptance order, each publishing at once
    // (the record read is the compare-and-set hint): the broker gives the released ones their FIFO keys in that order.
    decisions.sort((a, b) => a.c.seq - b.c.seq);
    let current: Map<string, StoredJob>;
    try {
      // Direct reads (no stream-leader round trip): a stale one only costs the compare-and-set a re-read.
      current = await this.jobs.getMany(
        decisions.map((d) => d.id),
        { concurrency: this.concurrency },
      );
    } catch (err) {
      this.failedStep(
        decisions.map((d) => d.id),
        err,
      );
      return;
    }
    const report: StepReport = { released: 0, failed: 0, errors: 0, ms: 0 };
    const errored: string[] = [];
    let lastError: unknown;
    await mapBounded(decisions, this.concurrency, async (d) => {
      const hint = current.get(d.id);
      try {
        // In the child's own trace, linked to its parents' (docs/observability.md): the revision's publish is a child.
        const wrote = await inSpan(
          d.release ? 'job.release' : 'job.dependency_failed',
          {
            parent: contextFromTraceparent(hint?.record.traceparent, hint?.record.tracestate),
            attributes: {
              [ATTR.jobId]: d.id,
              'gantry.job.parents': d.c.parents.length,
              ...(d.cause !== undefined ? { 'gantry.dependency.failed_parent': d.cause } : {}),
            },
            links: d.links,
          },
          async (span) => {
            try {
              // A hint that is not waiting may be a stale replica's: the transition reads the record itself then.
              await this.jobs.transition(
                d.id,
                (s) => d.decide(s.record),
                hint?.record.status === 'waiting' ? { current: hint } : {},
              );
              return true;
            } catch (err) {
              if (!(err instanceof TransitionRefused || err instanceof JobNotFoundError)) throw err;
              // Decided already (by a predecessor, or the job ended meanwhile): nothing written, not an error.
              span.setAttribute('gantry.outcome', 'unchanged');
              return false;
            }
          },
        );
        if (!wrote) return;
        if (d.release) {
          report.released++;
          this.options.metrics?.released.inc({ pool: d.c.pool });
        } else {
          report.failed++;
          this.options.metrics?.failed.inc({ pool: d.c.pool });
        }
      } catch (err) {
        errored.push(d.id);
        lastError = err;
      }
    });
    report.errors = errored.length;
    report.ms = Date.now() - started;
    if (errored.length > 0) this.failedStep(errored, lastError);
    else this.backoff.reset();
    this.options.onStep?.(report);
    if (report.released + report.failed >= 100)
      this.logger.info({ ...report, children: children.length }, 'dependencies resolved');
  }

  private failedStep(ids: readonly string[], err: unknown): void {
    const waitMs = this.backoff.next();
    this.logger.warn(
      { err, jobs: ids.length, retryInMs: waitMs, failures: this.backoff.attempts },
      'could not resolve dependencies; backing off',
    );
    this.evaluateLater(ids, waitMs);
  }
}
