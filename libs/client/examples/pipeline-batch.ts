// Submit several jobs as one all-or-nothing batch, then follow each job's events as an async iterator.
import { GantryClient } from '@gantry/client';

const gantry = new GantryClient({
  url: process.env['GANTRY_URL'] ?? 'http://127.0.0.1:8080',
  apiKey: process.env['GANTRY_API_KEY'] ?? 'dev-client-key',
});

const batch = await gantry.batches.submit({
  jobs: [
    { type: 'noop', input: { durationMs: 500 }, metadata: { step: 'transcode' } },
    { type: 'noop', input: { durationMs: 500 }, metadata: { step: 'transcribe' }, priority: 'high' },
  ],
});
await Promise.all(
  batch.jobs.map(async (job) => {
    for await (const event of gantry.jobs.events(job.id)) console.log(job.id, event.type);
  }),
);
console.log(await gantry.batches.get(batch.id));
