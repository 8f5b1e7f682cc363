/**
 * Issue 15, the noisy neighbour by job size, through the real processes (nats-server, gateway, scheduler): 1,500 jobs
 * of 200 KB each (300 MB of job records) submitted into a pool no worker serves — half while the scheduler runs, half
 * after a `kill -9` of it, while none runs. The scheduler must stay under its 256 MB memory budget while they arrive,
 * and again when the next process rebuilds its state from those 300 MB and, as leader, lists the half its predecessor
 * never saw; and it must count every one of the 1,500 queued jobs the moment it says it has rebuilt (the "rebuild
 * undercount": a rebuilt scheduler once counted 1,363 of 1,500).
 *
 * The scheduler runs with the Node options the memory budget is stated for (docs/performance.md, "Memory: what
 * mattered"); its RSS is read from /proc (VmRSS sampled every 100 ms, and VmHWM — the kernel's own high-water mark).
 * The retention sweep runs every second (every minute in production) so that it surely runs during the test.
 */
import { readFileSync } from 'node:fs';
import { GantryCluster, waitFor, type ServiceProcess } from '@gantry/testing';
import { ADMIN, SCHEDULER_E2E_ENV } from './support/scheduler-support';

jest.setTimeout(1_200_000);

const JOBS = 1_500;
const JOB_BYTES = 200_000;
const BUDGET = 256 * 1024 * 1024;
const NODE_OPTIONS = '--max-semi-space-size=2 --max-old-space-size=128';

/** VmRSS and VmHWM of a process, in bytes. */
function memoryOf(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string): number => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) * 1024;
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/** Samples a process's RSS every 100 ms until stopped; `peak()` is the highest of the samples and VmHWM. */
function sampleRss(p: ServiceProcess): { peak: () => number; stop: () => void } {
  let peak = 0;
  const read = (): void => {
    try {
      const m = memoryOf(p.pid!);
      peak = Math.max(peak, m.rss, m.hwm);
    } catch {
      // exited (the kill -9 below): its last samples stand
    }
  };
  const timer = setInterval(read, 100);
  return {
    peak: () => {
      read();
      return peak;
    },
    stop: () => clearInterval(timer),
  };
}

/** The scheduler's own count of queued jobs (every pool and priority), from its /metrics. */
async function queuedPerMetrics(p: ServiceProcess): Promise<number> {
  const url = String((await p.waitForLog((l) => l.msg === 'scheduler ops endpoint listening')).url);
  const text = await (await fetch(`${url}/metrics`)).text();
  let total = 0;
  for (const m of text.matchAll(/^gantry_queue_depth\{[^}]*\} (\d+)/gm)) total += Number(m[1]);
  return total;
}

describe('scheduler memory with maximum-size jobs (real processes)', () => {
  let cluster: GantryCluster;

  beforeAll(async () => {
    cluster = await GantryCluster.start({
      workers: 0,
      notifiers: 0,
      env: { ...SCHEDULER_E2E_ENV, MAX_JOB_BYTES: String(256 * 1024), MAX_QUEUE_SIZE: '100000' },
      // The retention sweep (every minute in production) every second, so that it surely runs in the test: until
      // issue 15 each run fetched 1,000 whole records (~200 MB of these) even when none was old enough to remove.
      serviceEnv: { scheduler: { NODE_OPTIONS, RETENTION_SWEEP_INTERVAL_MS: '1000' } },
    });
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  const depth = async (): Promise<number | undefined> => {
    const r = await cluster.api<{ depth: { total: number } }>('GET', '/v1/queue', undefined, ADMIN);
    return r.status === 200 ? r.body.depth.total : undefined;
  };

  it('1,500 jobs of 200 KB: under 256 MB while they arrive and across a kill -9 and rebuild, every job counted', async () => {
    const first = cluster.of('scheduler')[0]!;
    await waitFor(async () => (await depth()) === 0, { what: 'an empty queue', timeoutMs: 180_000, intervalMs: 250 });
    const arriving = sampleRss(first);

    // Submits of 200 KB each (8 at a time) into a pool no worker serves: every job stays queued.
    const pad = 'x'.repeat(JOB_BYTES - 200);
    let next = 0;
    let failed = false;
    const submitUpTo = async (n: number): Promise<void> => {
      const lane = async (): Promise<void> => {
        while (next < n && !failed) {
          const i = next++;
          const job = { type: 'noop', pool: 'nobody', input: { result: `${i} ${pad}` } };
          // A 503 (the gateway's RPC to a scheduler busy under load) is "try again"; anything else fails the test.
          let r = await cluster.api('POST', '/v1/jobs', job, ADMIN);
          for (let tries = 0; r.status === 503 && tries < 100; tries++)
            r = await cluster.api('POST', '/v1/jobs', job, ADMIN);
          if (r.status !== 202) {
            failed = true;
            throw new Error(`submit ${i} answered ${r.status}: ${JSON.stringify(r.body)}`);
          }
        }
      };
      await Promise.all(Array.from({ length: 8 }, lane));
    };
    // The first half while the scheduler runs (it indexes and lists each one as it arrives).
    await submitUpTo(JOBS / 2);
    await waitFor(async () => (await depth()) === JOBS / 2, {
      what: `${JOBS / 2} queued`,
      timeoutMs: 300_000,
      intervalMs: 500,
    });
    const peakArriving = arriving.peak();
    arriving.stop();

    // kill -9, and the second half accepted while no scheduler runs (the gateway admits on its own count). The next
    // scheduler rebuilds its state from all 300 MB, and as leader its listing writer catches up over the 150 MB its
    // predecessor never listed (until issue 15 in pulls of 1,024 whole records).
    expect(await first.kill('SIGKILL')).not.toBe(0);
    await submitUpTo(JOBS);
    const second = cluster.spawn('scheduler');
    const rebuilding = sampleRss(second);
    const ready = await second.waitForLog((l) => l.msg === 'scheduler state rebuilt', { timeoutMs: 600_000 });
    // The moment it says it has rebuilt, the scheduler counts every job: nothing is arriving any more, so a short
    // count here is a rebuild that declared itself done too soon.
    expect({ logged: ready['queued'], metrics: await queuedPerMetrics(second) }).toEqual({
      logged: JOBS,
      metrics: JOBS,
    });
    await waitFor(async () => (await depth()) === JOBS, {
      what: `GET /v1/queue from the rebuilt scheduler: ${JOBS} queued`,
      timeoutMs: 300_000,
      intervalMs: 500,
    });
    // Leading (the listing writer's catch-up over the 1,500 records is part of the restart's cost), then at rest.
    await second.waitForLog((l) => l.msg === 'leading', { timeoutMs: 300_000 });
    await waitFor(
      async () => {
        const r = await cluster.api<{ items: unknown[] }>('GET', '/v1/jobs?limit=1', undefined, ADMIN);
        return r.status === 200;
      },
      { what: 'the listing answering', timeoutMs: 300_000, intervalMs: 500 },
    );
    const peakRebuild = rebuilding.peak();
    rebuilding.stop();

    const mb = (b: number): string => `${(b / 1024 / 1024).toFixed(1)} MB`;
    process.stdout.write(
      `scheduler RSS peak: ${mb(peakArriving)} while ${JOBS / 2} jobs of ${JOB_BYTES} bytes arrived, ` +
        `${mb(peakRebuild)} across the kill -9, rebuild of ${JOBS} and takeover (listing catch-up over ${JOBS / 2})\n`,
    );
    expect({ arriving: peakArriving < BUDGET, rebuild: peakRebuild < BUDGET }).toEqual({
      arriving: true,
      rebuild: true,
    });
    expect(await depth()).toBe(JOBS);
  });
});
