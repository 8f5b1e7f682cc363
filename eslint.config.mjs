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
          depConstraints: [
            { sourceTag: 'type:app', onlyDependOnLibsWithTags: ['type:lib'] },
            { sourceTag: 'type:lib', onlyDependOnLibsWithTags: ['type:lib'] },
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
