/**
 * Job use cases behind the HTTP routes. The gateway never decides order or holds tokens: it validates, writes the
 * job's first revision (the durable acceptance — a 202 is sent only after the broker acked it), and reads records.
 */
import { Inject, Injectable } from '@nestjs/common';
import {
  SCHEDULER_RPC,
  JobTypeRegistry,
  SUBJECTS,
  TransitionRefused,
  adminRetry,
  isTerminal,
  newJobId,
  newJob,
  reprioritize,
  requestCancel,
  toJobView,
  type Clock,
  type JobRecord,
  type JobView,
  type NewJobSpec,
  type Priority,
  type PositionsReply,
  type PositionsRequest,
  type StoredJob,
  type Transition,
  type WorkerControl,
  SUBJECT_TOKEN,
} from '@gantry/contracts';
import { Pulse, encodeJson } from '@gantry/jetstream';
import { JobExistsError, JobStore } from '@gantry/job-store';
import type { OutputStore } from '@gantry/storage';
import type { Logger } from '@gantry/telemetry';
import { jobTrace, type ParentTraces } from './job-trace';
import type { Principal } from '../auth/auth';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config';
import { problems } from '../http/problem';
import { IdempotencyService, type IdempotentRequest } from '../idempotency/idempotency.service';
import type { PendingAccept } from '../nats/admission-ledger';
import { GatewayNats } from '../nats/gateway-nats';
import { GatewayRpc } from '../nats/gateway-rpc';
import { CLOCK, JOB_TYPES, LOGGER, OUTPUT_STORE } from '../tokens';
import type { SubmitJobDto } from './job.dto';

/** How long a cancel of a running job waits for its worker's `cancelled` before answering with `running`. */
const CANCEL_WAIT_MS = 5_000;

@Injectable()
export class JobsService {
  constructor(
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
    @Inject(GatewayNats) private readonly nats: GatewayNats,
    @Inject(JOB_TYPES) private readonly types: JobTypeRegistry,
    @Inject(CLOCK) private readonly clock: Clock,
    @Inject(OUTPUT_STORE) private readonly outputs: OutputStore,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(IdempotencyService) private readonly idempotency: IdempotencyService,
    @Inject(GatewayRpc) private readonly rpc: GatewayRpc,
  ) {}

  /** See {@link AdmissionLedger.written}. */
  noteWritten(pending: PendingAccept, seq: number): void {
    this.nats.admissions.written(pending, seq);
  }

  /** See {@link AdmissionLedger.withdraw}. */
  withdraw(pending: PendingAccept): void {
    this.nats.admissions.withdraw(pending);
  }

  store(): JobStore {
    return new JobStore(this.nats.handle(), this.clock);
  }

  /**
   * Refuses new work while draining, the queue is full, the tenant holds TENANT_MAX_QUEUED_JOBS, or NATS is away
   * (nothing is written); else counts `count` jobs of `tenant` as accepted until the next statistics broadcast.
   * Both depths come from the leader's broadcast (no round trip) plus what this gateway accepted since; a batch that
   * would pass either cap is refused whole.
   */
  admit(count: number, tenant: string): PendingAccept {
    this.nats.handle();
    if (this.nats.draining)
      throw problems.unavailable('the queue is draining: new submissions are refused', 30, 'draining');
    const stats = this.nats.freshStats();
    const max = stats?.maxQueueSize ?? this.nats.queueConfig?.maxQueueSize ?? this.config.MAX_QUEUE_SIZE;
    const depth = (stats ? stats.depth.total + stats.retrying : 0) + this.nats.admissions.total;
    if (depth + count > max) {
      throw problems.tooMany(`the queue is full (${depth} of ${max} jobs waiting)`, 5, 'queue-full');
    }
    const cap = this.config.TENANT_MAX_QUEUED_JOBS;
    if (cap !== undefined) {
      const held = (stats?.tenants?.[tenant] ?? 0) + this.nats.admissions.of(tenant);
      if (held + count > cap) {
        throw problems.tooMany(
          `tenant ${tenant} holds ${held} queued, retrying, scheduled or waiting jobs; at most ${cap} (TENANT_MAX_QUEUED_JOBS)` +
            (count > 1 ? `, so this batch of ${count} is refused whole` : ''),
          5,
          'tenant-queue-full',
        );
      }
    }
    return this.nats.admissions.admit(tenant, count);
  }

  prepare(
    p: Principal,
    dto: SubmitJobDto,
    extra: {
      id?: string;
      batchId?: string;
      callbackUrl?: string;
      /** A batch job's parents and input with batch refs resolved to ids (else the DTO's, ids already). */
      resolved?: { dependsOn?: string[]; input: Record<string, unknown> };
      /** The parents' trace contexts: the job's trace links to them (`job-trace.ts`). */
      parentTraces?: ParentTraces;
    } = {},
  ): NewJobSpec {
    const def = this.types.get(dto.type);
    const gpu = dto.gpu ? { count: dto.gpu.count, memoryMb: dto.gpu.memoryMb ?? 0 } : def?.defaultGpu;
    const callbackUrl = dto.callbackUrl ?? extra.callbackUrl;
    // Kept in UTC at millisecond precision; newJob makes the job `scheduled` while it is still to come.
    const runAt =
      dto.runAt !== undefined
        ? new Date(Date.parse(dto.runAt)).toISOString()
        : dto.delaySeconds !== undefined
          ? new Date(this.clock.now().getTime() + dto.delaySeconds * 1000).toISOString()
          : undefined;
    const dependsOn = extra.resolved ? extra.resolved.dependsOn : dto.dependsOn;
    // The id's form fixes the job's subject for its life (a job without a callback is never read by the notifier).
    const id = extra.id ?? newJobId(!!callbackUrl);
    return {
      id,
      tenant: p.tenant,
      type: dto.type,
      input: extra.resolved?.input ?? dto.input ?? {},
      priority: dto.priority ?? 'normal',
      pool: dto.pool ?? 'default',
      ...(callbackUrl ? { callbackUrl } : {}),
      ...(dto.callbackToken ? { callbackToken: dto.callbackToken } : {}),
      timeoutSeconds: dto.timeoutSeconds ?? def?.defaultTimeoutSeconds ?? this.config.DEFAULT_JOB_TIMEOUT_SECONDS,
      maxAttempts: dto.maxAttempts ?? this.config.MAX_ATTEMPTS,
      retryDelaysMs: [...this.config.RETRY_DELAYS_MS],
      ...(gpu && (dto.gpu || gpu.count > 0) ? { gpu } : {}),
      ...(dto.upload ? { upload: { url: dto.upload.url } } : {}),
      metadata: dto.metadata ?? {},
      ...(extra.batchId ? { batchId: extra.batchId } : {}),
      ...(runAt ? { runAt } : {}),
      ...(dependsOn?.length ? { dependsOn: [...dependsOn] } : {}),
      ...jobTrace({
        jobId: id,
        type: dto.type,
        tenant: p.tenant,
        ...(extra.batchId ? { batchId: extra.batchId } : {}),
        ...(dependsOn?.length ? { dependsOn } : {}),
        ...(extra.parentTraces ? { parentTraces: extra.parentTraces } : {}),
      }),
    };
  }

  /** Stores the first revision; resolves after the broker acked it. */
  async create(spec: NewJobSpec): Promise<StoredJob> {
    return this.store().create(newJob(spec, this.clock.now()));
  }

  /**
   * Accepts a validated job: 202 once its first revision is stored. With an `Idempotency-Key`, a repeat of an earlier
   * request (same tenant, key and body) returns that job instead (`replay`), creating nothing.
   */
  async submit(
    p: Principal,
    dto: SubmitJobDto,
    o: IdempotentRequest = {},
    parentTraces?: ParentTraces,
  ): Promise<{ stored: StoredJob; replay: boolean }> {
    let id = newJobId(!!dto.callbackUrl);
    if (o.idempotencyKey !== undefined) {
      const claim = await this.idempotency.claim(p.tenant, 'job', o.idempotencyKey, o.bodyHash ?? '', id);
      if (!claim.fresh) {
        const existing = await this.store().get(claim.entry.id, { consistent: true });
        if (existing) return { stored: existing, replay: true };
        // The first request claimed the key but wrote no job (refused, or its gateway died): create it now, with
        // the id it reserved, so racing repeats still make one job.
        id = claim.entry.id;
      }
    }
    const pending = this.admit(1, p.tenant);
    try {
      const stored = await this.create(this.prepare(p, dto, { id, ...(parentTraces ? { parentTraces } : {}) }));
      this.noteWritten(pending, stored.revision);
      return { stored, replay: false };
    } catch (err) {
      if (!(err instanceof JobExistsError)) throw err;
      // The job existed already (a racing repeat wrote it): it is counted once, by the broadcasts.
      this.withdraw(pending);
      const existing = await this.store().get(id, { consistent: true });
      if (!existing) throw err;
      return { stored: existing, replay: true };
    }
  }

  /** The job if this principal may see it (other tenants' jobs are 404 for client keys). */
  async get(p: Principal, id: string): Promise<StoredJob> {
    if (!SUBJECT_TOKEN.test(id)) throw problems.notFound(`job ${id} not found`);
    const stored = await this.store().get(id);
    if (!stored || (p.role !== 'admin' && stored.record.tenant !== p.tenant))
      throw problems.notFound(`job ${id} not found`);
    return stored;
  }

  /**
   * Applies a client's transition to a job it may see. `UNCHANGED` refusals (already so) return the job as it is;
   * other refusals are 409s.
   */
  private async change(p: Principal, id: string, decide: (cur: StoredJob) => Transition): Promise<StoredJob> {
    await this.get(p, id);
    try {
      return await this.store().transition(id, decide);
    } catch (err) {
      if (err instanceof TransitionRefused && err.reason === 'UNCHANGED')
        return (await this.store().get(id, { consistent: true }))!;
      throw err;
    }
  }

  /**
   * Cancels: a queued or retrying job ends at once (it never starts); a running one is marked and its worker told
   * to kill the process; the reply waits briefly for the worker's `cancelled` so it usually shows the end state.
   */
  async cancel(p: Principal, id: string): Promise<StoredJob> {
    const now = this.clock.now();
    const stored = await this.change(p, id, (cur) => {
      if (isTerminal(cur.record.status))
        throw new TransitionRefused('CONFLICT', `job ${id} is already ${cur.record.status}`);
      return requestCancel(cur.record, now);
    });
    const r = stored.record;
    if (r.status !== 'running' || !r.workerId) return stored;
    const control: WorkerControl = { v: 1, type: 'cancel', jobId: id, generation: r.generation };
    const nc = this.nats.handle().nc;
    // Every revision of the job is also a core NATS message on its subject: it wakes the wait (subscribed before the
    // worker is told, so its answer cannot slip by), and the record is read again to see whether it ended.
    const changed = new Pulse();
    const sub = nc.subscribe(SUBJECTS.job(id), { callback: () => changed.notify() });
    try {
      nc.publish(SUBJECTS.workerControl(r.workerId), encodeJson(control));
      // A time limit on this request, not a point in the job's life: the monotonic clock, not the Clock port.
      const deadline = performance.now() + CANCEL_WAIT_MS;
      let cur = await this.store().get(id);
      while (cur && cur.record.status === 'running') {
        const woken = await changed.next(deadline - performance.now());
        // The leader's copy: a replica answering a direct get may not have the revision that woke us yet.
        cur = await this.store().get(id, { consistent: true });
        if (!woken) break;
      }
      return cur ?? stored;
    } finally {
      sub.unsubscribe();
    }
  }

  /** A failed or cancelled job starts again: a new generation, attempts from zero. */
  async retry(p: Principal, id: string): Promise<StoredJob> {
    const now = this.clock.now();
    return this.change(p, id, (cur) => adminRetry(cur.record, now));
  }

  /** A queued or retrying job changes priority, keeping its submission order within the new level. */
  async setPriority(p: Principal, id: string, priority: Priority): Promise<StoredJob> {
    const now = this.clock.now();
    return this.change(p, id, (cur) => reprioritize(cur.record, priority, now));
  }

  /** Queue positions from the leader (absent when it does not answer quickly: the view omits them then). */
  async positions(records: readonly JobRecord[]): Promise<PositionsReply['positions']> {
    const queued = records.filter((r) => r.status === 'queued');
    // No statistics from a leader lately: nobody would answer; do not make every read wait for the timeout.
    if (queued.length === 0 || !this.nats.freshStats()) return {};
    const req: PositionsRequest = {
      ids: queued.map((r) => ({
        id: r.id,
        pool: r.pool,
        priority: r.priority,
        tenant: r.tenant,
        queueSeq: r.queueSeq ?? 0,
        enqueuedAt: r.enqueuedAt,
      })),
    };
    try {
      const reply = await this.rpc.call(SCHEDULER_RPC.positions, req, {
        timeoutMs: Math.min(500, this.config.RPC_TIMEOUT_MS),
      });
      return reply.positions;
    } catch (err) {
      this.logger.debug({ err: String(err) }, 'queue positions unavailable');
      return {};
    }
  }

  /**
   * Views with positions (queued jobs; unless `positions: false`) and presigned download URLs (completed jobs).
   * A submit's answer has no position: the scheduler has not taken the job in yet when the 202 is sent, and asking
   * would put a scheduler round trip on the submit path.
   */
  async views(records: readonly JobRecord[], o: { positions?: boolean } = {}): Promise<JobView[]> {
    const positions = o.positions === false ? {} : await this.positions(records);
    const now = this.clock.now();
    return Promise.all(
      records.map(async (r) => {
        const pos = positions[r.id];
        return toJobView(r, now, {
          ...(pos ? { queuePosition: pos.queuePosition, estimatedWaitSeconds: pos.estimatedWaitSeconds } : {}),
          ...(r.outputs?.length ? { downloadUrls: await this.outputs.presignAll(r.outputs) } : {}),
        });
      }),
    );
  }

  async view(r: JobRecord, o: { positions?: boolean } = {}): Promise<JobView> {
    return (await this.views([r], o))[0]!;
  }
}
