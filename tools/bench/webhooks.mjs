#!/usr/bin/env node
// Webhook delivery throughput and latency: a real nats-server, N notifier processes (the built app), real HTTP
// receivers answering 204 at once. EVENTS lifecycle events are published into the jobs stream as fast as the broker
// takes them (spread over ENDPOINTS receivers); the figures are: events/s from the first publish to the last
// delivery, and per-event latency from the event's timestamp to its arrival.
//
//   npm run bench:webhooks                      # defaults: 5000 events, 10 endpoints, 1 and 2 replicas
//   EVENTS=20000 REPLICAS=1,2,4 WEBHOOK_ENDPOINT_QUEUE=16 npm run bench:webhooks
//
// SCENARIO=noisy: a quiet tenant's webhook latency while another floods. Tenant A publishes FLOOD events (default
// 5000) to HANGING endpoints (default 33, one origin each, never answering), then tenant B publishes QUIET events
// (default 100, one every 50 ms) to a healthy endpoint; B's latency is reported (one notifier replica).
//   SCENARIO=noisy npm run bench:webhooks
// BACKLOG=1 (with SCENARIO=noisy): A's flood is published while the notifier is down, so it is all ahead of B's
// events at the intake (a burst faster than the intake); B's first event then goes out as the notifier starts.
//   SCENARIO=noisy BACKLOG=1 FLOOD=5000 npm run bench:webhooks
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const testing = require('../../libs/testing/dist/index.js');
const jetstream = require('../../libs/jetstream/dist/index.js');
const contracts = require('../../libs/contracts/dist/index.js');
const telemetry = require('../../libs/telemetry/dist/index.js');

const EVENTS = Number(process.env.EVENTS ?? 5_000);
const ENDPOINTS = Number(process.env.ENDPOINTS ?? 10);
const REPLICAS = (process.env.REPLICAS ?? '1,2').split(',').map(Number);

function event(callbackUrl, tenant = 'default') {
  const id = contracts.newId();
  const now = new Date().toISOString();
  const job = {
    id,
    tenant,
    type: 'noop',
    input: {},
    priority: 'normal',
    pool: 'default',
    callbackUrl,
    timeoutSeconds: 60,
    maxAttempts: 1,
    retryDelaysMs: [],
    metadata: {},
    status: 'queued',
    generation: 1,
    attempts: 0,
    sequence: 1,
    enqueuedAt: now,
    createdAt: now,
    updatedAt: now,
  };
  return { type: 'job.queued', timestamp: now, sequence: 1, generation: 1, job };
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];

async function run(replicas) {
  const nats = await testing.NatsServer.start();
  const receivers = await Promise.all(Array.from({ length: ENDPOINTS }, () => testing.WebhookReceiver.start()));
  const procs = [];
  for (let i = 0; i < replicas; i++) {
    const p = new testing.ServiceProcess('notifier', {
      NATS_URL: nats.url,
      NOTIFIER_HTTP_PORT: '0',
      WEBHOOK_SECRET: testing.E2E_WEBHOOK_SECRET,
      ALLOW_PRIVATE_URLS: 'true',
      // WEBHOOK_* settings of this shell are passed on (to compare settings).
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('WEBHOOK_'))),
    }).start();
    procs.push(p);
  }
  for (const p of procs) await p.waitForLog((l) => l.msg === 'notifier started', { timeoutMs: 60_000 });
  const client = await jetstream.NatsHandle.connect({
    servers: [nats.url],
    name: 'bench',
    logger: telemetry.createLogger('bench', 'silent'),
  });
  try {
    const started = Date.now();
    for (let i = 0; i < EVENTS; i += 500) {
      await Promise.all(
        Array.from({ length: Math.min(500, EVENTS - i) }, (_, k) => {
          const e = event(`${receivers[(i + k) % ENDPOINTS].url}/bench`);
          return jetstream.publishJson(client.js, contracts.SUBJECTS.job(e.job.id), e, { msgID: `${e.job.id}.1.1` });
        }),
      );
    }
    const published = Date.now();
    await testing.waitFor(() => receivers.reduce((n, r) => n + r.received.length, 0) >= EVENTS, {
      what: `${EVENTS} deliveries`,
      timeoutMs: 600_000,
      intervalMs: 50,
    });
    const done = Math.max(...receivers.flatMap((r) => r.received.map((w) => w.receivedAt)));
    const lat = receivers
      .flatMap((r) => r.received.map((w) => w.receivedAt - Date.parse(w.json.timestamp)))
      .sort((a, b) => a - b);
    const received = receivers.reduce((n, r) => n + r.received.length, 0);
    let attempts = 0;
    let attemptSeconds = 0;
    let deferred = 0;
    for (const p of procs) {
      const ops = p.lines.find((l) => l.msg === 'notifier ops endpoint listening')?.url;
      const text = await (await fetch(`${ops}/metrics`)).text();
      const sum = (name) =>
        [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))].reduce((a, m) => a + Number(m[1]), 0);
      attempts += sum('gantry_webhook_attempt_duration_seconds_count');
      attemptSeconds += sum('gantry_webhook_attempt_duration_seconds_sum');
      deferred += sum('gantry_webhook_deferred_total');
    }
    console.log(
      `replicas=${replicas} events=${EVENTS} endpoints=${ENDPOINTS}: published in ${published - started} ms, ` +
        `${Math.round((EVENTS * 1000) / (done - started))} webhooks/s end to end, ` +
        `latency p50=${pct(lat, 0.5)} p95=${pct(lat, 0.95)} p99=${pct(lat, 0.99)} max=${lat.at(-1)} ms, ` +
        `received=${received} (duplicates ${received - EVENTS}); mean attempt ${Math.round((attemptSeconds / attempts) * 1000)} ms, ` +
        `${deferred} deferrals (${(deferred / EVENTS).toFixed(2)} per event)`,
    );
  } finally {
    await client.drain();
    await Promise.all(procs.map((p) => p.kill('SIGTERM', 30_000).catch(() => p.kill('SIGKILL'))));
    await Promise.all(receivers.map((r) => r.close()));
    await nats.dispose();
  }
}

async function noisy() {
  const FLOOD = Number(process.env.FLOOD ?? 5_000);
  const BACKLOG = process.env.BACKLOG === '1';
  const HANGING = Number(process.env.HANGING ?? 33);
  const QUIET = Number(process.env.QUIET ?? 100);
  const nats = await testing.NatsServer.start();
  const hanging = await Promise.all(Array.from({ length: HANGING }, () => testing.WebhookReceiver.start()));
  for (const r of hanging) r.respond({ status: 200, hang: true });
  const quiet = await testing.WebhookReceiver.start();
  const notifier = new testing.ServiceProcess('notifier', {
    NATS_URL: nats.url,
    NOTIFIER_HTTP_PORT: '0',
    WEBHOOK_SECRET: testing.E2E_WEBHOOK_SECRET,
    ALLOW_PRIVATE_URLS: 'true',
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('WEBHOOK_'))),
  });
  const start = async () => {
    const p = notifier.start();
    await p.waitForLog((l) => l.msg === 'notifier started', { timeoutMs: 120_000 });
    return p;
  };
  let p = BACKLOG ? undefined : await start();
  const client = await jetstream.NatsHandle.connect({
    servers: [nats.url],
    name: 'bench',
    logger: telemetry.createLogger('bench', 'silent'),
  });
  // With the headers the job store writes (the intake takes turns across tenants by Gantry-Tenant).
  const publish = (e) =>
    jetstream.publishJson(client.js, contracts.SUBJECTS.job(e.job.id), e, {
      msgID: `${e.job.id}.1.1`,
      headers: {
        [contracts.HEADERS.eventType]: e.type,
        [contracts.HEADERS.jobId]: e.job.id,
        [contracts.HEADERS.callback]: '1',
        [contracts.HEADERS.tenant]: e.job.tenant,
      },
    });
  try {
    if (BACKLOG) {
      // The notifier is not up to provision the jobs stream: made here with the same declaration.
      await jetstream.provision(client, { streams: [contracts.streamDeclarations(contracts.DEFAULT_TOPOLOGY).jobs] });
    }
    for (let i = 0; i < FLOOD; i += 500) {
      await Promise.all(
        Array.from({ length: Math.min(500, FLOOD - i) }, (_, k) =>
          publish(event(`${hanging[(i + k) % HANGING].url}/flood`, 'tenant-a')),
        ),
      );
    }
    p ??= await start();
    await testing.waitFor(() => hanging.reduce((n, r) => n + r.received.length, 0) > 0, {
      what: "the flooding tenant's first requests",
      timeoutMs: 60_000,
      intervalMs: 20,
    });
    const started = Date.now();
    for (let i = 0; i < QUIET; i++) {
      await publish(event(`${quiet.url}/quiet`, 'tenant-b'));
      await new Promise((r) => setTimeout(r, 50));
    }
    await quiet.waitForCount(() => true, QUIET, { timeoutMs: 600_000, intervalMs: 20 });
    const inOrder = quiet.received
      .map((w) => ({ at: Date.parse(w.json.timestamp), lat: w.receivedAt - Date.parse(w.json.timestamp) }))
      .sort((x, y) => x.at - y.at)
      .map((x) => x.lat);
    const lat = [...inOrder].sort((a, b) => a - b);
    console.log(
      `noisy neighbour: tenant A ${FLOOD} events to ${HANGING} hanging origins; tenant B ${QUIET} events over ` +
        `${Math.round((Date.now() - started) / 1000)} s: B latency p50=${pct(lat, 0.5)} p95=${pct(lat, 0.95)} ` +
        `p99=${pct(lat, 0.99)} max=${lat.at(-1)} ms; A's requests out meanwhile ` +
        `${hanging.reduce((n, r) => n + r.received.length, 0)}; B's first 5 (in publish order, the first one creates ` +
        `B's delivery consumer) ${inOrder.slice(0, 5).join(', ')} ms`,
    );
  } finally {
    await client.drain();
    await p?.kill('SIGKILL').catch(() => undefined);
    await Promise.all([...hanging, quiet].map((r) => r.close()));
    await nats.dispose();
  }
}

console.log(`webhook bench on ${(await import('node:os')).cpus().length} CPU(s), node ${process.version}`);
if (process.env.SCENARIO === 'noisy') await noisy();
else for (const n of REPLICAS) await run(n);
