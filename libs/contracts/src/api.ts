/**
 * The HTTP API's request and answer bodies that are not job views (API.md §3), shared by the gateway (its DTOs
 * implement these) and `@gantry/client`, so the client's types are the ones the gateway validates against.
 */
import type { JobStatus, Priority } from './job';
import type { JobView } from './job-view';
import type { FailedWebhookView } from './messages';

/** `POST /v1/jobs` body (and each job of `POST /v1/batches`). Type-specific `input` is checked by the job type. */
export interface JobRequest {
  type: string;
  input?: Record<string, unknown>;
  priority?: Priority;
  pool?: string;
  callbackUrl?: string;
  callbackToken?: string;
  timeoutSeconds?: number;
  maxAttempts?: number;
  gpu?: { count: number; memoryMb?: number };
  upload?: { url: string };
  metadata?: Record<string, unknown>;
  /** Since v1.1: run no earlier than this ISO time (not with `delaySeconds`); the job is `scheduled` until then. */
  runAt?: string;
  /** Since v1.1: run no earlier than this many seconds after acceptance (not with `runAt`). */
  delaySeconds?: number;
  /**
   * Since v1.1: parents that must all complete first (job ids of the same tenant, at most 100; inside a batch also
   * `ref:<ref>` of an earlier job of the batch). Inputs may name a parent's output as `job:<id or ref:ref>/<name>`.
   */
  dependsOn?: string[];
  /** Since v1.1, batches only: this job's name in the batch, for later jobs' `dependsOn` (`ref:<ref>`). */
  ref?: string;
}

/** `POST /v1/batches` body. */
export interface BatchRequest {
  jobs: JobRequest[];
  callbackUrl?: string;
}

/** `POST /v1/batches` answer. */
export interface BatchSubmitted {
  id: string;
  jobs: JobView[];
}

/** `GET /v1/batches/{id}`. */
export interface BatchStatusView {
  id: string;
  total: number;
  counts: Record<JobStatus, number>;
}

/** `GET /v1/jobs` answer. */
export interface JobPage {
  items: JobView[];
  nextCursor: string | null;
}

/** `GET /v1/jobs` query. */
export interface JobListQuery {
  status?: JobStatus;
  type?: string;
  priority?: Priority;
  limit?: number;
  cursor?: string;
  /** Admin keys only: list this tenant's jobs instead of the key's own (a client key gets 403). */
  tenant?: string;
}

/** `GET /v1/webhooks/failed` answer. */
export interface FailedWebhookPage {
  items: FailedWebhookView[];
  nextCursor: string | null;
}

/** `PUT /v1/queue/config` body. */
export interface QueueConfigRequest {
  maxConcurrentJobs?: number;
  maxQueueSize?: number;
}

/** `GET /v1/whoami`: the role and tenant of the presented key. */
export interface Whoami {
  role: 'admin' | 'client';
  tenant: string;
}

/** RFC 9457 problem details, the body of every error answer. */
export interface ProblemDetails {
  type: string;
  title: string;
  status: number;
  detail?: string;
  instance?: string;
  errors?: { field: string; message: string }[];
}

/** A job lifecycle event as `GET /v1/jobs/{id}/events` and webhooks carry it (API.md §5). */
export interface JobEventMessage {
  type: string;
  timestamp?: string;
  sequence: number;
  generation: number;
  data: JobView;
}
