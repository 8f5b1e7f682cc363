/** Retry decisions of the job machine: a retryable failure waits out the delay of its attempt; the last one fails. */
import type { JobRecord } from './job';
import { failAttempt, jobError, newJob, startAttempt } from './job-machine';

describe('failAttempt and the retry delays', () => {
  function running(maxAttempts: number, attempt: number): JobRecord {
    const at = new Date(0);
    let r = newJob(
      {
        id: 'j',
        tenant: 't',
        type: 'noop',
        input: {},
        priority: 'normal',
        pool: 'p',
        timeoutSeconds: 5,
        maxAttempts,
        retryDelaysMs: [100, 200],
        metadata: {},
      },
      at,
    ).record;
    for (let a = 1; a <= attempt; a++) {
      r = { ...r, status: 'queued', attempts: a - 1 };
      r = startAttempt(r, { workerId: 'w', generation: 1, attempt: a }, { gpus: [], gpuIndices: [] }, at).record;
    }
    return r;
  }

  it('retries a retryable failure after the delay of that attempt, and fails at once when not retryable', () => {
    const now = new Date(1_000);
    const r1 = failAttempt(
      running(3, 1),
      { workerId: 'w', generation: 1, attempt: 1 },
      jobError('TIMEOUT', 't', true),
      now,
    );
    expect(r1.type).toBe('job.retrying');
    expect(r1.record.retryAt).toBe(new Date(1_100).toISOString());
    const r2 = failAttempt(
      running(3, 2),
      { workerId: 'w', generation: 1, attempt: 2 },
      jobError('TIMEOUT', 't', true),
      now,
    );
    expect(r2.record.retryAt).toBe(new Date(1_200).toISOString());
    const last = failAttempt(
      running(3, 3),
      { workerId: 'w', generation: 1, attempt: 3 },
      jobError('TIMEOUT', 't', true),
      now,
    );
    expect(last.type).toBe('job.failed');
    const fatal = failAttempt(
      running(3, 1),
      { workerId: 'w', generation: 1, attempt: 1 },
      jobError('EXIT_CODE', 'x', false),
      now,
    );
    expect(fatal.type).toBe('job.failed');
    expect(fatal.record.error?.code).toBe('EXIT_CODE');
  });
});
