#!/usr/bin/env node
// Issue 16: what one flush of a listing page costs the scheduler's listing writer — a 1,024-entry page (26-character
// ids) with 1, 10 or 100 entries changed since the last flush — encoded whole (`encodeJson(page)`, as before) and as
// the writer does now (apps/scheduler/dist: EncodedListPage, each entry's JSON kept, the page joined and encoded once).
// One process, no broker: the encoding alone, µs per flush (the changes' own cost included in both).
//
//   node tools/gantry.mjs build && node tools/gantry.mjs bench list-page-encode
import { createRequire } from 'node:module';
import { loadavg } from 'node:os';
import { encodeJson } from '@gantry/jetstream';

const require = createRequire(import.meta.url);
const { EncodedListPage } = require('../../apps/scheduler/dist/listing/encoded-list-page.js');

const STATUSES = ['queued', 'running', 'completed'];
const entries = Array.from({ length: 1_024 }, (_, i) => [
  100 * 1_024 + 1_023 - i,
  `01KBX${(1e20 + i * 7_919).toString(36).toUpperCase().padEnd(21, 'Q')}`,
  STATUSES[i % 3],
  'noop',
  'normal',
  1_764_700_000_000 + i,
]);
const page = { v: 1, tenant: 't0', bucket: 100, prev: 99, entries };
const kept = new EncodedListPage(page);
let n = 0;
/** Changes one entry's status in the plain page and returns the new entry. */
function change() {
  const i = (n++ * 37) % entries.length;
  const e = [...entries[i]];
  e[2] = STATUSES[n % 3];
  entries[i] = e;
  return e;
}

const ROUNDS = 1_000;
console.log(
  `load average ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')}`,
);
for (const changed of [1, 10, 100]) {
  const ways = {
    'whole page (encodeJson)': () => {
      for (let c = 0; c < changed; c++) change();
      return encodeJson(page);
    },
    'kept entry texts (EncodedListPage)': () => {
      for (let c = 0; c < changed; c++) kept.upsert(change());
      return kept.encode();
    },
  };
  for (const [name, flush] of Object.entries(ways)) {
    for (let i = 0; i < 100; i++) flush();
    const t = process.hrtime.bigint();
    for (let i = 0; i < ROUNDS; i++) flush();
    const us = Number(process.hrtime.bigint() - t) / 1e3 / ROUNDS;
    console.log(`${String(changed).padStart(3)} changed: ${name.padEnd(36)} ${us.toFixed(1)} µs per flush`);
  }
}
if (Buffer.compare(kept.encode(), encodeJson(page)) !== 0) throw new Error('the two encodings differ');
