#!/usr/bin/env node
// Makes libs/client/dist publishable on its own. `node tools/gantry.mjs build` runs it after `tsc -b`, so the built
// dist is always what `npm pack` packs (the repository's .npmrc turns lifecycle scripts off); it is also the package's
// `prepack`, for a publisher whose npm runs scripts. It does nothing when dist/contracts.d.ts is already a bundle newer
// than every declaration of libs/contracts.
//
// The client's declarations take their contract types (JobView, JobRequest, …) from `@gantry/contracts`, a private
// workspace package that is never published, so a packed `@gantry/client` naming it would hand its users broken
// types. Every such import goes through src/contracts.ts; this script replaces its declaration, dist/contracts.d.ts,
// with a bundle of exactly those types inlined from libs/contracts' own compiled declarations (dts-bundle-generator),
// so the types are still generated from the code the gateway validates with, never copied by hand. It then checks
// that no file left in dist names `@gantry/contracts`, and fails otherwise.
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkgDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(pkgDir, 'dist');
const out = join(dist, 'contracts.d.ts');
if (!existsSync(out)) {
  process.stderr.write(`bundle-types: ${relative(process.cwd(), out)} is missing; build first (tsc -b libs/client)\n`);
  process.exit(1);
}

const newest = (dir) =>
  readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.d.ts'))
    .reduce((t, e) => Math.max(t, statSync(join(e.parentPath, e.name)).mtimeMs), 0);
const contractsDist = join(pkgDir, '..', 'contracts', 'dist');
if (
  !process.argv.includes('--force') &&
  !readFileSync(out, 'utf8').includes('@gantry/contracts') &&
  statSync(out).mtimeMs >= newest(contractsDist)
)
  process.exit(0);

const { generateDtsBundle } = createRequire(import.meta.url)('dts-bundle-generator');
const [bundle] = generateDtsBundle(
  [
    {
      filePath: join(pkgDir, 'src', 'contracts.ts'),
      libraries: { inlinedLibraries: ['@gantry/contracts'] },
      output: { noBanner: true, exportReferencedTypes: false },
    },
  ],
  { preferredConfigPath: join(pkgDir, 'tsconfig.json') },
);
const header =
  "// The contract types of Gantry's HTTP API, generated from the gateway's own declarations (libs/contracts) at pack time.\n";
writeFileSync(out, header + bundle);
// The declaration map pointed at src/contracts.ts, which is not what this file now holds.
rmSync(`${out}.map`, { force: true });

const offenders = [];
const walk = (dir) => {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p);
    else if (readFileSync(p, 'utf8').includes('@gantry/contracts')) offenders.push(relative(pkgDir, p));
  }
};
walk(dist);
if (offenders.length > 0) {
  process.stderr.write(`bundle-types: still naming @gantry/contracts: ${offenders.join(', ')}\n`);
  process.exit(1);
}
process.stderr.write(`bundle-types: ${relative(pkgDir, out)} holds the contract types (${bundle.length} bytes)\n`);
