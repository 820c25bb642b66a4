// Lint for every workspace; generated code (proto/gen) is checked by gen:check, not here.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['proto/gen/**', 'node_modules/**', '**/dist/**', '.tools/**', '.venv/**', '.state/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', Buffer: 'readonly', URL: 'readonly' },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-properties': ['error', { object: 'process', property: 'env', message: 'Read the environment only in src/config.ts.' }],
    },
  },
  {
    files: ['**/src/config.ts', '**/test/**', 'scripts/**', 'test/**'],
    rules: { 'no-restricted-properties': 'off' },
  },
);
