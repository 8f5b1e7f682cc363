/**
 * Integration harness for the notifier: a real nats-server (and S3-compatible store), notifier replicas started
 * in-process with the real bootstrap (`startNotifier`), lifecycle events published into the real jobs stream, and the
 * failed-list/replay request/reply called over NATS like the gateway does.
 */
import { loadConfig } from '@gantry/config';
import {
  SUBJECTS,
  newId,
  webhookId,
  type JobEvent,
  type JobOutput,
  type JobRecord,
  type NotifierRpcOp,
  type PublicEventType,
} from '@gantry/contracts';
import { NatsHandle, publishJson, rpcRequest } from '@gantry/jetstream';
import { createLogger } from '@gantry/telemetry';
import { NatsServer, S3Server, type ReceivedWebhook } from '@gantry/testing';
import { Webhook } from 'standardwebhooks';
import { notifierRefinements, notifierSpec } from '../src/config';
import { startNotifier, type RunningNotifier } from '../src/notifier.app';

export const TEST_SECRET = 'whsec_bm90aWZpZXItaW50LXNlY3JldC0wMDAwMDE=';

export interface EventSpec {
  jobId?: string;
  type?: PublicEventType | 'job.cancel_requested';
  sequence?: number;
  generation?: number;
  callbackUrl?: string;
  callbackToken?: string;
  tenant?: string;
  outputs?: JobOutput[];
  progress?: { percent: number; stage?: string };
  timestamp?: Date;
  /** An outcome that also records its attempt's start (no `job.started` revision of its own). */
  started?: JobEvent['started'];
}

const STATUS: Record<string, JobRecord['status']> = {
  'job.queued': 'queued',
  'job.started': 'running',
  'job.progress': 'running',
  'job.retrying': 'retrying',
  'job.completed': 'completed',
  'job.failed': 'failed',
  'job.cancelled': 'cancelled',
  'job.cancel_requested': 'running',
};

export class NotifierHarness {
  readonly replicas: RunningNotifier[] = [];
  private constructor(
    readonly nats: NatsServer,
    readonly s3: S3Server | undefined,
    readonly client: NatsHandle,
    private readonly baseEnv: Record<string, string>,
  ) {}

  static async start(o: { s3?: boolean; env?: Record<string, string> } = {}): Promise<NotifierHarness> {
    const nats = await NatsServer.start();
    const s3 = o.s3 ? await S3Server.start() : undefined;
    const client = await NatsHandle.connect({
      servers: [nats.url],
      name: 'test-client',
      logger: createLogger('test', 'silent'),
    });
    return new NotifierHarness(nats, s3, client, {
      NATS_URL: nats.url,
      NOTIFIER_HTTP_PORT: '0',
      WEBHOOK_SECRET: TEST_SECRET,
      ALLOW_PRIVATE_URLS: 'true',
      WEBHOOK_PROGRESS_INTERVAL_MS: '0',
      ...(s3 ? s3.env() : {}),
      ...o.env,
    });
  }

  /** Starts one more notifier replica in this process. */
  async replica(env: Record<string, string> = {}): Promise<RunningNotifier> {
    const config = loadConfig(notifierSpec, { ...this.baseEnv, ...env }, notifierRefinements);
    const level = process.env['GANTRY_TEST_ECHO'] ? 'debug' : 'silent';
    const r = await startNotifier(config, createLogger('notifier', level));
    this.replicas.push(r);
    return r;
  }

  /** Publishes a lifecycle event (a job record revision) into the jobs stream, as the other services do. */
  async event(s: EventSpec = {}): Promise<{ jobId: string; webhookId: string; event: JobEvent }> {
    const jobId = s.jobId ?? newId();
    const type = s.type ?? 'job.queued';
    const sequence = s.sequence ?? 1;
    const generation = s.generation ?? 1;
    const at = s.timestamp ?? new Date();
    const iso = at.toISOString();
    const job: JobRecord = {
      id: jobId,
      tenant: s.tenant ?? 'default',
      type: 'noop',
      input: {},
      priority: 'normal',
      pool: 'default',
      ...(s.callbackUrl ? { callbackUrl: s.callbackUrl } : {}),
      ...(s.callbackToken ? { callbackToken: s.callbackToken } : {}),
      timeoutSeconds: 60,
      maxAttempts: 3,
      retryDelaysMs: [100],
      metadata: { test: true },
      status: STATUS[type]!,
      generation,
      attempts: type === 'job.queued' ? 0 : 1,
      sequence,
      enqueuedAt: iso,
      createdAt: iso,
      updatedAt: iso,
      ...(s.outputs ? { outputs: s.outputs } : {}),
      ...(s.progress ? { progress: s.progress } : {}),
    };
    const event: JobEvent = {
      type,
      timestamp: iso,
      sequence,
      generation,
      job,
      ...(s.started ? { started: s.started } : {}),
    };
    await publishJson(this.client.js, SUBJECTS.job(jobId), event, { msgID: `${jobId}.${generation}.${sequence}` });
    return { jobId, webhookId: webhookId(jobId, generation, sequence), event };
  }

  rpc<T>(op: NotifierRpcOp, payload: unknown): Promise<T> {
    return rpcRequest<T>(this.client.nc, SUBJECTS.notifierRpc(op), payload, { timeoutMs: 5_000 });
  }

  async metrics(r: RunningNotifier): Promise<string> {
    return (await fetch(`${r.opsUrl}/metrics`)).text();
  }

  async stop(): Promise<void> {
    await Promise.allSettled(this.replicas.map((r) => r.close()));
    await this.client.drain();
    await this.s3?.stop().catch(() => undefined);
    await this.nats.dispose();
  }
}

/** The value of a Prometheus sample (sum over label sets matching `labels`), 0 when absent. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const m = /^([^{\s]+)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries(
      [...(m[3] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1]!, x[2]!] as [string, string]),
    );
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) sum += Number(m[4]);
  }
  return sum;
}

/** Verifies a received webhook with the `standardwebhooks` library (throws when no signature matches). */
export function verifyWith(secret: string, w: ReceivedWebhook): unknown {
  return new Webhook(secret).verify(w.body, {
    'webhook-id': String(w.headers['webhook-id']),
    'webhook-timestamp': String(w.headers['webhook-timestamp']),
    'webhook-signature': String(w.headers['webhook-signature']),
  });
}

export function verifies(secret: string, w: ReceivedWebhook): boolean {
  try {
    verifyWith(secret, w);
    return true;
  } catch {
    return false;
  }
}

export const idOf = (w: ReceivedWebhook): string => String(w.headers['webhook-id']);
