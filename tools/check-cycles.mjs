// Fails when any import cycle exists inside the projects (apps and libs), followed from every entry point.
// dpdm walks the TypeScript sources; cross-project edges are covered by Nx's module-boundary lint.
import { spawnSync } from 'node:child_process';
import { readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const entries = [];
for (const dir of ['apps', 'libs']) {
  for (const name of readdirSync(dir)) {
    for (const f of ['src/main.ts', 'src/index.ts']) {
      const p = join(dir, name, f);
      if (existsSync(p)) entries.push(p);
    }
  }
}
const r = spawnSync(
  'dpdm',
  [
    '--no-warning',
    '--no-tree',
    '--transform',
    '--exit-code',
    'circular:1',
    '-T',
    '--tsconfig',
    'tsconfig.spec.json',
    ...entries,
  ],
  {
    encoding: 'utf8',
  },
);
const out = `${r.stdout}${r.stderr}`;
if (r.status !== 0) {
  process.stderr.write(out);
  process.stderr.write('\nimport cycles found (see above)\n');
  process.exit(1);
}
process.stdout.write(`no import cycles in ${entries.length} entry points\n`);
