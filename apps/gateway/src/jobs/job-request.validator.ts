/**
 * Validation of submit bodies, reporting **every** problem at once: the DTO's field rules (class-validator, unknown
 * fields refused), the job type's own input schema, the URL policy and the GPU fit are all checked and their errors
 * merged (a check that depends on a field with an error of its own is skipped rather than reported twice).
 * A batch is validated job by job with paths `jobs[i].…`; more than MAX_JOBS_PER_BATCH jobs is a 413 before any job
 * is looked at.
 */
import { Inject, Injectable } from '@nestjs/common';
import { isPlainObject, JobTypeRegistry, S3InputPolicy, type Clock, type FieldError } from '@gantry/contracts';
import { JobStore } from '@gantry/job-store';
import { assertAllowedUrl } from '@gantry/net';
import { plainToInstance } from 'class-transformer';
import { validate } from 'class-validator';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config';
import { problems } from '../http/problem';
import { flattenErrors } from '../http/validation';
import { GatewayNats } from '../nats/gateway-nats';
import { CLOCK, JOB_TYPES } from '../tokens';
import { dependencyErrors } from './job-dependencies';
import { fastSubmitJobDto } from './job-fast-path';
import { JobTenants } from './job-tenants';
import { SubmitJobDto } from './job.dto';
import type { JobTraceContext, ParentTraces } from './job-trace';
import { SubmitDnsResolver } from './submit-dns';

/** class-validator's options for a job body (`job-fast-path.spec.ts` checks the fast path against the same). */
export const FIELD_RULES = {
  whitelist: true,
  forbidNonWhitelisted: true,
  forbidUnknownValues: true,
  validationError: { target: false, value: false },
};

/** Errors listed in one answer at most (a 1000-job batch could have thousands). */
export const MAX_REPORTED_ERRORS = 200;
/** How long a callback/upload/input host may take to resolve at submit (the resolver gives up first). */
const DNS_TIMEOUT_MS = 3_000;

export interface ValidatedBatch {
  jobs: SubmitJobDto[];
  callbackUrl?: string;
  /** The trace contexts of the parents outside the batch (read while checking them). */
  parentTraces: ParentTraces;
}

export interface ValidatedJob {
  dto: SubmitJobDto;
  /** The trace contexts of its parents (read while checking them): its trace links to theirs. */
  parentTraces: ParentTraces;
}

/**
 * The epoch ms of an ISO instant that already matched `ISO_INSTANT`, or undefined when its date or time does not exist
 * (`Date.parse` rolls 2026-02-30 over into March, and takes hour 24).
 */
export function parseInstant(s: string): number | undefined {
  const at = Date.parse(s);
  if (!Number.isFinite(at)) return undefined;
  const [y, mo, d, h, mi, sec] = [0, 5, 8, 11, 14, 17].map((i, k) => Number(s.slice(i, i + (k === 0 ? 4 : 2))));
  const day = new Date(Date.UTC(y!, mo! - 1, d!));
  if (day.getUTCMonth() !== mo! - 1 || day.getUTCDate() !== d!) return undefined;
  if (h! > 23 || mi! > 59 || (s[16] === ':' && sec! > 59)) return undefined;
  return at;
}

/** The top-level field an error is about (`gpu.count` → `gpu`, `jobs[2].type` with prefix `jobs[2].` → `type`). */
function topField(field: string, prefix: string): string {
  return field.slice(prefix.length).split(/[.[]/)[0]!;
}

function refuse(errors: FieldError[], what: string): never {
  const shown = errors.slice(0, MAX_REPORTED_ERRORS);
  const more = errors.length - shown.length;
  throw problems.validation(
    shown,
    `${what} is not valid (${errors.length} error${errors.length === 1 ? '' : 's'}${more > 0 ? `, first ${shown.length} listed` : ''})`,
  );
}

@Injectable()
export class JobRequestValidator {
  private readonly dns = new SubmitDnsResolver();
  /** The worker applies the same policy again before reading (see `S3InputPolicy`). */
  private readonly s3Inputs: S3InputPolicy;

  constructor(
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
    @Inject(JOB_TYPES) private readonly types: JobTypeRegistry,
    @Inject(GatewayNats) private readonly nats: GatewayNats,
    @Inject(JobTenants) tenants: JobTenants,
    @Inject(CLOCK) private readonly clock: Clock,
  ) {
    this.s3Inputs = new S3InputPolicy(config.S3_BUCKET, config.S3_INPUT_BUCKETS, tenants);
  }

  /** A `POST /v1/jobs` body from `tenant`, or a 400 problem listing every error. */
  async submit(body: unknown, tenant: string): Promise<ValidatedJob> {
    const urls = new Map<string, Promise<string | undefined>>();
    const { dto, errors } = await this.job(body, '', urls, tenant);
    if (errors.length > 0 || !dto) refuse(errors, 'the job');
    this.assertSize(body, 'the job');
    const parentTraces = new Map<string, JobTraceContext>();
    // Parents are read only for a job that is valid otherwise (and not too large).
    if (dto.dependsOn?.length || dto.ref !== undefined || this.namesParentOutputs(dto)) {
      const depErrors = await dependencyErrors(
        [dto],
        [''],
        tenant,
        false,
        this.types,
        () => this.store(),
        parentTraces,
      );
      if (depErrors.length > 0) refuse(depErrors, 'the job');
    }
    return { dto, parentTraces };
  }

  /**
   * The job of a `POST /v1/schedules` body: the same checks as `POST /v1/jobs`, errors named `job.…`, returned (not
   * thrown) so the schedule's own field errors are listed with them. MAX_JOB_BYTES is a 413 as for a submit.
   */
  async scheduleJob(raw: unknown, tenant: string): Promise<{ dto?: SubmitJobDto; errors: FieldError[] }> {
    const r = await this.job(raw, 'job.', new Map(), tenant);
    if (r.dto) this.assertSize(raw, 'the job');
    return r;
  }

  /** A `POST /v1/batches` body from `tenant`: 413 above MAX_JOBS_PER_BATCH, else a 400 problem listing every error. */
  async batch(body: unknown, tenant: string): Promise<ValidatedBatch> {
    if (!isPlainObject(body)) refuse([{ field: 'body', message: 'must be a JSON object' }], 'the batch');
    const errors: FieldError[] = Object.keys(body)
      .filter((k) => k !== 'jobs' && k !== 'callbackUrl')
      .map((k) => ({ field: k, message: 'is not a known field' }));
    const jobs = body['jobs'];
    if (Array.isArray(jobs) && jobs.length > this.config.MAX_JOBS_PER_BATCH) {
      throw problems.tooLarge(
        `a batch holds at most ${this.config.MAX_JOBS_PER_BATCH} jobs (MAX_JOBS_PER_BATCH); this one has ${jobs.length}`,
      );
    }
    if (!Array.isArray(jobs)) errors.push({ field: 'jobs', message: 'must be an array of jobs' });
    else if (jobs.length === 0) errors.push({ field: 'jobs', message: 'must hold at least one job' });
    const urls = new Map<string, Promise<string | undefined>>();
    const cb = body['callbackUrl'];
    let callbackUrl: string | undefined;
    if (cb !== undefined) {
      if (typeof cb !== 'string' || cb.length > 2_048)
        errors.push({ field: 'callbackUrl', message: 'must be a URL of at most 2048 characters' });
      else {
        const e = await this.url(cb, urls);
        if (e) errors.push({ field: 'callbackUrl', message: e });
        else callbackUrl = cb;
      }
    }
    const out: SubmitJobDto[] = [];
    if (Array.isArray(jobs)) {
      // Sequential in chunks: bounded concurrency for DNS lookups, and errors in job order.
      for (let i = 0; i < jobs.length; i += 64) {
        const results = await Promise.all(
          jobs.slice(i, i + 64).map((j, k) => this.job(j, `jobs[${i + k}].`, urls, tenant)),
        );
        for (const r of results) {
          errors.push(...r.errors);
          if (r.dto) out.push(r.dto);
        }
      }
    }
    if (errors.length > 0) refuse(errors, 'the batch');
    (jobs as unknown[]).forEach((j, i) => this.assertSize(j, `jobs[${i}]`));
    const parentTraces = new Map<string, JobTraceContext>();
    if (out.some((dto) => dto.dependsOn?.length || dto.ref !== undefined || this.namesParentOutputs(dto))) {
      const depErrors = await dependencyErrors(
        out,
        out.map((_, i) => `jobs[${i}].`),
        tenant,
        true,
        this.types,
        () => this.store(),
        parentTraces,
      );
      if (depErrors.length > 0) refuse(depErrors, 'the batch');
    }
    return { jobs: out, ...(callbackUrl ? { callbackUrl } : {}), parentTraces };
  }

  private store(): JobStore {
    return new JobStore(this.nats.handle(), this.clock);
  }

  /** Whether a (valid) job names a parent output among its inputs. */
  private namesParentOutputs(dto: SubmitJobDto): boolean {
    return (this.types.get(dto.type)?.parentOutputs?.(dto.input ?? {}).length ?? 0) > 0;
  }

  /**
   * MAX_JOB_BYTES: the size of one job as JSON (UTF-8), checked after the field rules so that a `metadata` over
   * 8 KiB stays a 400 naming the field; a job over the limit is a 413 naming it and nothing is created.
   */
  private assertSize(job: unknown, what: string): void {
    const bytes = Buffer.byteLength(JSON.stringify(job), 'utf8');
    if (bytes > this.config.MAX_JOB_BYTES)
      throw problems.tooLarge(
        `${what} is ${bytes} bytes as JSON; a job may hold at most ${this.config.MAX_JOB_BYTES} bytes (MAX_JOB_BYTES)`,
      );
  }

  /** One job: the DTO rules, then the checks whose inputs passed them. */
  private async job(
    raw: unknown,
    prefix: string,
    urls: Map<string, Promise<string | undefined>>,
    tenant: string,
  ): Promise<{ dto?: SubmitJobDto; errors: FieldError[] }> {
    if (!isPlainObject(raw))
      return { errors: [{ field: prefix ? prefix.slice(0, -1) : 'body', message: 'must be a JSON object' }] };
    // A body that certainly passes the field rules skips class-transformer and class-validator; any other is checked
    // (and its errors worded) by them, as always.
    let dto = fastSubmitJobDto(raw);
    let errors: FieldError[] = [];
    if (!dto) {
      dto = plainToInstance(SubmitJobDto, raw);
      errors = flattenErrors(await validate(dto, FIELD_RULES), prefix);
    }
    const bad = new Set(errors.map((e) => topField(e.field, prefix)));

    let inputValid = false;
    if (!bad.has('type')) {
      const def = this.types.get(dto.type);
      if (!def) errors.push(...this.types.validate(dto.type, {}).map((e) => ({ ...e, field: `${prefix}${e.field}` })));
      else if (!bad.has('input')) {
        // With the upload target known: an `upload.url` receives exactly one output.
        const typeErrors = this.types.validate(dto.type, dto.input ?? {}, {
          upload: dto.upload !== undefined && !bad.has('upload'),
        });
        errors.push(...typeErrors.map((e) => ({ ...e, field: `${prefix}${e.field}` })));
        inputValid = typeErrors.length === 0;
      }
    }

    const urlChecks: [string, string][] = [];
    if (dto.callbackUrl !== undefined && !bad.has('callbackUrl')) urlChecks.push(['callbackUrl', dto.callbackUrl]);
    if (dto.upload?.url !== undefined && !bad.has('upload')) urlChecks.push(['upload.url', dto.upload.url]);
    // The URLs any job type will fetch (only once its input is valid: its own errors come first): http(s) under the
    // address policy, s3:// under the input policy (canonical form; other tenants' outputs refused).
    const s3Checks: [string, string][] = [];
    if (inputValid) {
      for (const [field, url] of this.types.get(dto.type)?.inputUrls?.(dto.input ?? {}) ?? []) {
        if (/^https?:/i.test(url)) urlChecks.push([field, url]);
        else if (url.startsWith('s3://')) s3Checks.push([field, url]);
      }
    }
    const urlErrors = await Promise.all([
      ...urlChecks.map(async ([f, u]) => [f, await this.url(u, urls)] as const),
      ...s3Checks.map(async ([f, u]) => [f, await this.s3Refusal(tenant, u)] as const),
    ]);
    for (const [field, message] of urlErrors) if (message) errors.push({ field: `${prefix}${field}`, message });

    errors.push(...this.timing(dto, bad, prefix));

    if (!bad.has('type') && !bad.has('gpu') && !bad.has('pool')) {
      const gpu = dto.gpu ?? this.types.get(dto.type)?.defaultGpu;
      if (gpu && gpu.count > 0) {
        const pool = dto.pool ?? 'default';
        const declared = this.config.POOLS[pool];
        const known = declared ?? this.nats.poolCapability(pool);
        if (known && (gpu.count > known.gpus || (gpu.memoryMb ?? 0) > known.memoryMb)) {
          errors.push({
            field: `${prefix}gpu`,
            message: `no GPU of pool ${pool} can fit it (${declared ? 'declared' : 'largest live'}: ${known.gpus} GPU(s) of ${known.memoryMb} MB)`,
          });
        }
      }
    }
    return errors.length > 0 ? { errors } : { dto, errors };
  }

  /**
   * `runAt` / `delaySeconds` (v1.1): one of them at most, a real calendar date, never further ahead than
   * MAX_DELAY_SECONDS. A time in the past is fine (the job is queued at once).
   */
  private timing(dto: SubmitJobDto, bad: ReadonlySet<string>, prefix: string): FieldError[] {
    const max = this.config.MAX_DELAY_SECONDS;
    const errors: FieldError[] = [];
    if (dto.runAt !== undefined && dto.delaySeconds !== undefined) {
      errors.push({ field: `${prefix}runAt`, message: 'give runAt or delaySeconds, not both' });
      return errors;
    }
    if (dto.runAt !== undefined && !bad.has('runAt')) {
      const at = parseInstant(dto.runAt);
      if (at === undefined) errors.push({ field: `${prefix}runAt`, message: 'is not a valid date-time' });
      else if (at - this.clock.now().getTime() > max * 1000)
        errors.push({
          field: `${prefix}runAt`,
          message: `is more than ${max} seconds ahead (MAX_DELAY_SECONDS)`,
        });
    }
    if (dto.delaySeconds !== undefined && !bad.has('delaySeconds') && dto.delaySeconds > max)
      errors.push({ field: `${prefix}delaySeconds`, message: `must not be greater than ${max} (MAX_DELAY_SECONDS)` });
    return errors;
  }

  /** The s3:// input policy's verdict on one input URL of `tenant`'s job. */
  private async s3Refusal(tenant: string, url: string): Promise<string | undefined> {
    const refusal = await this.s3Inputs.refusalOfUrl(tenant, url);
    return refusal === undefined ? undefined : `may not be read: ${refusal}`;
  }

  /** The URL policy's verdict on one URL (memoized per request: a batch often repeats its callback URL). */
  private url(url: string, memo: Map<string, Promise<string | undefined>>): Promise<string | undefined> {
    let p = memo.get(url);
    if (!p) {
      p = (async () => {
        let timer: NodeJS.Timeout | undefined;
        try {
          await Promise.race([
            assertAllowedUrl(url, this.config.ALLOW_PRIVATE_URLS, ['http:', 'https:'], (h) => this.dns.resolve(h)),
            new Promise<never>((_, reject) => {
              timer = setTimeout(() => reject(new Error('host did not resolve in time')), DNS_TIMEOUT_MS);
            }),
          ]);
          return undefined;
        } catch (err) {
          return (err as Error).message;
        } finally {
          if (timer) clearTimeout(timer);
        }
      })();
      memo.set(url, p);
    }
    return p;
  }
}
