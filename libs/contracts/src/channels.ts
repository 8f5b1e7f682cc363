/**
 * Typed channels and RPCs: each stream subject, core NATS subject, KV value and request/reply operation is declared
 * once here, with its payload check; the sender and the handler share the declaration (like a hatchet task).
 *
 * - A {@link Channel} ties a subject (or a KV bucket) to its payload type and a runtime check. The transport decodes
 *   every message through it: a payload that fails the check is a poison message (terminated, logged with the reason
 *   and counted), never a crash and never a redelivery loop.
 * - An {@link Rpc} ties a request/reply subject to its request and reply types and their checks: the server answers a
 *   400 to a request that fails its check, the client turns a reply that fails its check into a clear error.
 *
 * Adding one: write the payload interface in `messages.ts`, its guard in `payload-guards.ts` (the compiler insists that
 * every required field is checked), then declare it below; see docs/architecture.md, "Messaging".
 */
import { PayloadError, arrayOf, type Guard } from './guards';
import type { JobEvent } from './job';
import { scheduleRecordGuard, type ScheduleRecord } from './schedule';
import { BUCKETS, STREAMS, SUBJECTS, type NotifierRpcOp, type SchedulerRpcOp } from './names';
import type {
  BatchManifest,
  BatchPart,
  ConcurrencyStats,
  DispatchPayload,
  DispatchReleased,
  FailedListReply,
  FailedListRequest,
  FailedWebhook,
  FailedWebhookView,
  GpuCordonControl,
  GpuStatus,
  IdempotencyEntry,
  ListHead,
  ListPage,
  ListSyncReply,
  TenantView,
  TenantsRequest,
  PositionsReply,
  PositionsRequest,
  ProgressMark,
  QueueConfigRecord,
  QueueConfigUpdate,
  QueueMetrics,
  QueueState,
  QueueStatsBroadcast,
  RateLimitWindow,
  ReplayRequest,
  WebhookDelivery,
  WorkerControl,
  WorkerHeartbeat,
  WorkerView,
} from './messages';
import * as g from './payload-guards';

/** Where a channel's messages live: a JetStream stream, core NATS (not persisted), or the values of a KV bucket. */
export type ChannelTransport = 'stream' | 'core' | 'kv';

export interface Channel<T> {
  /** Stable name, used in logs and metrics (`jobs`, `dispatch` …). */
  readonly name: string;
  /** The subject filter of its messages (a stream or core subject), or the KV bucket's name. */
  readonly subject: string;
  /** The contract version (the `v1` of its subjects). */
  readonly version: number;
  readonly transport: ChannelTransport;
  /** The stream that holds it (`transport: 'stream'`). */
  readonly stream?: string;
  /** Checks a decoded JSON value; throws a {@link PayloadError} that names the channel and the first bad field. */
  parse(value: unknown): T;
}

export interface ChannelDefinition<T> {
  name: string;
  subject: string;
  version: number;
  transport: ChannelTransport;
  stream?: string;
  parse: Guard<T>;
}

function named<T>(contract: string, guard: Guard<T>): (value: unknown) => T {
  return (value) => {
    try {
      return guard(value, '');
    } catch (err) {
      if (err instanceof PayloadError) throw new PayloadError(err.path, err.expected, contract);
      throw err;
    }
  };
}

export function defineChannel<T>(d: ChannelDefinition<T>): Channel<T> {
  return Object.freeze({ ...d, parse: named(d.name, d.parse) });
}

/** The request of an operation that takes none (callers send `{}`). */
export type NoRequest = Record<string, never>;
const noRequest: Guard<NoRequest> = (v, p) => {
  if (v !== undefined && (typeof v !== 'object' || v === null || Array.isArray(v)))
    throw new PayloadError(p, 'an object or nothing');
  return {};
};

export interface Rpc<Req, Res> {
  /** `<service>.<op>`, used in logs. */
  readonly name: string;
  readonly subject: string;
  readonly version: number;
  parseRequest(value: unknown): Req;
  parseReply(value: unknown): Res;
}

/** An RPC served on one subject per target (e.g. one worker): {@link to} gives the RPC of one target. */
export interface AddressedRpc<Req, Res> {
  readonly name: string;
  /** Builds the subject of one target (validating the token). */
  to(target: string): Rpc<Req, Res>;
  parseRequest(value: unknown): Req;
  parseReply(value: unknown): Res;
}

export interface RpcDefinition<Req, Res> {
  name: string;
  subject: string;
  version: number;
  parseRequest: Guard<Req>;
  parseReply: Guard<Res>;
}

export function defineRpc<Req, Res>(d: RpcDefinition<Req, Res>): Rpc<Req, Res> {
  return Object.freeze({
    name: d.name,
    subject: d.subject,
    version: d.version,
    parseRequest: named(`${d.name} request`, d.parseRequest),
    parseReply: named(`${d.name} reply`, d.parseReply),
  });
}

export function defineAddressedRpc<Req, Res>(
  d: Omit<RpcDefinition<Req, Res>, 'subject'> & { subject: (target: string) => string },
): AddressedRpc<Req, Res> {
  const base = defineRpc({ ...d, subject: '' });
  return Object.freeze({
    name: d.name,
    parseRequest: base.parseRequest,
    parseReply: base.parseReply,
    to: (target: string) => Object.freeze({ ...base, subject: d.subject(target) }),
  });
}

/** Every channel Gantry publishes on. */
export const CHANNELS = {
  /** Job record revisions with the lifecycle event that made each (scheduler projection, notifier intake, gateway). */
  jobs: defineChannel<JobEvent>({
    name: 'jobs',
    subject: SUBJECTS.jobsAll,
    version: 1,
    transport: 'stream',
    stream: STREAMS.jobs,
    parse: g.jobEvent,
  }),
  /** Leader → worker: one attempt, or a batch of attempts for one worker (either form is accepted). */
  dispatch: defineChannel<DispatchPayload>({
    name: 'dispatch',
    subject: SUBJECTS.dispatchAll,
    version: 1,
    transport: 'stream',
    stream: STREAMS.dispatch,
    parse: g.dispatchPayload,
  }),
  batches: defineChannel<BatchManifest>({
    name: 'batches',
    subject: SUBJECTS.batchesAll,
    version: 1,
    transport: 'stream',
    stream: STREAMS.batches,
    parse: g.batchManifest,
  }),
  batchParts: defineChannel<BatchPart>({
    name: 'batch-parts',
    subject: SUBJECTS.batchPartsAll,
    version: 1,
    transport: 'stream',
    stream: STREAMS.batches,
    parse: g.batchPart,
  }),
  listPages: defineChannel<ListPage>({
    name: 'list-pages',
    subject: SUBJECTS.listAll,
    version: 1,
    transport: 'stream',
    stream: STREAMS.list,
    parse: g.listPage,
  }),
  listHeads: defineChannel<ListHead>({
    name: 'list-heads',
    subject: SUBJECTS.listAll,
    version: 1,
    transport: 'stream',
    stream: STREAMS.list,
    parse: g.listHead,
  }),
  webhooks: defineChannel<WebhookDelivery>({
    name: 'webhooks',
    subject: SUBJECTS.webhooksAll,
    version: 1,
    transport: 'stream',
    stream: STREAMS.webhooks,
    parse: g.webhookDelivery,
  }),
  webhookDlq: defineChannel<FailedWebhook>({
    name: 'webhook-dlq',
    subject: SUBJECTS.webhookDlqAll,
    version: 1,
    transport: 'stream',
    stream: STREAMS.webhookDlq,
    parse: g.failedWebhook,
  }),
  queueStats: defineChannel<QueueStatsBroadcast>({
    name: 'queue-stats',
    subject: SUBJECTS.queueStats,
    version: 1,
    transport: 'core',
    parse: g.queueStatsBroadcast,
  }),
  dispatchReleased: defineChannel<DispatchReleased>({
    name: 'dispatch-released',
    subject: SUBJECTS.dispatchReleased,
    version: 1,
    transport: 'core',
    parse: g.dispatchReleased,
  }),
  workerControl: defineChannel<WorkerControl>({
    name: 'worker-control',
    subject: 'gantry.v1.control.worker.*',
    version: 1,
    transport: 'core',
    parse: g.workerControl,
  }),
  workerHeartbeats: defineChannel<WorkerHeartbeat>({
    name: 'worker-heartbeats',
    subject: BUCKETS.workers,
    version: 1,
    transport: 'kv',
    parse: g.workerHeartbeat,
  }),
  queueConfig: defineChannel<QueueConfigRecord>({
    name: 'queue-config',
    subject: BUCKETS.config,
    version: 1,
    transport: 'kv',
    parse: g.queueConfigRecord,
  }),
  idempotency: defineChannel<IdempotencyEntry>({
    name: 'idempotency',
    subject: BUCKETS.idempotency,
    version: 1,
    transport: 'kv',
    parse: g.idempotencyEntry,
  }),
  rateLimit: defineChannel<RateLimitWindow>({
    name: 'rate-limit',
    subject: BUCKETS.rateLimit,
    version: 1,
    transport: 'kv',
    parse: g.rateLimitWindow,
  }),
  schedules: defineChannel<ScheduleRecord>({
    name: 'schedules',
    subject: BUCKETS.schedules,
    version: 1,
    transport: 'kv',
    parse: scheduleRecordGuard,
  }),
  progressThrottle: defineChannel<ProgressMark>({
    name: 'progress-throttle',
    subject: BUCKETS.progressThrottle,
    version: 1,
    transport: 'kv',
    parse: g.progressMark,
  }),
} as const;

const schedulerRpc = <Req, Res>(op: SchedulerRpcOp, parseRequest: Guard<Req>, parseReply: Guard<Res>) =>
  defineRpc<Req, Res>({
    name: `scheduler.${op}`,
    subject: SUBJECTS.schedulerRpc(op),
    version: 1,
    parseRequest,
    parseReply,
  });

/** Request/reply served by the leading scheduler (standbys stay silent). One entry per {@link SchedulerRpcOp}. */
export const SCHEDULER_RPC = {
  queue: schedulerRpc<NoRequest, QueueState>('queue', noRequest, g.queueState),
  metrics: schedulerRpc<NoRequest, QueueMetrics>('metrics', noRequest, g.queueMetrics),
  concurrency: schedulerRpc<NoRequest, ConcurrencyStats>('concurrency', noRequest, g.concurrencyStats),
  workers: schedulerRpc<NoRequest, WorkerView[]>('workers', noRequest, g.workerViews),
  positions: schedulerRpc<PositionsRequest, PositionsReply>('positions', g.positionsRequest, g.positionsReply),
  pause: schedulerRpc<NoRequest, QueueState>('pause', noRequest, g.queueState),
  resume: schedulerRpc<NoRequest, QueueState>('resume', noRequest, g.queueState),
  drain: schedulerRpc<NoRequest, QueueState>('drain', noRequest, g.queueState),
  clear: schedulerRpc<NoRequest, QueueState>('clear', noRequest, g.queueState),
  config: schedulerRpc<QueueConfigUpdate, QueueState>('config', g.queueConfigUpdate, g.queueState),
  'list-sync': schedulerRpc<NoRequest, ListSyncReply>('list-sync', noRequest, g.listSyncReply),
  tenants: schedulerRpc<TenantsRequest, TenantView[]>('tenants', g.tenantsRequest, g.tenantViews),
} as const satisfies Record<SchedulerRpcOp, Rpc<unknown, unknown>>;

const notifierRpc = <Req, Res>(op: NotifierRpcOp, parseRequest: Guard<Req>, parseReply: Guard<Res>) =>
  defineRpc<Req, Res>({
    name: `notifier.${op}`,
    subject: SUBJECTS.notifierRpc(op),
    version: 1,
    parseRequest,
    parseReply,
  });

/** Request/reply served by any notifier replica (queue group). One entry per {@link NotifierRpcOp}. */
export const NOTIFIER_RPC = {
  'failed-list': notifierRpc<FailedListRequest, FailedListReply>('failed-list', g.failedListRequest, g.failedListReply),
  replay: notifierRpc<ReplayRequest, FailedWebhookView>('replay', g.replayRequest, g.failedWebhookView),
} as const satisfies Record<NotifierRpcOp, Rpc<unknown, unknown>>;

/** Request/reply served by one worker, on its control subject. */
export const WORKER_RPC = {
  /** Cordon or uncordon one of the worker's GPUs; answers the worker's GPUs after the change (404: no such GPU). */
  gpuCordon: defineAddressedRpc<GpuCordonControl, GpuStatus[]>({
    name: 'worker.gpu-cordon',
    subject: SUBJECTS.workerControl,
    version: 1,
    parseRequest: g.gpuCordonControl,
    parseReply: arrayOf(g.gpuStatus),
  }),
} as const;
