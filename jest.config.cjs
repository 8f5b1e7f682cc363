// One Jest run over every project. Tiers by file name: `*.spec.ts` unit tests beside the code (ports faked, no
// broker), `*.int.ts` integration tests against a real nats-server, `*.e2e.ts` tests that start the built apps as
// real processes. Nest 12, execa and a few of their dependencies are ESM-only: Jest (CommonJS) transforms them
// with SWC, so the list of packages to transform is read from node_modules instead of hand-kept.
const fs = require('node:fs');
const path = require('node:path');

function esmPackages(dir = path.join(__dirname, 'node_modules'), scope = '') {
  const out = [];
  for (const name of fs.readdirSync(dir)) {
    if (name.startsWith('.')) continue;
    const full = path.join(dir, name);
    if (name.startsWith('@')) {
      out.push(...esmPackages(full, `${name}/`));
      continue;
    }
    // Nested copies (e.g. execa/node_modules/npm-run-path) can be ESM where the hoisted one is not.
    const nested = path.join(full, 'node_modules');
    if (fs.existsSync(nested)) out.push(...esmPackages(nested));
    try {
      if (JSON.parse(fs.readFileSync(path.join(full, 'package.json'), 'utf8')).type === 'module')
        out.push(scope + name);
    } catch {
      // not a package
    }
  }
  return out;
}

const escape = (s) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
const libs = ['contracts', 'config', 'telemetry', 'jetstream', 'job-store', 'net', 'storage', 'testing', 'client'];

module.exports = {
  testEnvironment: 'node',
  rootDir: __dirname,
  roots: ['<rootDir>/apps', '<rootDir>/libs', '<rootDir>/test'],
  testMatch: ['**/*.spec.ts', '**/*.int.ts', '**/*.e2e.ts'],
  testPathIgnorePatterns: ['/node_modules/', '/dist/'],
  transform: {
    '^.+\\.(t|j|mj|cj)s$': [
      '@swc/jest',
      {
        jsc: {
          target: 'es2023',
          parser: { syntax: 'typescript', decorators: true },
          transform: { legacyDecorator: true, decoratorMetadata: true },
        },
        module: { type: 'commonjs' },
      },
    ],
  },
  transformIgnorePatterns: [`/node_modules/(?!(${[...new Set(esmPackages())].map(escape).join('|')})/)`],
  resolver: '<rootDir>/tools/jest-resolver.cjs',
  moduleNameMapper: {
    ...Object.fromEntries(libs.map((l) => [`^@gantry/${l}$`, `<rootDir>/libs/${l}/src/index.ts`])),
    // ESM sources (libs/client) import their siblings as `./x.js`; Jest resolves those to `./x.ts`.
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
  testTimeout: 120_000,
  maxWorkers: 2,
  setupFiles: ['<rootDir>/tools/jest-setup.cjs'],
};
