// Submit a job, draw its progress from the live event stream, and exit 0 only when it completed.
// Run: GANTRY_URL=http://127.0.0.1:8080 GANTRY_API_KEY=dev-client-key node --experimental-strip-types submit-and-wait.ts
import { GantryClient } from '@gantry/client';

const gantry = new GantryClient({
  url: process.env['GANTRY_URL'] ?? 'http://127.0.0.1:8080',
  apiKey: process.env['GANTRY_API_KEY'] ?? 'dev-client-key',
});

const job = await gantry.jobs.submit({ type: 'noop', input: { durationMs: 2000, progressSteps: 4 } });
console.log(`submitted ${job.id}`);
const done = await gantry.jobs.wait(job.id, {
  timeoutMs: 60_000,
  onEvent: (e) => console.log(e.type, e.data.progress?.percent ?? ''),
});
console.log(done.status, done.result);
process.exitCode = done.status === 'completed' ? 0 : 1;
