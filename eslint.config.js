// ESLint flat config: type-aware TypeScript rules, no floating promises, exhaustive switches,
// import-cycle checks and the layer boundaries of docs/architecture.md (engine never imports
// api/ or cli/; only store/ talks to the database drivers).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import importX, { createNodeResolver } from 'eslint-plugin-import-x';

/** The database drivers: only src/store/ may import them. */
const DRIVER_IMPORTS = {
  paths: [{ name: 'pg', message: 'Only src/store/ talks to PostgreSQL: use an Executor from src/store/.' }],
  patterns: [
    {
      group: ['@electric-sql/pglite', '@electric-sql/pglite/*'],
      message: 'Only src/store/ talks to PGlite: use an Executor from src/store/.',
    },
  ],
};

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.task-engine/**', 'coverage/**', 'test-output/**', '**/*.js', '**/*.mjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { 'import-x': importX },
    settings: {
      // Sources import `./x.js` for `./x.ts` (NodeNext), and import-x parses only the extensions
      // and parsers named here: without both it resolves and reads nothing, and no-cycle and
      // no-restricted-paths silently pass.
      'import-x/extensions': ['.ts', '.js'],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
      'import-x/resolver-next': [
        createNodeResolver({ extensions: ['.ts', '.js'], extensionAlias: { '.js': ['.ts', '.js'] } }),
      ],
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unsafe-assignment': 'error',
      '@typescript-eslint/no-unsafe-member-access': 'error',
      '@typescript-eslint/no-unsafe-argument': 'error',
      '@typescript-eslint/no-unsafe-return': 'error',
      '@typescript-eslint/no-unsafe-call': 'error',
      '@typescript-eslint/restrict-template-expressions': 'error',
      '@typescript-eslint/require-await': 'error',
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      'import-x/no-restricted-paths': [
        'error',
        {
          zones: [
            {
              target: './src/engine',
              from: ['./src/api', './src/cli'],
              message: 'The engine never imports api/ or cli/: dependencies point inward.',
            },
          ],
        },
      ],
      'no-restricted-imports': ['error', DRIVER_IMPORTS],
    },
  },
  {
    // The console's browser code (ui/src, Preact + TSX, typed by ui/tsconfig.json): imports are
    // extensionless (Vite resolves them), so the import checks resolve .tsx too.
    files: ['ui/**/*.ts', 'ui/**/*.tsx'],
    settings: {
      'import-x/extensions': ['.ts', '.tsx', '.js'],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts', '.tsx'] },
      'import-x/resolver-next': [createNodeResolver({ extensions: ['.ts', '.tsx', '.js'] })],
    },
  },
  {
    // The console's build configuration runs in Node, typed by its own tsconfig.
    files: ['ui/vite.config.ts'],
    languageOptions: {
      parserOptions: {
        projectService: false,
        project: './ui/tsconfig.node.json',
        tsconfigRootDir: import.meta.dirname,
      },
    },
  },
  {
    files: ['src/store/**/*.ts'],
    rules: { 'no-restricted-imports': 'off' },
  },
  {
    // Fastify tells promise-style hooks, handlers and plugins from callback-style ones by their
    // being async: a non-async hook must call `done()`, so `async` without an `await` is the
    // documented form of a hook or handler that finishes at once.
    files: ['src/api/**/*.ts', 'test/api/**/*.ts'],
    rules: { '@typescript-eslint/require-await': 'off' },
  },
  {
    // Creating and dropping whole databases (a template, one per suite or benchmark run) needs an
    // admin connection to the server, outside any Executor; nothing here runs engine statements.
    files: ['test/helpers/stores.ts', 'bench/engine.bench.ts', 'bench/list-jobs.bench.ts', 'bench/admission.bench.ts', 'bench/ladder.bench.ts', 'bench/peers.bench.ts', 'bench/helpers/pg-measure.ts', 'bench/writes.bench.ts', 'bench/submit.bench.ts', 'bench/helpers/bench-setup.ts', 'bench/health.bench.ts'],
    rules: { 'no-restricted-imports': 'off' },
  },
  {
    // The chaos run creates its own database and samples and checks it from outside the engines
    // it kills, so it reads the tables over its own connections.
    files: ['chaos/**/*.ts'],
    rules: { 'no-restricted-imports': 'off' },
  },
  {
    // Holds a row lock on a second, raw session while the engine runs on its own pool, to stage
    // the races these tests are about; an Executor's transaction cannot stay open across awaits
    // of the test body.
    files: ['test/integration/runtime-retries.test.ts'],
    rules: { 'no-restricted-imports': 'off' },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts', 'src/**/*.test.ts'],
    rules: {
      // node:test's describe/it return promises that the runner itself awaits.
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite', 'before', 'after'] },
          ],
        },
      ],
    },
  },
);
