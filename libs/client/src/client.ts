/**
 * `GantryClient`: the typed HTTP client of Gantry's API (API.md §3). It runs unchanged in Node ≥ 20 and in browsers
 * (the dashboard loads the compiled file as-is): `fetch` only, no Node built-ins, and its contract imports
 * (./contracts.js) are types only, so it shares the exact shapes the gateway validates without a runtime dependency.
 */
import type {
  BatchRequest,
  BatchStatusView,
  BatchSubmitted,
  ConcurrencyStats,
  FailedWebhookPage,
  FailedWebhookView,
  JobEventMessage,
  JobListQuery,
  JobPage,
  JobRequest,
  JobStatus,
  JobView,
  Priority,
  ProblemDetails,
  QueueConfigRequest,
  QueueMetrics,
  QueueState,
  SchedulePage,
  ScheduleRequest,
  ScheduleView,
  TenantView,
  Whoami,
  WorkerView,
} from './contracts.js';
import { GantryApiError, GantryError, GantryNetworkError, WaitTimeoutError } from './errors.js';
import { readSse } from './sse.js';

export interface GantryClientOptions {
  /** The gateway's base URL, e.g. `http://127.0.0.1:8080`. */
  url: string;
  /** An API key (`admin` or `client`). */
  apiKey: string;
  /** Per-request timeout (not applied to event streams). Default 30 000. */
  timeoutMs?: number;
  /** A `fetch` to use instead of the global one. */
  fetch?: typeof fetch;
}

export interface RequestOptions {
  signal?: AbortSignal;
}

export interface SubmitOptions extends RequestOptions {
  /** `Idempotency-Key`: a repeat with the same key and body within 24 h returns the original job and creates nothing. */
  idempotencyKey?: string;
}

export interface EventsOptions {
  signal?: AbortSignal;
  /** Resume after this event sequence (`Last-Event-ID`). */
  after?: number;
}

export interface WaitOptions {
  /** Give up (WaitTimeoutError) after this long. Default: wait as long as it takes. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Called with every event while waiting (e.g. to draw a progress bar). */
  onEvent?: (event: JobEventMessage) => void;
}

/** The statuses a job never leaves (unless an admin retries it). */
export const TERMINAL_JOB_STATUSES: readonly JobStatus[] = ['completed', 'failed', 'cancelled'];
export const isTerminalStatus = (s: string): boolean => (TERMINAL_JOB_STATUSES as readonly string[]).includes(s);

/** How long a dropped event stream waits before it reconnects (the gateway's `retry:` is 2 s). */
const RECONNECT_MS = 1_000;

export class GantryClient {
  readonly url: string;
  private readonly apiKey: string;
  private readonly timeoutMs: number;
  private readonly fetchImpl: typeof fetch;

  readonly jobs: JobsApi;
  readonly batches: BatchesApi;
  readonly queue: QueueApi;
  readonly workers: WorkersApi;
  readonly webhooks: WebhooksApi;
  readonly tenants: TenantsApi;
  readonly schedules: SchedulesApi;

  constructor(o: GantryClientOptions) {
    if (!o.url) throw new GantryError('API_ERROR', 'GantryClient needs a url');
    if (!o.apiKey) throw new GantryError('API_ERROR', 'GantryClient needs an apiKey');
    this.url = o.url.replace(/\/+$/, '');
    this.apiKey = o.apiKey;
    this.timeoutMs = o.timeoutMs ?? 30_000;
    this.fetchImpl = o.fetch ?? ((input, init) => fetch(input, init));
    this.jobs = new JobsApi(this);
    this.batches = new BatchesApi(this);
    this.queue = new QueueApi(this);
    this.workers = new WorkersApi(this);
    this.webhooks = new WebhooksApi(this);
    this.tenants = new TenantsApi(this);
    this.schedules = new SchedulesApi(this);
  }

  /** The role and tenant of this client's key. */
  whoami(o: RequestOptions = {}): Promise<Whoami> {
    return this.request('GET', '/v1/whoami', undefined, o);
  }

  /** Sends one request; answers the parsed JSON body, or throws GantryApiError / GantryNetworkError. */
  async request<T>(
    method: string,
    path: string,
    body?: unknown,
    o: RequestOptions & { headers?: Record<string, string> } = {},
  ): Promise<T> {
    const res = await this.send(method, path, body, o, true);
    const text = await res.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /** Sends a request and returns the raw response when it is a success (used for streams). */
  async send(
    method: string,
    path: string,
    body: unknown,
    o: RequestOptions & { headers?: Record<string, string> },
    timeout: boolean,
  ): Promise<Response> {
    const signals = [o.signal, timeout ? AbortSignal.timeout(this.timeoutMs) : undefined].filter(
      (s): s is AbortSignal => s !== undefined,
    );
    let res: Response;
    try {
      res = await this.fetchImpl(`${this.url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.apiKey}`,
          accept: 'application/json',
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          ...o.headers,
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        ...(signals.length ? { signal: signals.length === 1 ? signals[0] : AbortSignal.any(signals) } : {}),
      });
    } catch (err) {
      if (o.signal?.aborted) throw err;
      throw new GantryNetworkError(`cannot reach ${this.url}: ${describe(err)}`, err);
    }
    if (res.ok) return res;
    const text = await res.text().catch(() => '');
    let problem: ProblemDetails;
    try {
      problem = JSON.parse(text) as ProblemDetails;
      if (typeof problem.title !== 'string') throw new Error('not a problem');
    } catch {
      problem = {
        type: 'about:blank',
        title: res.statusText || 'error',
        status: res.status,
        detail: text.slice(0, 200),
      };
    }
    const retryAfter = Number(res.headers.get('retry-after'));
    throw new GantryApiError(
      res.status,
      problem,
      Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : undefined,
    );
  }
}

function describe(err: unknown): string {
  // Duck-typed rather than `instanceof`: errors may come from another realm (a test VM, an iframe).
  const e = err as { name?: unknown; message?: unknown; cause?: { code?: unknown; message?: unknown } } | undefined;
  if (e?.name === 'TimeoutError') return 'the request timed out';
  if (typeof e?.cause?.code === 'string') return e.cause.code;
  if (typeof e?.cause?.message === 'string') return e.cause.message;
  return typeof e?.message === 'string' ? e.message : String(err);
}

const enc = encodeURIComponent;

function query(q: object): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== null) params.set(k, String(v));
  const s = params.toString();
  return s ? `?${s}` : '';
}

export class JobsApi {
  constructor(private readonly c: GantryClient) {}

  /** Submits a job; resolves with its view (`status: "queued"`) once it is durably stored. */
  submit(job: JobRequest, o: SubmitOptions = {}): Promise<JobView> {
    return this.c.request('POST', '/v1/jobs', job, {
      ...o,
      ...(o.idempotencyKey ? { headers: { 'idempotency-key': o.idempotencyKey } } : {}),
    });
  }

  get(id: string, o: RequestOptions = {}): Promise<JobView> {
    return this.c.request('GET', `/v1/jobs/${enc(id)}`, undefined, o);
  }

  /** One page of jobs, newest first. */
  list(q: JobListQuery = {}, o: RequestOptions = {}): Promise<JobPage> {
    return this.c.request('GET', `/v1/jobs${query(q)}`, undefined, o);
  }

  /** Every job matching the filter, page after page. */
  async *all(q: Omit<JobListQuery, 'cursor'> = {}, o: RequestOptions = {}): AsyncGenerator<JobView> {
    let cursor: string | null | undefined;
    do {
      const page = await this.list({ ...q, ...(cursor ? { cursor } : {}) }, o);
      yield* page.items;
      cursor = page.nextCursor;
    } while (cursor);
  }

  cancel(id: string, o: RequestOptions = {}): Promise<JobView> {
    return this.c.request('POST', `/v1/jobs/${enc(id)}/cancel`, undefined, o);
  }

  retry(id: string, o: RequestOptions = {}): Promise<JobView> {
    return this.c.request('POST', `/v1/jobs/${enc(id)}/retry`, undefined, o);
  }

  setPriority(id: string, priority: Priority, o: RequestOptions = {}): Promise<JobView> {
    return this.c.request('PUT', `/v1/jobs/${enc(id)}/priority`, { priority }, o);
  }

  /**
   * The job's lifecycle events, history first, then live, ending after a terminal one. A dropped stream is resumed
   * where it stopped (`Last-Event-ID`), so no event is missed or repeated.
   */
  async *events(id: string, o: EventsOptions = {}): AsyncGenerator<JobEventMessage> {
    let after = o.after ?? 0;
    for (;;) {
      const res = await this.c.send(
        'GET',
        `/v1/jobs/${enc(id)}/events`,
        undefined,
        {
          ...(o.signal ? { signal: o.signal } : {}),
          headers: { accept: 'text/event-stream', ...(after ? { 'last-event-id': String(after) } : {}) },
        },
        false,
      );
      if (!res.body) throw new GantryError('STREAM_ERROR', `the event stream of job ${id} has no body`);
      try {
        for await (const e of readSse(res.body)) {
          const msg = JSON.parse(e.data) as JobEventMessage;
          after = Math.max(after, msg.sequence);
          yield msg;
          if (isTerminalStatus(msg.data.status) && msg.type !== 'job.progress') return;
        }
      } catch (err) {
        if (o.signal?.aborted) throw err;
        // The connection broke mid-stream: resume below.
      }
      if (o.signal?.aborted) return;
      await new Promise((r) => setTimeout(r, RECONNECT_MS));
    }
  }

  /** Resolves with the job's view once it is completed, failed or cancelled. */
  async wait(id: string, o: WaitOptions = {}): Promise<JobView> {
    const stop = new AbortController();
    const signals = [stop.signal, o.signal].filter((s): s is AbortSignal => s !== undefined);
    const signal = signals.length === 1 ? stop.signal : AbortSignal.any(signals);
    let timer: ReturnType<typeof setTimeout> | undefined;
    let timedOut = false;
    if (o.timeoutMs !== undefined) {
      timer = setTimeout(() => {
        timedOut = true;
        stop.abort();
      }, o.timeoutMs);
    }
    try {
      const now = await this.get(id, { signal });
      if (isTerminalStatus(now.status)) return now;
      for await (const e of this.events(id, { signal })) {
        o.onEvent?.(e);
        if (isTerminalStatus(e.data.status) && e.data.generation >= now.generation) return e.data;
      }
      // The stream ended on an older generation's terminal event: read the current state.
      return await this.wait(id, { ...o, ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}) });
    } catch (err) {
      if (timedOut) throw new WaitTimeoutError(id, o.timeoutMs ?? 0);
      throw err;
    } finally {
      if (timer) clearTimeout(timer);
      stop.abort();
    }
  }
}

export class BatchesApi {
  constructor(private readonly c: GantryClient) {}

  /**
   * Submits many jobs at once, all or nothing. A job may carry `ref` and name earlier jobs of the batch in
   * `dependsOn` as `ref:<name>` (pipelines), where the gateway supports it.
   */
  submit(batch: BatchRequest, o: SubmitOptions = {}): Promise<BatchSubmitted> {
    return this.c.request('POST', '/v1/batches', batch, {
      ...o,
      ...(o.idempotencyKey ? { headers: { 'idempotency-key': o.idempotencyKey } } : {}),
    });
  }

  get(id: string, o: RequestOptions = {}): Promise<BatchStatusView> {
    return this.c.request('GET', `/v1/batches/${enc(id)}`, undefined, o);
  }
}

export class QueueApi {
  constructor(private readonly c: GantryClient) {}
  get(o: RequestOptions = {}): Promise<QueueState> {
    return this.c.request('GET', '/v1/queue', undefined, o);
  }
  metrics(o: RequestOptions = {}): Promise<QueueMetrics> {
    return this.c.request('GET', '/v1/queue/metrics', undefined, o);
  }
  /**
   * The queue's state (the body of `get()`) now, then each time it changes, over Server-Sent Events
   * (`GET /v1/queue/events`): a live view without polling. A stream that breaks is reopened (its first event is the
   * current state, so nothing is missed); a refused one (429, 503) throws. Ends when `signal` aborts.
   *
   * With `reconnect: false` the iterator ends when the stream ends and throws when it breaks, so the caller decides
   * what to do meanwhile (the dashboard shows "reconnecting", polls `get()` and reopens with a backoff).
   */
  async *events(o: { signal?: AbortSignal; reconnect?: boolean } = {}): AsyncGenerator<QueueState> {
    for (;;) {
      const res = await this.c.send(
        'GET',
        '/v1/queue/events',
        undefined,
        { ...(o.signal ? { signal: o.signal } : {}), headers: { accept: 'text/event-stream' } },
        false,
      );
      if (!res.body) throw new GantryError('STREAM_ERROR', 'the queue event stream has no body');
      try {
        for await (const e of readSse(res.body)) {
          if (e.event === 'queue') yield JSON.parse(e.data) as QueueState;
        }
      } catch (err) {
        if (o.signal?.aborted) return;
        // The connection broke mid-stream: reopen below, or let the caller know.
        if (o.reconnect === false) throw new GantryNetworkError('the queue event stream broke', err);
      }
      if (o.signal?.aborted || o.reconnect === false) return;
      await new Promise((r) => setTimeout(r, RECONNECT_MS));
    }
  }
  concurrency(o: RequestOptions = {}): Promise<ConcurrencyStats> {
    return this.c.request('GET', '/v1/concurrency/stats', undefined, o);
  }
  /** Admin: stop dispatching (running jobs go on). */
  pause(o: RequestOptions = {}): Promise<QueueState> {
    return this.c.request('POST', '/v1/queue/pause', undefined, o);
  }
  /** Admin: end pause and drain. */
  resume(o: RequestOptions = {}): Promise<QueueState> {
    return this.c.request('POST', '/v1/queue/resume', undefined, o);
  }
  /** Admin: refuse new submissions (503), finish the rest. */
  drain(o: RequestOptions = {}): Promise<QueueState> {
    return this.c.request('POST', '/v1/queue/drain', undefined, o);
  }
  /** Admin: cancel every queued job. */
  clear(o: RequestOptions = {}): Promise<QueueState> {
    return this.c.request('POST', '/v1/queue/clear', undefined, o);
  }
  /** Admin: change the concurrency tokens or the queue bound at runtime. */
  setConfig(config: QueueConfigRequest, o: RequestOptions = {}): Promise<QueueState> {
    return this.c.request('PUT', '/v1/queue/config', config, o);
  }
}

export class WorkersApi {
  constructor(private readonly c: GantryClient) {}
  list(o: RequestOptions = {}): Promise<WorkerView[]> {
    return this.c.request('GET', '/v1/workers', undefined, o);
  }
}

export class WebhooksApi {
  constructor(private readonly c: GantryClient) {}
  /** Admin: deliveries that exhausted their attempts, oldest first. */
  failed(
    q: { limit?: number; cursor?: string; tenant?: string } = {},
    o: RequestOptions = {},
  ): Promise<FailedWebhookPage> {
    return this.c.request('GET', `/v1/webhooks/failed${query(q)}`, undefined, o);
  }
  /** Admin: send a failed delivery again (same `webhook-id`). */
  replay(id: string, o: RequestOptions = {}): Promise<FailedWebhookView> {
    return this.c.request('POST', `/v1/webhooks/failed/${enc(id)}/replay`, undefined, o);
  }
}

export class TenantsApi {
  constructor(private readonly c: GantryClient) {}
  /** Admin: every tenant with work, recent usage or a configured weight, and its fair share. */
  list(o: RequestOptions = {}): Promise<TenantView[]> {
    return this.c.request('GET', '/v1/tenants', undefined, o);
  }
  /** The caller's tenant and its fair share (any key). */
  me(o: RequestOptions = {}): Promise<TenantView> {
    return this.c.request('GET', '/v1/tenants/me', undefined, o);
  }
}

/** Cron schedules of the caller's tenant (API.md §3 "Schedules"). */
export class SchedulesApi {
  constructor(private readonly c: GantryClient) {}
  /** Creates a schedule; resolves with it (`nextRunAt` set). */
  create(schedule: ScheduleRequest, o: RequestOptions = {}): Promise<ScheduleView> {
    return this.c.request('POST', '/v1/schedules', schedule, o);
  }
  /** One page of the tenant's schedules. */
  list(q: { limit?: number; cursor?: string } = {}, o: RequestOptions = {}): Promise<SchedulePage> {
    return this.c.request('GET', `/v1/schedules${query(q)}`, undefined, o);
  }
  /** Every schedule of the tenant, page after page. */
  async *all(q: { limit?: number } = {}, o: RequestOptions = {}): AsyncGenerator<ScheduleView> {
    let cursor: string | null | undefined;
    do {
      const page = await this.list({ ...q, ...(cursor ? { cursor } : {}) }, o);
      yield* page.items;
      cursor = page.nextCursor;
    } while (cursor);
  }
  get(id: string, o: RequestOptions = {}): Promise<ScheduleView> {
    return this.c.request('GET', `/v1/schedules/${enc(id)}`, undefined, o);
  }
  /** Deletes the schedule (the jobs it created stay). */
  async delete(id: string, o: RequestOptions = {}): Promise<void> {
    await this.c.request('DELETE', `/v1/schedules/${enc(id)}`, undefined, o);
  }
  /** Stops creating jobs; due times that pass while paused are skipped. */
  pause(id: string, o: RequestOptions = {}): Promise<ScheduleView> {
    return this.c.request('POST', `/v1/schedules/${enc(id)}/pause`, undefined, o);
  }
  resume(id: string, o: RequestOptions = {}): Promise<ScheduleView> {
    return this.c.request('POST', `/v1/schedules/${enc(id)}/resume`, undefined, o);
  }
}
