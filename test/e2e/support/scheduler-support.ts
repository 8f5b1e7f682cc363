/**
 * Helpers for the scheduler's end-to-end tests: a fake `nvidia-smi` (the GPU probe is a port we own), reading a job's
 * whole history from the jobs stream, and checking recorded run intervals against every concurrency limit.
 */
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock, type GpuInfo, type JobRecord, type StoredJob } from '@gantry/contracts';
import { NatsHandle } from '@gantry/jetstream';
import { JobStore } from '@gantry/job-store';
import { waitFor, type GantryCluster, type ServiceProcess } from '@gantry/testing';
import { createLogger } from '@gantry/telemetry';

/** Keys for three tenants (admin included), and a rate limit that a test's bursts never reach. */
export const TENANT_KEYS = { a: 'e2e-tenant-a-key', b: 'e2e-tenant-b-key', c: 'e2e-tenant-c-key' } as const;
export const ADMIN = 'e2e-admin-key-0001';
export const SCHEDULER_E2E_ENV: Record<string, string> = {
  API_KEYS: `${ADMIN}:admin,${TENANT_KEYS.a}:client:ta,${TENANT_KEYS.b}:client:tb,${TENANT_KEYS.c}:client:tc`,
  RATE_LIMIT_SUBMITS_PER_MINUTE: '1000000',
};

/** Writes an executable that answers like `nvidia-smi --query-gpu=index,uuid,name,memory.total …` for these GPUs. */
export function fakeNvidiaSmi(gpus: GpuInfo[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'gantry-fake-smi-'));
  const path = join(dir, 'nvidia-smi');
  const lines = gpus.map((g) => `${g.index}, ${g.uuid}, ${g.name}, ${g.memoryTotalMb}`).join('\n');
  writeFileSync(path, `#!/bin/sh\ncat <<'CSV'\n${lines}\nCSV\n`);
  chmodSync(path, 0o755);
  return path;
}

/** Environment for a worker that discovers these (fake) GPUs. */
export function gpuWorkerEnv(gpus: GpuInfo[], slotsPerGpu = 2): Record<string, string> {
  return { GPU_DISCOVERY: 'true', NVIDIA_SMI: fakeNvidiaSmi(gpus), SLOTS_PER_GPU: String(slotsPerGpu) };
}

/** The id a started worker process gave itself (from its `worker identity` log line). */
export async function workerIdOf(p: ServiceProcess): Promise<string> {
  const line = await p.waitForLog((l) => l.msg === 'worker identity', { timeoutMs: 30_000 });
  return String(line['workerId']);
}

/** A NATS connection of the test's own, to read the jobs stream (never to fake a service). */
export class StreamReader {
  private constructor(
    readonly nats: NatsHandle,
    readonly jobs: JobStore,
  ) {}

  static async connect(cluster: GantryCluster): Promise<StreamReader> {
    const nats = await NatsHandle.connect({
      servers: [cluster.nats.url],
      name: 'e2e-reader',
      logger: createLogger('e2e-reader', 'silent'),
    });
    return new StreamReader(nats, new JobStore(nats, systemClock));
  }

  history(id: string): Promise<StoredJob[]> {
    return this.jobs.history(id);
  }

  async record(id: string): Promise<JobRecord> {
    const s = await this.jobs.get(id, { consistent: true });
    if (!s) throw new Error(`job ${id} not found`);
    return s.record;
  }

  close(): Promise<void> {
    return this.nats.drain();
  }
}

/** One attempt's run as the records tell it. */
export interface RunInterval {
  jobId: string;
  attempt: number;
  start: number;
  end: number;
  tenant: string;
  workerId: string;
  gpus: string[];
  /** Memory reserved per GPU. */
  memoryMb: number;
}

/**
 * Every attempt of a job from its history: from its `job.started` revision (stamped by the worker when it took the
 * attempt) to the revision that ended it. An attempt with no end yet is open until `openUntil`.
 */
export function runIntervals(history: StoredJob[], openUntil = Date.now()): RunInterval[] {
  const out: RunInterval[] = [];
  let cur: RunInterval | undefined;
  for (const s of history) {
    const r = s.record;
    if (s.event.type === 'job.started') {
      cur = {
        jobId: r.id,
        attempt: r.attempts,
        start: Date.parse(r.startedAt!),
        end: openUntil,
        tenant: r.tenant,
        workerId: r.workerId!,
        gpus: r.gpus ?? [],
        memoryMb: r.gpu && r.gpu.count >= 1 ? r.gpu.memoryMb : 0,
      };
      out.push(cur);
    } else if (cur && r.status !== 'running') {
      cur.end = Date.parse(r.finishedAt ?? r.updatedAt);
      cur = undefined;
    }
  }
  return out;
}

/**
 * The largest total weight running at once per key (a sweep over start/end events; an end at the same instant as a
 * start counts first, as a slot freed then taken).
 */
export function peakBy(
  intervals: readonly RunInterval[],
  keys: (i: RunInterval) => string[],
  weight: (i: RunInterval) => number = () => 1,
): Map<string, number> {
  const events: { t: number; key: string; d: number }[] = [];
  for (const i of intervals) {
    for (const key of keys(i)) {
      events.push({ t: i.start, key, d: weight(i) });
      events.push({ t: i.end, key, d: -weight(i) });
    }
  }
  events.sort((x, y) => x.t - y.t || x.d - y.d);
  const now = new Map<string, number>();
  const peak = new Map<string, number>();
  for (const e of events) {
    const v = (now.get(e.key) ?? 0) + e.d;
    now.set(e.key, v);
    peak.set(e.key, Math.max(peak.get(e.key) ?? 0, v));
  }
  return peak;
}

/** Submits many jobs with bounded concurrency; returns their ids in submission order. */
export async function submitAll(
  cluster: GantryCluster,
  jobs: { body: Record<string, unknown>; key?: string }[],
  concurrency = 8,
): Promise<string[]> {
  const ids = new Array<string>(jobs.length);
  let next = 0;
  const lane = async () => {
    while (next < jobs.length) {
      const i = next++;
      ids[i] = await cluster.submit(jobs[i]!.body, jobs[i]!.key ?? ADMIN);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  return ids;
}

/** Whether this scheduler process answers `leader: true` on its ops endpoint's /readyz. */
export async function isLeader(p: ServiceProcess): Promise<boolean> {
  if (!p.running) return false;
  const line = await p.waitForLog((l) => l.msg === 'scheduler ops endpoint listening', { timeoutMs: 60_000 });
  const r = await fetch(`${String(line['url'])}/readyz`).catch(() => undefined);
  const body = (await r?.json().catch(() => ({}))) as { leader?: boolean } | undefined;
  return body?.leader === true;
}

/** The cluster's leading scheduler (other than `exclude`), awaited for up to a minute. */
export async function leaderOf(cluster: GantryCluster, exclude?: ServiceProcess): Promise<ServiceProcess> {
  return waitFor(
    async () => {
      for (const s of cluster.of('scheduler')) if (s !== exclude && (await isLeader(s))) return s;
      return undefined;
    },
    { what: 'a leading scheduler', timeoutMs: 60_000, intervalMs: 50 },
  );
}
