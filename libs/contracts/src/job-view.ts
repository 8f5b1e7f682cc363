import type { JobError, JobOutput, JobProgress, JobRecord, JobStatus, Priority } from './job';

/** The job as clients see it (API.md §3). Never carries the callback token or internal bookkeeping. */
export interface JobView {
  id: string;
  type: string;
  status: JobStatus;
  priority: Priority;
  pool: string;
  tenant: string;
  input: Record<string, unknown>;
  metadata: Record<string, unknown>;
  attempts: number;
  maxAttempts: number;
  timeoutSeconds: number;
  generation: number;
  sequence: number;
  progress?: JobProgress;
  queuePosition?: number;
  estimatedWaitSeconds?: number | null;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  retryAt?: string;
  /** When the job was asked to run (v1.1 `runAt` / `delaySeconds`), millisecond precision. */
  runAt?: string;
  elapsedSeconds?: number;
  workerId?: string;
  gpus?: string[];
  gpu?: { count: number; memoryMb: number; declaredMemoryMb?: number };
  callbackUrl?: string;
  batchId?: string;
  /** The cron schedule that created the job (v1.1). */
  scheduleId?: string;
  result?: unknown;
  outputs?: JobOutput[];
  error?: Omit<JobError, 'retryable'> & { retryable?: boolean };
  cancelRequested?: boolean;
  /** The W3C trace id of the job's trace (from the submit request's `traceparent`), for trace links. */
  traceId?: string;
}

export interface ViewExtras {
  queuePosition?: number;
  estimatedWaitSeconds?: number | null;
  /** Presigned download URLs by output name (presigning is asynchronous, so callers do it first). */
  downloadUrls?: Readonly<Record<string, string>>;
}

export function toJobView(r: JobRecord, now: Date, extras: ViewExtras = {}): JobView {
  const view: JobView = {
    id: r.id,
    type: r.type,
    status: r.status,
    priority: r.priority,
    pool: r.pool,
    tenant: r.tenant,
    input: r.input,
    metadata: r.metadata,
    attempts: r.attempts,
    maxAttempts: r.maxAttempts,
    timeoutSeconds: r.timeoutSeconds,
    generation: r.generation,
    sequence: r.sequence,
    createdAt: r.createdAt,
  };
  if (r.progress) view.progress = r.progress;
  if (r.status === 'queued') {
    if (extras.queuePosition !== undefined) view.queuePosition = extras.queuePosition;
    if (extras.estimatedWaitSeconds !== undefined) view.estimatedWaitSeconds = extras.estimatedWaitSeconds;
  }
  if (r.startedAt) {
    view.startedAt = r.startedAt;
    const end = r.finishedAt ? Date.parse(r.finishedAt) : r.status === 'running' ? now.getTime() : undefined;
    if (end !== undefined) view.elapsedSeconds = Math.max(0, (end - Date.parse(r.startedAt)) / 1000);
  }
  if (r.finishedAt) view.finishedAt = r.finishedAt;
  if (r.retryAt) view.retryAt = r.retryAt;
  if (r.runAt) view.runAt = r.runAt;
  if (r.workerId) view.workerId = r.workerId;
  if (r.gpus) view.gpus = r.gpus;
  if (r.gpu) view.gpu = r.gpu;
  if (r.callbackUrl) view.callbackUrl = r.callbackUrl;
  if (r.batchId) view.batchId = r.batchId;
  if (r.scheduleId) view.scheduleId = r.scheduleId;
  if (r.result !== undefined) view.result = r.result;
  if (r.outputs) {
    view.outputs = r.outputs.map((o) => {
      const downloadUrl = extras.downloadUrls?.[o.name];
      return downloadUrl ? { ...o, downloadUrl } : o;
    });
  }
  if (r.error) view.error = r.error;
  if (r.cancelRequestedAt && r.status === 'running') view.cancelRequested = true;
  const traceId = r.traceparent?.split('-')[1];
  if (traceId && /^[0-9a-f]{32}$/.test(traceId) && !/^0+$/.test(traceId)) view.traceId = traceId;
  return view;
}
