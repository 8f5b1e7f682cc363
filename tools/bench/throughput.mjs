// End-to-end throughput: no-op jobs submitted over HTTP, through scheduler and workers, to `completed`.
// Usage: npm run bench:throughput -- [jobs=2000] [workers=2] [slots=32] [concurrency=64]
// Prints the submit rate, the completion rate and submit→completed latency percentiles.
import { GantryCluster, ADMIN_KEY } from '@gantry/testing';

const [jobs = 2000, workers = 2, slots = 32, concurrency = 64] = process.argv.slice(2).map(Number);
const pct = (xs, p) => xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

const cluster = await GantryCluster.start({
  workers,
  env: {
    WORKER_SLOTS: String(slots),
    MAX_CONCURRENT_JOBS: String(workers * slots),
    RATE_LIMIT_SUBMITS_PER_MINUTE: '10000000',
    LOG_LEVEL: 'warn',
    PROGRESS_RECORD_INTERVAL_MS: '1000',
  },
});
try {
  const submitted = new Map();
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < jobs) {
        next++;
        const at = performance.now();
        const r = await fetch(`${cluster.gatewayUrl}/v1/jobs`, {
          method: 'POST',
          headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
          body: JSON.stringify({ type: 'noop', input: {} }),
        });
        const body = await r.json();
        if (r.status !== 202) throw new Error(`submit ${r.status}: ${JSON.stringify(body)}`);
        submitted.set(body.id, at);
      }
    }),
  );
  const t1 = performance.now();
  // Wait until everything completed (the leader's counters), then read the records for latencies.
  for (;;) {
    const m = await (
      await fetch(`${cluster.gatewayUrl}/v1/queue/metrics`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })
    ).json();
    if (m.performance?.totalJobsProcessed >= jobs) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const t2 = performance.now();
  const latencies = [];
  const ids = [...submitted.keys()];
  for (let i = 0; i < ids.length; i += 50) {
    await Promise.all(
      ids.slice(i, i + 50).map(async (id) => {
        const j = await (
          await fetch(`${cluster.gatewayUrl}/v1/jobs/${id}`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })
        ).json();
        latencies.push(Date.parse(j.finishedAt) - Date.parse(j.createdAt));
      }),
    );
  }
  latencies.sort((a, b) => a - b);
  console.log(`jobs=${jobs} workers=${workers} slots/worker=${slots} http-concurrency=${concurrency}`);
  console.log(`submit:   ${(jobs / ((t1 - t0) / 1000)).toFixed(0)} jobs/s (${((t1 - t0) / 1000).toFixed(2)} s)`);
  console.log(
    `complete: ${(jobs / ((t2 - t0) / 1000)).toFixed(0)} jobs/s end to end (${((t2 - t0) / 1000).toFixed(2)} s)`,
  );
  console.log(
    `created→finished ms: p50=${pct(latencies, 50)} p90=${pct(latencies, 90)} p99=${pct(latencies, 99)} max=${latencies.at(-1)}`,
  );
} finally {
  await cluster.stop();
}
