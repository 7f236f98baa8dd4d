// ESLint 9 flat config: typescript-eslint strictTypeChecked, plus the house rules of STYLE.md.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** Only store/ imports lmdb, only ingest/ imports grpc, only influence/ imports onnxruntime (STYLE.md). */
const OWNER = { lmdb: 'daemon/store', '@grpc/grpc-js': 'daemon/ingest', 'onnxruntime-node': 'daemon/influence and daemon/motion' };
function restrict(files, banned) {
  return {
    files,
    rules: {
      'no-restricted-imports': ['error', { paths: banned.map((name) => ({ name, message: `Only ${OWNER[name]} imports ${name}.` })) }],
    },
  };
}

export default tseslint.config(
  { ignores: ['node_modules/', 'trainer-hooks/python/', 'dashboards/', 'bench/results/', 'bench/.cache/', 'docs/', 'motive-data/'] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ['bin/*.js', 'eslint.config.js'] }, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/no-confusing-void-expression': ['error', { ignoreArrowShorthand: true }],
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' },
      ],
      'no-restricted-syntax': ['error', { selector: 'ExportDefaultDeclaration', message: 'Use named exports.' }],
    },
  },
  ...[
    ['daemon/store/**', ['@grpc/grpc-js', 'onnxruntime-node']],
    ['daemon/ingest/**', ['lmdb', 'onnxruntime-node']],
    ['daemon/influence/**', ['lmdb', '@grpc/grpc-js']],
    ['daemon/motion/**', ['lmdb', '@grpc/grpc-js']],
  ].map(([files, banned]) => restrict([files], banned)),
  {
    ...restrict(['daemon/**/*.ts'], ['lmdb', '@grpc/grpc-js', 'onnxruntime-node']),
    ignores: ['daemon/store/**', 'daemon/ingest/**', 'daemon/influence/**', 'daemon/motion/**'],
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts', 'scripts/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unnecessary-condition': 'off',
    },
  },
  { files: ['bin/*.js', 'eslint.config.js'], ...tseslint.configs.disableTypeChecked },
  { files: ['bin/*.js'], languageOptions: { globals: { process: 'readonly' } } },
  // Tool configs must default-export.
  { files: ['eslint.config.js', 'vitest.config.ts'], rules: { 'no-restricted-syntax': 'off' } },
);
