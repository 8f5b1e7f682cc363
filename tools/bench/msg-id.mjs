#!/usr/bin/env node
// Issue 16: what a `Nats-Msg-Id` costs the broker per acked publish (job revisions no longer carry one: the
// compare-and-set already stores each revision at most once, docs/architecture.md). One nats-server (file store), one
// client; N acked 300-byte publishes, each to its own subject with `Nats-Expected-Last-Subject-Sequence: 0` (as a
// job's first revision), 256 in flight, into a fresh stream per variant: no id, a unique id per publish with the
// 2-minute duplicate window the jobs stream has, and the same with a 2-second window. Prints nats-server's own CPU
// (from /proc) per message; the variants run three times, interleaved.
//
//   node tools/gantry.mjs build && node tools/gantry.mjs bench msg-id [N]
import { createRequire } from 'node:module';
import { loadavg } from 'node:os';
import { CLK_TCK, cpuTicks } from './proc-cpu.mjs';

const require = createRequire(import.meta.url);
const testing = require('../../libs/testing/dist/index.js');
const { connect } = require('@nats-io/transport-node');
const { jetstream, jetstreamManager } = require('@nats-io/jetstream');

const N = Number(process.argv[2] ?? 60_000);
const IN_FLIGHT = 256;
const PAYLOAD = new Uint8Array(300);

const VARIANTS = [
  { name: 'no id', windowNs: 120e9, id: false },
  { name: 'unique id, 2 min window', windowNs: 120e9, id: true },
  { name: 'unique id, 2 s window', windowNs: 2e9, id: true },
];

const server = await testing.NatsServer.start();
const nc = await connect({ servers: server.url });
try {
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  console.log(
    `${N.toLocaleString('en-US')} acked publishes per variant, ${IN_FLIGHT} in flight; load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  );
  let round = 0;
  for (const pass of [1, 2, 3]) {
    for (const v of VARIANTS) {
      const stream = `MSGID_${round++}`;
      await jsm.streams.add({ name: stream, subjects: [`${stream}.>`], duplicate_window: v.windowNs, storage: 'file' });
      const before = cpuTicks(server.pid);
      const t0 = Date.now();
      const pending = [];
      for (let i = 0; i < N; i++) {
        pending.push(
          js.publish(`${stream}.j${i}`, PAYLOAD, {
            expect: { lastSubjectSequence: 0 },
            ...(v.id ? { msgID: `job-${i}.1.1.${Math.random().toString(36).slice(2)}` } : {}),
          }),
        );
        if (pending.length >= IN_FLIGHT) {
          await Promise.all(pending);
          pending.length = 0;
        }
      }
      await Promise.all(pending);
      const us = (((cpuTicks(server.pid) - before) / CLK_TCK) * 1e6) / N;
      console.log(
        `pass ${pass}  ${v.name.padEnd(24)} nats-server ${us.toFixed(1)} µs per message, ${Date.now() - t0} ms`,
      );
      await jsm.streams.delete(stream);
    }
  }
} finally {
  await nc.close();
  await server.dispose();
}
