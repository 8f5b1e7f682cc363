/**
 * The JetStream topology: every stream, durable consumer and KV bucket, declared once. Services provision what they use
 * at start (idempotently; limits are only ever raised on a live stream, because lowering one deletes messages).
 * Settings are in JetStream API units (nanoseconds for durations) so that they can be compared with `stream info`.
 * docs/architecture.md explains each setting.
 */
import { BUCKETS, CONSUMERS, STREAMS, SUBJECTS } from './names';

const NS_PER_MS = 1_000_000;
export const ms = (n: number): number => n * NS_PER_MS;

export interface StreamDeclaration {
  name: string;
  subjects: string[];
  retention: 'limits' | 'workqueue';
  storage: 'file' | 'memory';
  discard: 'old' | 'new';
  /** Nanoseconds; 0 = keep forever. */
  max_age: number;
  max_msgs: number;
  max_bytes: number;
  max_msgs_per_subject: number;
  max_msg_size: number;
  /** Nanoseconds. */
  duplicate_window: number;
  allow_direct: boolean;
  num_replicas: number;
}

export interface ConsumerDeclaration {
  stream: string;
  durable_name: string;
  filter_subject: string;
  deliver_policy: 'all' | 'new' | 'last_per_subject';
  ack_policy: 'explicit';
  /** Nanoseconds. */
  ack_wait: number;
  /** -1 = unlimited. Work streams must never use a finite MaxDeliver: a WorkQueue message past it is stranded. */
  max_deliver: -1;
  max_ack_pending: number;
  /** Nanoseconds; 0 = never removed for inactivity. */
  inactive_threshold: number;
}

export interface BucketDeclaration {
  bucket: string;
  history: number;
  /** Milliseconds; 0 = no expiry. */
  ttlMs: number;
  replicas: number;
}

export interface TopologyOptions {
  /** Stream and bucket replicas (1 locally; 3 in production, see docs/operations.md). */
  replicas: number;
  /** JOB_RETENTION_HOURS in ms. */
  retentionMs: number;
  /** Heartbeat bucket backstop TTL. */
  workerTtlMs: number;
  /** Leader lease. */
  leaderLeaseMs: number;
  /** Upper bound of webhook retries waiting at once across every endpoint (MaxAckPending of the delivery consumer). */
  webhookMaxPending: number;
  /** Ack wait of the delivery consumer; longer than one delivery attempt. */
  webhookAckWaitMs: number;
  /** MaxAckPending of each tenant's delivery consumer: its deliveries handed out or waiting for a retry at once. */
  webhookTenantMaxPending: number;
}

export const DEFAULT_TOPOLOGY: TopologyOptions = {
  replicas: 1,
  retentionMs: 168 * 3_600_000,
  workerTtlMs: 60_000,
  leaderLeaseMs: 5_000,
  webhookMaxPending: 100_000,
  webhookAckWaitMs: 60_000,
  webhookTenantMaxPending: 10_000,
};

/** The variables every service reads that shape the topology (see API.md §2). */
export interface TopologyVariables {
  NATS_REPLICAS: number;
  JOB_RETENTION_HOURS: number;
}

/** A service's topology: the defaults, its NATS_REPLICAS and JOB_RETENTION_HOURS, and what only it sets. */
export function topologyFor(v: TopologyVariables, own: Partial<TopologyOptions> = {}): TopologyOptions {
  return { ...DEFAULT_TOPOLOGY, replicas: v.NATS_REPLICAS, retentionMs: v.JOB_RETENTION_HOURS * 3_600_000, ...own };
}

function stream(
  partial: Partial<StreamDeclaration> & Pick<StreamDeclaration, 'name' | 'subjects'>,
  o: TopologyOptions,
) {
  const base: StreamDeclaration = {
    name: partial.name,
    subjects: partial.subjects,
    retention: 'limits',
    storage: 'file',
    discard: 'old',
    max_age: 0,
    max_msgs: -1,
    max_bytes: -1,
    max_msgs_per_subject: -1,
    max_msg_size: -1,
    duplicate_window: ms(120_000),
    allow_direct: true,
    num_replicas: o.replicas,
  };
  return { ...base, ...partial };
}

export function streamDeclarations(o: TopologyOptions = DEFAULT_TOPOLOGY) {
  return {
    jobs: stream({ name: STREAMS.jobs, subjects: [SUBJECTS.jobsWithCallback, SUBJECTS.jobsWithoutCallback] }, o),
    dispatch: stream({ name: STREAMS.dispatch, subjects: [SUBJECTS.dispatchAll], retention: 'workqueue' }, o),
    batches: stream(
      { name: STREAMS.batches, subjects: [SUBJECTS.batchesAll, SUBJECTS.batchPartsAll], max_age: ms(o.retentionMs) },
      o,
    ),
    list: stream({ name: STREAMS.list, subjects: [SUBJECTS.listAll], max_msgs_per_subject: 1 }, o),
    webhooks: stream(
      {
        name: STREAMS.webhooks,
        subjects: [SUBJECTS.webhooksAll, SUBJECTS.webhooksTenantAll],
        retention: 'workqueue',
        allow_direct: false,
      },
      o,
    ),
    // No max age: a parked delivery leaves only when it is moved back to its tenant's subject (an endpoint's oldest
    // is read with a direct get by subject, so direct gets are allowed, the default).
    webhookParked: stream({ name: STREAMS.webhookParked, subjects: [SUBJECTS.webhookParkedAll] }, o),
    webhookDlq: stream({ name: STREAMS.webhookDlq, subjects: [SUBJECTS.webhookDlqAll], max_age: ms(o.retentionMs) }, o),
    demand: stream({ name: STREAMS.demand, subjects: [SUBJECTS.demandAll], max_msgs_per_subject: 1 }, o),
  } satisfies Record<string, StreamDeclaration>;
}

/** The delivery consumer of one tenant (created when the tenant's first delivery is enqueued). */
export function tenantDeliveriesConsumer(tenant: string, o: TopologyOptions = DEFAULT_TOPOLOGY): ConsumerDeclaration {
  return {
    stream: STREAMS.webhooks,
    durable_name: CONSUMERS.notifierTenantDeliveries(tenant),
    filter_subject: SUBJECTS.webhooksOfTenant(tenant),
    deliver_policy: 'all',
    ack_policy: 'explicit',
    ack_wait: ms(o.webhookAckWaitMs),
    max_deliver: -1,
    max_ack_pending: o.webhookTenantMaxPending,
    inactive_threshold: 0,
  };
}

export function consumerDeclarations(o: TopologyOptions = DEFAULT_TOPOLOGY) {
  return {
    notifierIntake: {
      stream: STREAMS.jobs,
      durable_name: CONSUMERS.notifierIntake,
      // Only jobs with a callback (and those created before the no-callback subjects): the broker filters the rest.
      filter_subject: SUBJECTS.jobsWithCallback,
      deliver_policy: 'all',
      ack_policy: 'explicit',
      ack_wait: ms(30_000),
      max_deliver: -1,
      // Every replica reads ahead up to WEBHOOK_INTAKE_WINDOW (4,096) events (notifier intake): room for four.
      max_ack_pending: 16_384,
      inactive_threshold: 0,
    },
    notifierDeliveries: {
      stream: STREAMS.webhooks,
      durable_name: CONSUMERS.notifierDeliveries,
      filter_subject: SUBJECTS.webhooksAll,
      deliver_policy: 'all',
      ack_policy: 'explicit',
      ack_wait: ms(o.webhookAckWaitMs),
      max_deliver: -1,
      max_ack_pending: o.webhookMaxPending,
      inactive_threshold: 0,
    },
    batchRepair: {
      stream: STREAMS.batches,
      durable_name: CONSUMERS.batchRepair,
      // Manifests and commit markers only (the parts live on other subjects).
      filter_subject: SUBJECTS.batchesAll,
      deliver_policy: 'all',
      ack_policy: 'explicit',
      // Short: a manifest held by a gateway that died comes back to another one this soon (a repair in progress
      // calls working() well inside it).
      ack_wait: ms(15_000),
      max_deliver: -1,
      // Every accepted batch waits here (nak'ed with a delay) until its commit marker is seen or it is repaired.
      max_ack_pending: 10_000,
      inactive_threshold: 0,
    },
  } satisfies Record<string, ConsumerDeclaration>;
}

/** The durable consumer of one worker process. Only that worker reads its subject. */
export function workerConsumer(workerId: string, slots: number, ackWaitMs = 30_000): ConsumerDeclaration {
  return {
    stream: STREAMS.dispatch,
    durable_name: CONSUMERS.worker(workerId),
    filter_subject: SUBJECTS.dispatch(workerId),
    deliver_policy: 'all',
    ack_policy: 'explicit',
    // Kept alive by working() every third of it while the attempt runs (download, run, upload).
    ack_wait: ms(ackWaitMs),
    max_deliver: -1,
    // The broker never hands a worker more dispatches than it has slots.
    max_ack_pending: Math.max(1, slots),
    // Backstop cleanup for a worker that died; the leader deletes it when it declares the worker lost.
    inactive_threshold: ms(3_600_000),
  };
}

/** A never-consumed consumer whose pending count is the pool's demand gauge (for KEDA). */
export function demandConsumer(pool: string): ConsumerDeclaration {
  return {
    stream: STREAMS.demand,
    durable_name: CONSUMERS.demand(pool),
    filter_subject: SUBJECTS.demandPool(pool),
    deliver_policy: 'all',
    ack_policy: 'explicit',
    ack_wait: ms(30_000),
    max_deliver: -1,
    max_ack_pending: 1,
    inactive_threshold: 0,
  };
}

export function bucketDeclarations(o: TopologyOptions = DEFAULT_TOPOLOGY) {
  return {
    workers: { bucket: BUCKETS.workers, history: 1, ttlMs: o.workerTtlMs, replicas: o.replicas },
    leader: { bucket: BUCKETS.leader, history: 1, ttlMs: o.leaderLeaseMs, replicas: o.replicas },
    config: { bucket: BUCKETS.config, history: 5, ttlMs: 0, replicas: o.replicas },
    idempotency: { bucket: BUCKETS.idempotency, history: 1, ttlMs: 24 * 3_600_000, replicas: o.replicas },
    rateLimit: { bucket: BUCKETS.rateLimit, history: 1, ttlMs: 120_000, replicas: o.replicas },
    progressThrottle: { bucket: BUCKETS.progressThrottle, history: 1, ttlMs: 3_600_000, replicas: o.replicas },
    schedules: { bucket: BUCKETS.schedules, history: 1, ttlMs: 0, replicas: o.replicas },
  } satisfies Record<string, BucketDeclaration>;
}
