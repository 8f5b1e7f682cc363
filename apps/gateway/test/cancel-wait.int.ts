/**
 * Cancelling a running job: the reply waits (at most 5 s) for the worker's `cancelled`, woken by the job's own
 * revision on NATS rather than by polling. A real nats-server and the gateway in-process; this test plays the worker
 * (it takes the job with a real compare-and-set and answers the cancel control message with one).
 */
import { cancelAttempt, startAttempt, systemClock, SUBJECTS, type AttemptOwner } from '@gantry/contracts';
import { decodeJson } from '@gantry/jetstream';
import { JobStore } from '@gantry/job-store';
import { CLIENT, startStack } from './harness';

type Stack = Awaited<ReturnType<typeof startStack>>;

describe('cancel of a running job (gateway + real NATS, the worker played by the test)', () => {
  let stack: Stack;
  let store: JobStore;

  beforeAll(async () => {
    stack = await startStack();
    store = new JobStore(stack.handle, systemClock);
  });
  afterAll(async () => {
    await stack?.stop();
  });

  /** Submits a job and starts it as worker `workerId`; returns its id and the attempt's owner. */
  async function running(workerId: string): Promise<{ id: string; owner: AttemptOwner }> {
    const r = await stack.api.as(CLIENT).json<{ id: string }>('POST', '/v1/jobs', { type: 'noop', input: {} });
    expect(r.status).toBe(202);
    const id = r.body.id;
    const owner: AttemptOwner = { workerId, generation: 1, attempt: 1 };
    await store.transition(id, (cur) =>
      startAttempt(cur.record, owner, { gpus: [], gpuIndices: [] }, systemClock.now()),
    );
    return { id, owner };
  }

  it("answers with the worker's `cancelled` as soon as the worker writes it", async () => {
    const { id, owner } = await running('cancel-wait-w1');
    let told = 0;
    // The worker: on the cancel control message, a moment of work, then the compare-and-set to cancelled.
    const sub = stack.handle.nc.subscribe(SUBJECTS.workerControl(owner.workerId), {
      callback: (_e, m) => {
        const c = decodeJson<{ type: string; jobId: string }>(m.data);
        if (c.type !== 'cancel' || c.jobId !== id) return;
        told = performance.now();
        setTimeout(() => {
          void store.transition(id, (cur) => cancelAttempt(cur.record, owner, systemClock.now()));
        }, 300);
      },
    });
    try {
      const r = await stack.api.as(CLIENT).json<{ status: string }>('POST', `/v1/jobs/${id}/cancel`);
      const answered = performance.now();
      expect(r.status).toBe(200);
      expect(r.body.status).toBe('cancelled');
      expect(told).toBeGreaterThan(0);
      // Woken by the revision, not by the 5 s bound (generous for a loaded machine).
      expect(answered - told).toBeLessThan(4_000);
    } finally {
      sub.unsubscribe();
    }
  });

  it('answers `running` after the bound when the worker never writes `cancelled`', async () => {
    const { id } = await running('cancel-wait-silent');
    const started = performance.now();
    const r = await stack.api.as(CLIENT).json<{ status: string }>('POST', `/v1/jobs/${id}/cancel`);
    const took = performance.now() - started;
    expect(r.status).toBe(200);
    expect(r.body.status).toBe('running');
    expect(took).toBeGreaterThanOrEqual(4_900);
    expect(took).toBeLessThan(30_000);
  });
});
