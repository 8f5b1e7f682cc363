/**
 * The whole-history check (invariant 3): every job's full revision history, read back from the jobs stream at the end
 * of a run, must be a path the state machine allows — one terminal event per generation, attempts that never overlap,
 * per-job sequence numbers 1, 2, 3 … with no reuse and no gap. The check reads the *stream*, not the ids a test
 * thinks it submitted, so a job nobody asked about is checked too; ids the test was answered 202 for and that have
 * no history at all are reported as lost.
 */
import { jetstream, DeliverPolicy } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import {
  STREAMS,
  SUBJECTS,
  expandEvent,
  isTerminal,
  type JobEvent,
  type JobEventType,
  type JobStatus,
} from '@gantry/contracts';

/** One revision of a job: its stream sequence and the event stored there. */
export interface HistoryEntry {
  revision: number;
  event: JobEvent;
}

export interface HistoryCheckOptions {
  /** The job's last generation must have ended (default true: checks run once everything settled). */
  requireTerminal?: boolean;
}

/** The status each event type leaves the record in; internal revisions keep the status they found. */
const STATUS_OF: Partial<Record<JobEventType, JobStatus>> = {
  'job.scheduled': 'scheduled',
  'job.waiting': 'waiting',
  'job.queued': 'queued',
  'job.started': 'running',
  'job.progress': 'running',
  'job.retrying': 'retrying',
  'job.completed': 'completed',
  'job.failed': 'failed',
  'job.cancelled': 'cancelled',
};

/**
 * What is wrong with one job's history, in words (empty when nothing is). `entries` must be in stream order, as read.
 * Pure, so that a spec can feed it crafted bad histories. An outcome revision that also records its attempt's start
 * is checked as the two events it stands for (the derived `job.started`, then the outcome), both at its revision.
 */
export function historyViolations(
  jobId: string,
  stored: readonly HistoryEntry[],
  o: HistoryCheckOptions = {},
): string[] {
  const entries = stored.flatMap((e) =>
    expandEvent(e.event).map((event, i) => ({ revision: e.revision, event, derivedBefore: i > 0 })),
  );
  const out: string[] = [];
  const bad = (e: { revision: number; event: JobEvent } | undefined, msg: string) =>
    out.push(`job ${jobId}${e ? ` rev ${e.revision} (${e.event.type} seq ${e.event.sequence})` : ''}: ${msg}`);
  if (entries.length === 0) {
    bad(undefined, 'no history at all (lost)');
    return out;
  }
  let prev: (typeof entries)[number] | undefined;
  /** The attempt running now, as the records tell it. */
  let open: { attempt: number; workerId: string; generation: number } | undefined;
  let lastEnd: { generation: number; attempt: number; at: number } | undefined;
  const terminals = new Map<number, number>();
  for (const e of entries) {
    const ev = e.event;
    const r = ev.job;
    if (r.id !== jobId) bad(e, `record of another job (${r.id})`);
    if (ev.sequence !== r.sequence) bad(e, `event sequence ${ev.sequence} ≠ record sequence ${r.sequence}`);
    if (ev.generation !== r.generation) bad(e, `event generation ${ev.generation} ≠ record ${r.generation}`);
    const expected = STATUS_OF[ev.type] ?? prev?.event.job.status;
    if (r.status !== expected) bad(e, `status ${r.status} after a ${ev.type}`);
    const at = Date.parse(ev.timestamp);

    if (!prev) {
      const first = ev.type === 'job.queued' || ev.type === 'job.scheduled' || ev.type === 'job.waiting';
      if (!first || r.sequence !== 1 || r.generation !== 1 || r.attempts !== 0) {
        bad(
          e,
          'the first revision is not job.queued, job.scheduled or job.waiting, sequence 1, generation 1, attempts 0',
        );
      }
      if ((ev.type === 'job.waiting') !== (r.dependsOn?.length ?? 0) > 0) bad(e, 'waiting ⇔ dependsOn broken');
    } else {
      // A job released from waiting whose runAt is still to come is scheduled then; nothing else becomes scheduled.
      if (ev.type === 'job.scheduled' && prev.event.job.status !== 'waiting')
        bad(e, `job.scheduled after ${prev.event.job.status}`);
      if (ev.type === 'job.waiting' && r.generation === prev.event.job.generation)
        bad(e, 'job.waiting other than at submit or by an admin retry');
      // A delayed job never enters the queue before its time (by the writer's clock).
      if (prev.event.job.status === 'scheduled' && r.status === 'queued' && r.runAt && Date.parse(r.runAt) > at)
        bad(e, `queued ${Date.parse(r.runAt) - at} ms before its runAt ${r.runAt}`);
      const p = prev.event.job;
      if (e.revision < prev.revision || (e.revision === prev.revision && !e.derivedBefore))
        bad(e, `stream revision not after ${prev.revision}`);
      if (r.sequence <= p.sequence) bad(e, `sequence ${r.sequence} reused (previous ${p.sequence})`);
      else if (r.sequence !== p.sequence + 1) bad(e, `sequence jumped from ${p.sequence} to ${r.sequence}`);
      if (r.generation !== p.generation) {
        const adminRetry =
          r.generation === p.generation + 1 &&
          isTerminal(p.status) &&
          (ev.type === 'job.queued' || ev.type === 'job.waiting') &&
          r.attempts === 0;
        if (!adminRetry) bad(e, `generation ${p.generation} → ${r.generation} other than by an admin retry`);
      } else if (isTerminal(p.status)) {
        bad(e, `generation ${r.generation} goes on after its terminal ${prev.event.type}`);
      }
    }

    if (ev.type === 'job.started') {
      if (open) {
        bad(e, `attempt ${r.attempts} on ${r.workerId} started while attempt ${open.attempt} on ${open.workerId} ran`);
      }
      if (prev && prev.event.job.status !== 'queued') bad(e, `started from ${prev.event.job.status}, not queued`);
      const before = prev?.event.job.attempts ?? 0;
      if (r.attempts !== before + 1) bad(e, `attempt ${r.attempts} started after ${before} attempts`);
      if (!r.workerId) bad(e, 'started with no worker');
      if (r.attempts > r.maxAttempts) bad(e, `attempt ${r.attempts} of at most ${r.maxAttempts}`);
      if (lastEnd && lastEnd.generation === r.generation && at < lastEnd.at) {
        bad(e, `attempt ${r.attempts} started before attempt ${lastEnd.attempt} ended (${lastEnd.at - at} ms overlap)`);
      }
      open = { attempt: r.attempts, workerId: r.workerId ?? '?', generation: r.generation };
    } else if (r.status === 'running') {
      if (!open) bad(e, 'running with no attempt started');
      else if (r.attempts !== open.attempt || r.workerId !== open.workerId) {
        bad(e, `from attempt ${r.attempts} on ${r.workerId} while attempt ${open.attempt} on ${open.workerId} runs`);
      }
    } else if (open) {
      // The attempt ends here: by its own outcome, a lost-worker verdict, a cancel, or a hand-back (not counted).
      const handBack = ev.type === 'job.queued';
      const want = handBack ? open.attempt - 1 : open.attempt;
      if (r.attempts !== want) bad(e, `ends attempt ${open.attempt} but records ${r.attempts} attempts`);
      lastEnd = { generation: r.generation, attempt: open.attempt, at };
      open = undefined;
    } else if (prev && r.attempts !== prev.event.job.attempts && r.generation === prev.event.job.generation) {
      bad(e, `attempts changed from ${prev.event.job.attempts} to ${r.attempts} with no attempt running`);
    }

    const endStatus = STATUS_OF[ev.type];
    if (endStatus && isTerminal(endStatus)) terminals.set(r.generation, (terminals.get(r.generation) ?? 0) + 1);
    prev = e;
  }
  const last = prev!.event.job;
  for (let g = 1; g <= last.generation; g++) {
    const n = terminals.get(g) ?? 0;
    const ended = g < last.generation || o.requireTerminal !== false;
    if (n > 1) bad(undefined, `generation ${g} ended ${n} times`);
    if (n === 0 && ended) bad(undefined, `generation ${g} never ended (last: ${prev!.event.type}, ${last.status})`);
  }
  return out;
}

/** Every job's history from the jobs stream, in stream order, keyed by job id (one ordered read of the stream). */
export async function readJobHistories(natsUrl: string): Promise<Map<string, HistoryEntry[]>> {
  const nc = await connect({ servers: natsUrl, name: 'history-check' });
  try {
    const js = jetstream(nc);
    const info = await (await js.jetstreamManager()).streams.info(STREAMS.jobs);
    const out = new Map<string, HistoryEntry[]>();
    const last = info.state.last_seq;
    if (info.state.messages === 0) return out;
    const consumer = await js.consumers.get(STREAMS.jobs, {
      filter_subjects: SUBJECTS.jobsAll,
      deliver_policy: DeliverPolicy.All,
    });
    const msgs = await consumer.consume();
    for await (const m of msgs) {
      const event = m.json<JobEvent>();
      const list = out.get(event.job.id) ?? [];
      list.push({ revision: m.seq, event });
      out.set(event.job.id, list);
      if (m.seq >= last) break;
    }
    await msgs.close();
    return out;
  } finally {
    await nc.close();
  }
}

export interface WholeHistoryReport {
  jobs: number;
  revisions: number;
  violations: string[];
}

/**
 * Reads every job's history and checks each one; `expectIds` (the ids answered 202) must all be there. Throws an
 * error listing the violations (the first 30) when there are any; returns the counts otherwise.
 */
export async function assertWholeHistory(
  natsUrl: string,
  o: HistoryCheckOptions & {
    expectIds?: Iterable<string>;
    /** When given, only these jobs must have ended; the others (e.g. left waiting on purpose) need a valid path. */
    settled?: Iterable<string>;
  } = {},
): Promise<WholeHistoryReport> {
  const settled = o.settled ? new Set(o.settled) : undefined;
  const histories = await readJobHistories(natsUrl);
  const violations: string[] = [];
  for (const id of o.expectIds ?? [])
    if (!histories.has(id)) violations.push(`job ${id}: accepted but no history (lost)`);
  let revisions = 0;
  for (const [id, entries] of histories) {
    revisions += entries.length;
    const requireTerminal = o.requireTerminal !== false && (!settled || settled.has(id));
    violations.push(...historyViolations(id, entries, { requireTerminal }));
  }
  if (violations.length > 0) {
    throw new Error(
      `whole-history check: ${violations.length} violation(s) over ${histories.size} jobs:\n` +
        violations.slice(0, 30).join('\n'),
    );
  }
  return { jobs: histories.size, revisions, violations };
}
