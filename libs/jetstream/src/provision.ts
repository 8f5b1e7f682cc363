/**
 * Idempotent provisioning of the topology declared in `@gantry/contracts`. Safe to run from every replica at every
 * start. Limits on a live stream are only ever raised: lowering `max_msgs`, `max_bytes`, `max_age` or
 * `max_msgs_per_subject` makes the server delete the oldest messages at once, which would lose accepted jobs.
 */
import type { BucketDeclaration, ConsumerDeclaration, StreamDeclaration } from '@gantry/contracts';
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  RetentionPolicy,
  StorageType,
  type ConsumerConfig,
  type ConsumerInfo,
  type JetStreamManager,
  type StreamConfig,
  type StreamInfo,
} from '@nats-io/jetstream';
import type { Logger } from '@gantry/telemetry';
import type { NatsHandle } from './connection';
import { isAlreadyExists, isNotFound, ProvisionError, UnsupportedServerError } from './errors';
import { versionAtLeast } from './connection';

type Limit = 'max_age' | 'max_msgs' | 'max_bytes' | 'max_msgs_per_subject' | 'max_msg_size';
const LIMITS: readonly Limit[] = ['max_age', 'max_msgs', 'max_bytes', 'max_msgs_per_subject', 'max_msg_size'];

/** Unlimited is 0 for max_age and -1 (or 0 on some servers) for the counts. */
function unlimited(limit: Limit, v: number | undefined): boolean {
  return v === undefined || v <= 0 || (limit === 'max_age' && v === 0);
}

/** The larger of two limits, where "unlimited" is the largest. */
export function raiseLimit(limit: Limit, current: number | undefined, wanted: number): number {
  if (unlimited(limit, current)) return limit === 'max_age' ? 0 : -1;
  if (unlimited(limit, wanted)) return limit === 'max_age' ? 0 : -1;
  return Math.max(current ?? 0, wanted);
}

function toStreamConfig(d: StreamDeclaration): Partial<StreamConfig> & { name: string } {
  return {
    name: d.name,
    subjects: d.subjects,
    retention: d.retention === 'workqueue' ? RetentionPolicy.Workqueue : RetentionPolicy.Limits,
    storage: d.storage === 'file' ? StorageType.File : StorageType.Memory,
    discard: d.discard === 'new' ? DiscardPolicy.New : DiscardPolicy.Old,
    max_age: d.max_age,
    max_msgs: d.max_msgs,
    max_bytes: d.max_bytes,
    max_msgs_per_subject: d.max_msgs_per_subject,
    max_msg_size: d.max_msg_size,
    duplicate_window: d.duplicate_window,
    allow_direct: d.allow_direct,
    num_replicas: d.num_replicas,
  };
}

export async function ensureStream(jsm: JetStreamManager, d: StreamDeclaration, logger?: Logger): Promise<StreamInfo> {
  let info: StreamInfo;
  try {
    info = await jsm.streams.info(d.name);
  } catch (err) {
    if (!isNotFound(err)) throw new ProvisionError(`cannot read stream ${d.name}`, { cause: err });
    try {
      return await jsm.streams.add(toStreamConfig(d));
    } catch (addErr) {
      // Another replica created it between our info and add.
      if (isAlreadyExists(addErr)) return ensureStream(jsm, d, logger);
      throw new ProvisionError(`cannot create stream ${d.name}`, { cause: addErr });
    }
  }
  const cur = info.config;
  const wantRetention = d.retention === 'workqueue' ? RetentionPolicy.Workqueue : RetentionPolicy.Limits;
  if (cur.retention !== wantRetention) {
    throw new ProvisionError(
      `stream ${d.name} has retention ${cur.retention}, declared ${wantRetention}; it cannot change in place`,
    );
  }
  const next: StreamConfig = { ...cur };
  let changed = false;
  for (const limit of LIMITS) {
    const raised = raiseLimit(limit, cur[limit], d[limit]);
    const same = raised === cur[limit] || (unlimited(limit, raised) && unlimited(limit, cur[limit]));
    if (!same) {
      next[limit] = raised;
      changed = true;
    } else if (!unlimited(limit, d[limit]) && !unlimited(limit, cur[limit]) && d[limit] < (cur[limit] ?? 0)) {
      logger?.warn(
        { stream: d.name, limit, current: cur[limit], declared: d[limit] },
        'declared limit is lower than the live one; keeping the live one (lowering would delete messages)',
      );
    }
  }
  const subjects = [...new Set([...(cur.subjects ?? []), ...d.subjects])];
  if (subjects.length !== (cur.subjects ?? []).length) {
    next.subjects = subjects;
    changed = true;
  }
  if (d.allow_direct && !cur.allow_direct) {
    next.allow_direct = true;
    changed = true;
  }
  if (d.num_replicas > (cur.num_replicas ?? 1)) {
    next.num_replicas = d.num_replicas;
    changed = true;
  }
  if (!changed) return info;
  logger?.info({ stream: d.name }, 'raising stream limits to the declared ones');
  return jsm.streams.update(d.name, next);
}

function toConsumerConfig(d: ConsumerDeclaration): Partial<ConsumerConfig> {
  return {
    durable_name: d.durable_name,
    filter_subject: d.filter_subject,
    deliver_policy:
      d.deliver_policy === 'new'
        ? DeliverPolicy.New
        : d.deliver_policy === 'last_per_subject'
          ? DeliverPolicy.LastPerSubject
          : DeliverPolicy.All,
    ack_policy: AckPolicy.Explicit,
    ack_wait: d.ack_wait,
    max_deliver: d.max_deliver,
    max_ack_pending: d.max_ack_pending,
    ...(d.inactive_threshold > 0 ? { inactive_threshold: d.inactive_threshold } : {}),
  };
}

export async function ensureConsumer(
  jsm: JetStreamManager,
  d: ConsumerDeclaration,
  logger?: Logger,
): Promise<ConsumerInfo> {
  let info: ConsumerInfo;
  try {
    info = await jsm.consumers.info(d.stream, d.durable_name);
  } catch (err) {
    if (!isNotFound(err))
      throw new ProvisionError(`cannot read consumer ${d.stream}/${d.durable_name}`, { cause: err });
    try {
      return await jsm.consumers.add(d.stream, toConsumerConfig(d));
    } catch (addErr) {
      if (isAlreadyExists(addErr)) return ensureConsumer(jsm, d, logger);
      throw new ProvisionError(`cannot create consumer ${d.stream}/${d.durable_name}`, { cause: addErr });
    }
  }
  const cur = info.config;
  if (cur.filter_subject !== d.filter_subject) {
    logger?.warn(
      { consumer: d.durable_name, current: cur.filter_subject, declared: d.filter_subject },
      'consumer filter differs; not changed in place',
    );
  }
  const drift =
    cur.ack_wait !== d.ack_wait ||
    cur.max_ack_pending !== d.max_ack_pending ||
    (cur.max_deliver ?? -1) !== d.max_deliver;
  if (!drift) return info;
  return jsm.consumers.update(d.stream, d.durable_name, {
    ack_wait: d.ack_wait,
    max_ack_pending: d.max_ack_pending,
    max_deliver: d.max_deliver,
  });
}

export async function ensureBucket(nats: NatsHandle, d: BucketDeclaration, logger?: Logger): Promise<void> {
  await nats.kvm.create(d.bucket, {
    history: d.history,
    ...(d.ttlMs > 0 ? { ttl: d.ttlMs } : {}),
    replicas: d.replicas,
  });
  const stream = `KV_${d.bucket}`;
  const info = await nats.jsm.streams.info(stream);
  const cur = info.config;
  const next: StreamConfig = { ...cur };
  let changed = false;
  if (d.history > (cur.max_msgs_per_subject ?? 1)) {
    next.max_msgs_per_subject = d.history;
    changed = true;
  }
  const wantAge = d.ttlMs > 0 ? d.ttlMs * 1_000_000 : 0;
  const raisedAge = raiseLimit('max_age', cur.max_age, wantAge);
  if (raisedAge !== cur.max_age) {
    next.max_age = raisedAge;
    changed = true;
  } else if (wantAge > 0 && cur.max_age > 0 && wantAge < cur.max_age) {
    logger?.warn(
      { bucket: d.bucket, current: cur.max_age, declared: wantAge },
      'declared TTL is lower than the live one; keeping the live one',
    );
  }
  if (changed) await nats.jsm.streams.update(stream, next);
}

export interface Topology {
  streams?: readonly StreamDeclaration[];
  consumers?: readonly ConsumerDeclaration[];
  buckets?: readonly BucketDeclaration[];
}

/**
 * The oldest nats-server on which replicated streams are safe for Gantry. Before 2.11.0 a clustered stream checks
 * `Expected-Last-Subject-Sequence` before proposing a write, not when applying it: on a 3-node 2.9.10 cluster two
 * compare-and-set writes with the same expected sequence both won in 165 of 200 rounds — two workers starting one
 * attempt, two terminal events (docs/reliability.md, ARCHITECTURE.md "JetStream traps"). R1 streams are not affected.
 */
export const MIN_SERVER_FOR_REPLICAS = '2.11.0';

/** Refuses replicas > 1 on a server older than {@link MIN_SERVER_FOR_REPLICAS}, saying what to do instead. */
export function assertReplicasSupported(serverVersion: string, replicas: number): void {
  if (replicas <= 1 || versionAtLeast(serverVersion, MIN_SERVER_FOR_REPLICAS)) return;
  throw new UnsupportedServerError(
    `NATS_REPLICAS=${replicas} needs nats-server >= ${MIN_SERVER_FOR_REPLICAS} (connected: ${serverVersion}): older ` +
      'servers do not enforce compare-and-set on replicated streams, so a job could run twice. Upgrade NATS ' +
      '(production: >= 2.12.3, see docs/reliability.md) or run NATS_REPLICAS=1.',
  );
}

/** The most replicas any declaration of a topology asks for. */
export function replicasOf(t: Topology): number {
  return Math.max(1, ...(t.streams ?? []).map((s) => s.num_replicas), ...(t.buckets ?? []).map((b) => b.replicas));
}

/**
 * Provisions streams first, then consumers and buckets — after refusing replicas the server cannot make safe
 * ({@link assertReplicasSupported}, before anything is created).
 */
export async function provision(nats: NatsHandle, t: Topology, logger?: Logger): Promise<void> {
  assertReplicasSupported(nats.serverVersion, replicasOf(t));
  for (const s of t.streams ?? []) await ensureStream(nats.jsm, s, logger);
  for (const c of t.consumers ?? []) await ensureConsumer(nats.jsm, c, logger);
  for (const b of t.buckets ?? []) await ensureBucket(nats, b, logger);
}
