/** Lifecycle events published straight onto the jobs stream, for tests that drive the notifier without a gateway. */
import { HEADERS, SUBJECTS, newId, type JobEvent, type JobRecord, type PublicEventType } from '@gantry/contracts';
import { publishJson, type NatsHandle } from '@gantry/jetstream';

/** A first revision (`job.queued` unless told) of a fresh no-op job of `tenant` with a callback to `callbackUrl`. */
export function callbackEvent(callbackUrl: string, o: { tenant?: string; type?: PublicEventType } = {}): JobEvent {
  const now = new Date().toISOString();
  const job: JobRecord = {
    id: newId(),
    tenant: o.tenant ?? 'default',
    type: 'noop',
    input: {},
    priority: 'normal',
    pool: 'default',
    callbackUrl,
    timeoutSeconds: 60,
    maxAttempts: 1,
    retryDelaysMs: [],
    metadata: {},
    status: 'queued',
    generation: 1,
    attempts: 0,
    sequence: 1,
    enqueuedAt: now,
    createdAt: now,
    updatedAt: now,
  };
  return { type: o.type ?? 'job.queued', timestamp: now, sequence: 1, generation: 1, job };
}

/**
 * Publishes the events onto the jobs stream, `chunk` at a time (each with the first revision's message id and the
 * headers the job store writes).
 */
export async function publishAll(client: NatsHandle, events: JobEvent[], chunk = 100): Promise<void> {
  for (let i = 0; i < events.length; i += chunk) {
    await Promise.all(
      events.slice(i, i + chunk).map((e) =>
        publishJson(client.js, SUBJECTS.job(e.job.id), e, {
          msgID: `${e.job.id}.1.1`,
          headers: {
            [HEADERS.eventType]: e.type,
            [HEADERS.jobId]: e.job.id,
            [HEADERS.callback]: e.job.callbackUrl ? '1' : '0',
            [HEADERS.tenant]: e.job.tenant,
          },
        }),
      ),
    );
  }
}

/** The sum of a Prometheus metric's samples (every label set) in an exposition text. */
export function metric(text: string, name: string): number {
  let sum = 0;
  for (const m of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))) sum += Number(m[1]);
  return sum;
}
