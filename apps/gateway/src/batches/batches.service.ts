/**
 * Batch submits, all or nothing. Every job is validated before anything is written; then
 *
 * 1. the **manifest** (`state: accepted`, with every job's spec, inline or in parts written just before it) is
 *    stored — from here on the batch will exist whole: if this gateway dies now, the repair consumer
 *    (`batch-repairer.ts`) of any gateway writes the missing job records after BATCH_REPAIR_AFTER_MS;
 * 2. the job records are written (pipelined);
 * 3. the 202 is sent, and a `committed` manifest tells the repair consumer there is nothing to do.
 *
 * So a 202 means every job of the batch is stored or will be, with the ids in the answer; a refusal (4xx, or 503
 * before the manifest was stored) means nothing was accepted (orphan parts without a manifest are never read and
 * age out with the stream's max age).
 */
import { Inject, Injectable } from '@nestjs/common';
import {
  JOB_STATUSES,
  newId,
  newJobId,
  newJob,
  type BatchManifest,
  type Clock,
  type JobRecord,
  type JobStatus,
  SUBJECT_TOKEN,
} from '@gantry/contracts';
import type { Logger } from '@gantry/telemetry';
import type { Principal } from '../auth/auth';
import { problems } from '../http/problem';
import { IdempotencyService, type IdempotentRequest } from '../idempotency/idempotency.service';
import { resolveJobRefs } from '../jobs/job-dependencies';
import type { ValidatedBatch } from '../jobs/job-request.validator';
import { JobsService } from '../jobs/jobs.service';
import { GatewayNats } from '../nats/gateway-nats';
import { CLOCK, LOGGER } from '../tokens';
import { BatchExistsError, BatchManifests } from './batch-manifests';

export interface BatchStatus {
  id: string;
  total: number;
  counts: Record<JobStatus, number>;
}

@Injectable()
export class BatchesService {
  constructor(
    @Inject(GatewayNats) private readonly nats: GatewayNats,
    @Inject(CLOCK) private readonly clock: Clock,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(JobsService) private readonly jobs: JobsService,
    @Inject(IdempotencyService) private readonly idempotency: IdempotencyService,
  ) {}

  private manifests(): BatchManifests {
    return new BatchManifests(this.nats.handle(), this.clock);
  }

  /** The batch's manifest if this principal may see it (another tenant's batch is a 404 for client keys). */
  async manifest(p: Principal, id: string): Promise<BatchManifest> {
    if (!SUBJECT_TOKEN.test(id)) throw problems.notFound(`batch ${id} not found`);
    const m = await this.manifests().read(id);
    if (!m || (p.role !== 'admin' && m.tenant !== p.tenant)) throw problems.notFound(`batch ${id} not found`);
    return m;
  }

  /** Current records of a batch's jobs, in batch order (a job not written yet — being repaired — is absent). */
  async records(m: BatchManifest): Promise<JobRecord[]> {
    const got = await this.jobs.store().getMany(m.jobIds);
    return m.jobIds.map((id) => got.get(id)?.record).filter((r): r is JobRecord => !!r);
  }

  async submit(
    p: Principal,
    batch: ValidatedBatch,
    o: IdempotentRequest = {},
  ): Promise<{ id: string; records: JobRecord[]; replay: boolean }> {
    let id = newId();
    if (o.idempotencyKey !== undefined) {
      const claim = await this.idempotency.claim(p.tenant, 'batch', o.idempotencyKey, o.bodyHash ?? '', id);
      if (!claim.fresh) {
        const existing = await this.manifests().read(claim.entry.id);
        if (existing) return { id: existing.id, records: await this.records(existing), replay: true };
        id = claim.entry.id;
      }
    }
    const pending = this.jobs.admit(batch.jobs.length, p.tenant);
    // Ids first, so that refs (`ref:<name>`, `job:ref:<name>/…`) are stored as the ids they name.
    // A job without a callback (its own or the batch's) gets the no-callback id form (its revisions skip the notifier).
    const ids = batch.jobs.map((dto) => newJobId(!!(dto.callbackUrl ?? batch.callbackUrl)));
    const resolved = resolveJobRefs(batch.jobs, ids);
    // Each job is the root of its own trace, linked to its parents' (those outside the batch read at validation, the
    // earlier jobs of the batch as they are prepared, in order: a job names only earlier jobs).
    const traces = new Map(batch.parentTraces);
    const specs = batch.jobs.map((dto, i) => {
      const spec = this.jobs.prepare(p, dto, {
        id: ids[i]!,
        batchId: id,
        resolved: resolved[i]!,
        parentTraces: traces,
        ...(batch.callbackUrl ? { callbackUrl: batch.callbackUrl } : {}),
      });
      traces.set(spec.id, {
        ...(spec.traceparent ? { traceparent: spec.traceparent } : {}),
        ...(spec.tracestate ? { tracestate: spec.tracestate } : {}),
      });
      return spec;
    });
    const manifests = this.manifests();
    let manifest: BatchManifest;
    try {
      manifest = await manifests.accept(id, p.tenant, specs);
    } catch (err) {
      if (!(err instanceof BatchExistsError)) throw err;
      // A racing repeat of the same idempotent request stored it first (and is counted by its own admission).
      this.jobs.withdraw(pending);
      const existing = await manifests.read(id);
      if (!existing) throw err;
      return { id, records: await this.records(existing), replay: true };
    }
    // Accepted: from here on, answer 202 whatever happens (the repair consumer finishes what this call cannot).
    // admit() counted the batch's jobs already.
    const { stored, failed, lastError } = await manifests.createJobs(specs);
    if (failed.length === 0) this.jobs.noteWritten(pending, Math.max(...[...stored.values()].map((s) => s.revision)));
    if (failed.length > 0) {
      this.logger.error(
        { batchId: id, failed: failed.length, err: lastError },
        'batch accepted but some job records could not be written yet; the repair consumer will write them',
      );
    } else {
      manifests
        .commit(manifest)
        .catch((err: unknown) =>
          this.logger.warn({ err, batchId: id }, 'batch commit marker not written; the repair consumer will check'),
        );
    }
    const now = this.clock.now();
    const records = specs.map((s) => stored.get(s.id)?.record ?? newJob(s, now).record);
    return { id, records, replay: false };
  }

  async status(p: Principal, id: string): Promise<BatchStatus> {
    const m = await this.manifest(p, id);
    const counts = Object.fromEntries(JOB_STATUSES.map((s) => [s, 0])) as Record<JobStatus, number>;
    const got = await this.jobs.store().getMany(m.jobIds);
    for (const jobId of m.jobIds) {
      // A job of an accepted batch whose record is not written yet (its repair is pending) is queued.
      counts[got.get(jobId)?.record.status ?? 'queued']++;
    }
    return { id: m.id, total: m.jobIds.length, counts };
  }
}
