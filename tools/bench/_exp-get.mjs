import { NatsServer } from '@gantry/testing';
import { NatsHandle } from '@gantry/jetstream';
import { STREAMS, SUBJECTS } from '@gantry/contracts';
import { createLogger } from '@gantry/telemetry';
const dir = process.argv[2];
const server = await NatsServer.start({ storeDir: dir, keepStore: true, port: 14222 });
const nats = await NatsHandle.connect({ servers: [server.url], name: 'g', logger: createLogger('x','silent'), timeoutMs: 30000 });
const ids = JSON.parse((await import('node:fs')).readFileSync(dir + '/ids.json', 'utf8'));
for (const [label, pick] of [['oldest', (i) => ids[i]], ['newest', (i) => ids[ids.length - 1 - i]]]) {
  for (const direct of [true, false]) {
    const t = performance.now(); const n = 2000; let k = 0;
    await Promise.all(Array.from({ length: 64 }, async () => { while (k < n) { const i = k++; 
      const q = { last_by_subj: SUBJECTS.job(pick(i)) };
      direct ? await nats.jsm.direct.getMessage(STREAMS.jobs, q) : await nats.jsm.streams.getMessage(STREAMS.jobs, q); } }));
    console.log(label, direct ? 'direct' : 'msg.get', (n / ((performance.now() - t) / 1000)).toFixed(0), 'gets/s');
  }
}
await nats.drain(); await server.stop();
