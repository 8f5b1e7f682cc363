import { CHANNELS, NOTIFIER_RPC, SCHEDULER_RPC, WORKER_RPC } from './channels';
import { PayloadError } from './guards';
import { JOB_STATUSES } from './job';
import { newJob, startAttempt, toEvent, type NewJobSpec } from './job-machine';
import { DISPATCH_BATCH_LIMIT, dispatchAttempts } from './dispatch';
import type { DispatchAttempt, DispatchBatch, DispatchMessage, WebhookDelivery, WorkerHeartbeat } from './messages';
import { NOTIFIER_RPC_OPS, SCHEDULER_RPC_OPS, SUBJECTS } from './names';

const t0 = new Date('2026-01-01T00:00:00.000Z');
const spec: NewJobSpec = {
  id: 'job1',
  tenant: 'default',
  type: 'noop',
  input: { a: [1, 2] },
  priority: 'normal',
  pool: 'default',
  timeoutSeconds: 60,
  maxAttempts: 3,
  retryDelaysMs: [1_000],
  metadata: {},
  gpu: { count: 1, memoryMb: 1024 },
};

function refusal(fn: () => unknown): PayloadError {
  try {
    fn();
  } catch (err) {
    if (err instanceof PayloadError) return err;
    throw err;
  }
  throw new Error('accepted a malformed payload');
}

describe('channels', () => {
  const queued = newJob(spec, t0);
  const event = toEvent(queued, t0);

  it('accepts the job events the job machine writes, as they are', () => {
    expect(CHANNELS.jobs.parse(event)).toBe(event);
    const owner = { workerId: 'w1', generation: 1, attempt: 1 };
    const e2 = toEvent(startAttempt(queued.record, owner, { gpus: ['GPU-1'], gpuIndices: [0] }, t0), t0);
    expect(CHANNELS.jobs.parse(JSON.parse(JSON.stringify(e2)))).toEqual(e2);
  });

  it('names the channel and the first bad field of a malformed job event', () => {
    const bad = { ...event, job: { ...event.job, status: 'exploded' } };
    const err = refusal(() => CHANNELS.jobs.parse(bad));
    expect(err.message).toBe(`jobs: job.status: expected one of ${JOB_STATUSES.join(', ')}`);
    expect(err.contract).toBe('jobs');
    expect(err.path).toBe('job.status');
    expect(refusal(() => CHANNELS.jobs.parse(null)).message).toBe('jobs: payload: expected an object');
    expect(refusal(() => CHANNELS.jobs.parse({ ...event, job: { ...event.job, id: 7 } })).path).toBe('job.id');
    expect(refusal(() => CHANNELS.jobs.parse({ ...event, job: { ...event.job, gpu: { count: 'x' } } })).path).toBe(
      'job.gpu.count',
    );
  });

  it('checks dispatches, nested records included', () => {
    const d: DispatchMessage = {
      v: 1,
      jobId: 'job1',
      generation: 1,
      attempt: 1,
      workerId: 'w1',
      gpuIndices: [0, 1],
      memoryMb: 0,
      epoch: 3,
      dispatchedAt: t0.toISOString(),
      record: queued.record,
      revision: 4,
    };
    expect(CHANNELS.dispatch.parse(d)).toBe(d);
    expect(refusal(() => CHANNELS.dispatch.parse({ ...d, v: 2 })).message).toBe('dispatch: v: expected 1');
    expect(refusal(() => CHANNELS.dispatch.parse({ ...d, gpuIndices: [0, 'one'] })).path).toBe('gpuIndices[1]');
    expect(refusal(() => CHANNELS.dispatch.parse({ ...d, attempt: 1.5 })).path).toBe('attempt');
    expect(refusal(() => CHANNELS.dispatch.parse({ ...d, record: { id: 'x' } })).path).toBe('record.tenant');
  });

  it('checks batched dispatches: 1 to DISPATCH_BATCH_LIMIT attempts, each checked, the envelope once', () => {
    const attempt = (i: number): DispatchAttempt => ({
      jobId: `job${i}`,
      generation: 1,
      attempt: 1,
      gpuIndices: [i % 2],
      memoryMb: 0,
      record: queued.record,
      revision: 4,
    });
    const b: DispatchBatch = {
      v: 1,
      workerId: 'w1',
      epoch: 3,
      dispatchedAt: t0.toISOString(),
      attempts: [attempt(0), attempt(1)],
    };
    expect(CHANNELS.dispatch.parse(b)).toBe(b);
    expect(dispatchAttempts(b)).toEqual([
      { ...attempt(0), v: 1, workerId: 'w1', epoch: 3, dispatchedAt: b.dispatchedAt },
      { ...attempt(1), v: 1, workerId: 'w1', epoch: 3, dispatchedAt: b.dispatchedAt },
    ]);
    const full = Array.from({ length: DISPATCH_BATCH_LIMIT }, (_, i) => attempt(i));
    expect(CHANNELS.dispatch.parse({ ...b, attempts: full })).toBeDefined();
    expect(refusal(() => CHANNELS.dispatch.parse({ ...b, attempts: [] })).path).toBe('attempts');
    expect(refusal(() => CHANNELS.dispatch.parse({ ...b, attempts: [...full, attempt(99)] })).message).toBe(
      `dispatch: attempts: expected 1 to ${DISPATCH_BATCH_LIMIT} attempts`,
    );
    expect(refusal(() => CHANNELS.dispatch.parse({ ...b, attempts: 'job1' })).path).toBe('attempts');
    expect(refusal(() => CHANNELS.dispatch.parse({ ...b, attempts: [attempt(0), { jobId: 'x' }] })).path).toBe(
      'attempts[1].generation',
    );
    expect(refusal(() => CHANNELS.dispatch.parse({ ...b, workerId: undefined })).path).toBe('workerId');
  });

  it('checks heartbeats: the optional capabilities may be absent (an older worker), never malformed', () => {
    const hb: WorkerHeartbeat = {
      v: 1,
      id: 'w1',
      pool: 'default',
      slots: 2,
      slotsPerGpu: 2,
      gpus: [],
      runningJobs: [],
      inflight: [],
      jobTypes: ['noop'],
      draining: false,
      startedAt: t0.toISOString(),
      heartbeatAt: t0.toISOString(),
      version: 'test',
    };
    expect(CHANNELS.workerHeartbeats.parse(hb)).toBe(hb);
    const current = { ...hb, dispatchBatchMax: DISPATCH_BATCH_LIMIT, dispatchRecordHint: false };
    expect(CHANNELS.workerHeartbeats.parse(current)).toBe(current);
    expect(refusal(() => CHANNELS.workerHeartbeats.parse({ ...hb, dispatchRecordHint: 'no' })).path).toBe(
      'dispatchRecordHint',
    );
    expect(refusal(() => CHANNELS.workerHeartbeats.parse({ ...hb, dispatchBatchMax: 1.5 })).path).toBe(
      'dispatchBatchMax',
    );
  });

  it('checks webhook deliveries and worker control messages', () => {
    const w: WebhookDelivery = {
      v: 1,
      webhookId: 'msg_1',
      jobId: 'job1',
      tenant: 't',
      type: 'job.completed',
      url: 'https://example.com/hook',
      attempts: 0,
      notBefore: 0,
      body: { type: 'job.completed', timestamp: 'x', sequence: 3, generation: 1, data: { any: 'thing' } },
    };
    expect(CHANNELS.webhooks.parse(w)).toBe(w);
    expect(refusal(() => CHANNELS.webhooks.parse({ ...w, body: null })).path).toBe('body');
    expect(refusal(() => CHANNELS.webhooks.parse({ ...w, type: 'job.priority_changed' })).path).toBe('type');

    expect(CHANNELS.workerControl.parse({ v: 1, type: 'cancel', jobId: 'j', generation: 2 })).toMatchObject({
      type: 'cancel',
    });
    expect(CHANNELS.workerControl.parse({ v: 1, type: 'cordon', uuid: 'GPU-1' })).toMatchObject({ type: 'cordon' });
    expect(refusal(() => CHANNELS.workerControl.parse({ v: 1, type: 'reboot' })).path).toBe('type');
    expect(refusal(() => CHANNELS.workerControl.parse({ v: 1, type: 'cancel', jobId: 'j' })).path).toBe('generation');
  });

  it('checks listing pages entry by entry', () => {
    const page = { v: 1, tenant: 't', bucket: 2, prev: null, entries: [[5, 'job1', 'queued', 'noop', 'normal', 1]] };
    expect(CHANNELS.listPages.parse(page)).toBe(page);
    const bad = { ...page, entries: [[5, 'job1', 'queued', 'noop', 'normal']] };
    expect(refusal(() => CHANNELS.listPages.parse(bad)).path).toBe('entries[0]');
  });
});

describe('rpcs', () => {
  it('declares every scheduler and notifier operation on its subject', () => {
    for (const op of SCHEDULER_RPC_OPS) expect(SCHEDULER_RPC[op].subject).toBe(SUBJECTS.schedulerRpc(op));
    for (const op of NOTIFIER_RPC_OPS) expect(NOTIFIER_RPC[op].subject).toBe(SUBJECTS.notifierRpc(op));
    expect(WORKER_RPC.gpuCordon.to('w1').subject).toBe(SUBJECTS.workerControl('w1'));
    expect(() => WORKER_RPC.gpuCordon.to('w1.>')).toThrow(/worker id/);
  });

  it('takes an absent or empty request for operations without one, and refuses anything else', () => {
    expect(SCHEDULER_RPC.queue.parseRequest(undefined)).toEqual({});
    expect(SCHEDULER_RPC.queue.parseRequest({})).toEqual({});
    expect(refusal(() => SCHEDULER_RPC.queue.parseRequest('x')).message).toBe(
      'scheduler.queue request: payload: expected an object or nothing',
    );
  });

  it('validates the queue configuration with one rule', () => {
    const cfg = SCHEDULER_RPC.config;
    expect(cfg.parseRequest({ maxConcurrentJobs: 0, maxQueueSize: 1 })).toEqual({
      maxConcurrentJobs: 0,
      maxQueueSize: 1,
    });
    expect(cfg.parseRequest({})).toEqual({});
    expect(refusal(() => cfg.parseRequest({ maxQueueSize: 0 })).message).toBe(
      'scheduler.config request: maxQueueSize: expected an integer from 1 to 100000000',
    );
    expect(refusal(() => cfg.parseRequest({ maxConcurrentJobs: -1 })).path).toBe('maxConcurrentJobs');
    expect(refusal(() => cfg.parseRequest({ maxConcurrentJobs: 1_000_001 })).path).toBe('maxConcurrentJobs');
    expect(refusal(() => cfg.parseRequest({ maxConcurrentJobs: 2.5 })).path).toBe('maxConcurrentJobs');
    expect(refusal(() => cfg.parseRequest(null)).path).toBe('');
  });

  it('checks replies', () => {
    const reply = { positions: { a: { queuePosition: 1, estimatedWaitSeconds: null } } };
    expect(SCHEDULER_RPC.positions.parseReply(reply)).toBe(reply);
    expect(refusal(() => SCHEDULER_RPC.positions.parseReply({ positions: { a: { queuePosition: '1' } } })).path).toBe(
      'positions.a.queuePosition',
    );
    expect(refusal(() => SCHEDULER_RPC['list-sync'].parseReply({})).message).toBe(
      'scheduler.list-sync reply: seq: expected an integer',
    );
  });
});
