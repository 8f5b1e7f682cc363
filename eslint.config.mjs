// Lint: typescript-eslint (typed rules: no floating promises, exhaustive switches), Nx module boundaries
// (apps never import each other; libs never import apps; production code never imports the testing lib), prettier.
import nx from '@nx/eslint-plugin';
import tseslint from 'typescript-eslint';
import prettier from 'eslint-config-prettier';

export default tseslint.config(
  {
    ignores: [
      '**/node_modules/**',
      '**/dist/**',
      '**/.data/**',
      '**/.nx/**',
      'coverage/**',
      '**/*.js',
      '**/*.cjs',
      '**/*.mjs',
    ],
  },
  ...nx.configs['flat/base'],
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { project: ['./tsconfig.spec.json'], tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': [
        'error',
        { checksVoidReturn: { arguments: false, attributes: false } },
      ],
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
      '@typescript-eslint/consistent-type-imports': [
        'error',
        { fixStyle: 'inline-type-imports', disallowTypeAnnotations: false },
      ],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'error',
      '@nx/enforce-module-boundaries': [
        'error',
        {
          enforceBuildableLibDependency: false,
          // Tests import their own library through its public name, like any user of it.
          allowCircularSelfDependency: true,
          allow: [],
          // Layers (docs/architecture.md, "Where things live"): base (contracts, config, telemetry) imports no other
          // lib; infra (jetstream, net, storage) only base; store (job-store) base and infra; the public client only
          // base. Tests may import the test harness (production code may not: the rule below).
          depConstraints: [
            { sourceTag: 'type:app', onlyDependOnLibsWithTags: ['type:lib'] },
            { sourceTag: 'type:lib', onlyDependOnLibsWithTags: ['type:lib'] },
            { sourceTag: 'layer:base', onlyDependOnLibsWithTags: ['scope:testing'] },
            { sourceTag: 'layer:infra', onlyDependOnLibsWithTags: ['layer:base', 'scope:testing'] },
            { sourceTag: 'layer:store', onlyDependOnLibsWithTags: ['layer:base', 'layer:infra', 'scope:testing'] },
            { sourceTag: 'layer:client', onlyDependOnLibsWithTags: ['layer:base', 'scope:testing'] },
            { sourceTag: 'scope:cli', onlyDependOnLibsWithTags: ['layer:client', 'layer:base', 'scope:testing'] },
          ],
        },
      ],
    },
  },
  {
    // Production code must not import the test harness (project tags cannot tell tests from code, this can).
    files: ['apps/*/src/**/*.ts', 'libs/*/src/**/*.ts'],
    ignores: ['**/*.spec.ts', 'libs/testing/**'],
    rules: {
      'no-restricted-imports': ['error', { paths: [{ name: '@gantry/testing', message: 'test harness: tests only' }] }],
    },
  },
  {
    // Payloads are decoded through their channel/RPC declaration (libs/contracts/src/channels.ts), never by a cast.
    files: ['apps/*/src/**/*.ts', 'libs/*/src/**/*.ts'],
    ignores: ['**/*.spec.ts', 'libs/testing/**', 'libs/jetstream/**'],
    rules: {
      'no-restricted-syntax': [
        'error',
        {
          selector: "CallExpression[callee.name='decodeJson'][typeArguments]",
          message: 'unchecked cast: decode through the declaration, decodePayload(CHANNELS.x, data)',
        },
        {
          selector: "CallExpression[callee.property.name='json'][typeArguments]",
          message: 'unchecked cast: decode through the declaration, decodePayload(CHANNELS.x, entry.value)',
        },
        {
          selector: "CallExpression[callee.name='rpcRequest']",
          message: 'untyped request: call the declared RPC through RpcClient (or rpcCall)',
        },
      ],
    },
  },
  prettier,
);
