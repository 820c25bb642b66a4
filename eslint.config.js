// Lint for every workspace; generated code (proto/gen) is checked by gen:check, not here.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['proto/gen/**', 'node_modules/**', '**/dist/**', '.tools/**', '.venv/**', '.state/**', '.cache/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', Buffer: 'readonly', URL: 'readonly' },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-properties': ['error', { object: 'process', property: 'env', message: 'Read the environment only in src/config.ts.' }],
      // Each workspace has one entry point (src/index.ts): nothing reaches into another's internals.
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: '^@flatline/[^/]+/.+',
              message: "Import a workspace by its name only (its src/index.ts); export what others need from there.",
            },
          ],
        },
      ],
    },
  },
  {
    // The test harness (FLATLINE_KEEP_TEST_STATE) is test code that lives in @flatline/stack.
    files: ['**/src/config.ts', '**/test/**', 'scripts/**', 'test/**', 'stack/src/harness.ts'],
    rules: { 'no-restricted-properties': 'off' },
  },
);
