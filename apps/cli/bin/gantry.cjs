#!/usr/bin/env node
// `npx gantry` / `npm exec gantry`: runs the built CLI (apps/cli/dist) on Node ≥ 22, re-executing under the
// project's pinned Node 24 (node_modules/node-<platform>-<arch>) when the Node on the PATH is older.
'use strict';
const { existsSync } = require('node:fs');
const { join } = require('node:path');
const { spawnSync } = require('node:child_process');
const { pathToFileURL } = require('node:url');

const root = join(__dirname, '..', '..', '..');
const main = join(__dirname, '..', 'dist', 'main.js');
if (!existsSync(main)) {
  process.stderr.write('gantry: the CLI is not built; run `npm run build` first\n');
  process.exit(2);
}
if (Number(process.versions.node.split('.')[0]) >= 22) {
  import(pathToFileURL(main).href).catch((err) => {
    process.stderr.write(`gantry: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(3);
  });
} else {
  const pinned = join(root, 'node_modules', `node-${process.platform}-${process.arch}`, 'bin', 'node');
  if (!existsSync(pinned)) {
    process.stderr.write(
      `gantry: needs Node ≥ 22 (this is ${process.version}); run \`npm install\` or install Node 24\n`,
    );
    process.exit(2);
  }
  const r = spawnSync(pinned, [main, ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(r.status ?? 3);
}
