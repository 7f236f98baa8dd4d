// ESLint 9 flat config: typescript-eslint strictTypeChecked, plus the house rules (import layers: docs/architecture.md).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** Only store/ imports lmdb, only ingest/ imports grpc, only influence/ and motion/ import onnxruntime. */
const OWNER = { lmdb: 'daemon/store', '@grpc/grpc-js': 'daemon/ingest', 'onnxruntime-node': 'daemon/influence and daemon/motion' };
const PACKAGES = Object.keys(OWNER);
const PACKAGE_USERS = { lmdb: ['store'], '@grpc/grpc-js': ['ingest'], 'onnxruntime-node': ['influence', 'motion'] };

/**
 * Which daemon folders each folder may import (docs/architecture.md, "Modules and the direction of
 * their imports"); cli/, replay/ and daemon.ts sit on top and may import any. influence/ reads
 * weighting/'s fused-signal functions for its read-side views (views.ts), and weighting/ takes the
 * engine's BatchWeigher type: the two are one layer until the read path has a folder of its own.
 */
const LAYERS = {
  shared: [],
  config: ['shared'],
  store: ['shared'],
  motion: ['shared'],
  influence: ['shared', 'store', 'weighting'],
  weighting: ['shared', 'store', 'influence'],
  export: ['shared', 'store', 'influence'],
  ingest: ['shared', 'store', 'influence', 'weighting'],
  api: ['shared', 'store', 'influence', 'weighting', 'motion', 'export'],
  metrics: ['shared', 'store', 'influence', 'weighting', 'api'],
};
const FOLDERS = [...Object.keys(LAYERS), 'cli', 'replay'];

/**
 * Phases inside a folder that may not import each other (docs/architecture.md): the engine's read
 * path reads the store and never the write path's state, and the write path never the scan; the
 * engine facade (engine.ts) wires both. `files` are globs under daemon/<folder>/, `banned` the
 * module names (without `.js`) they may not import.
 */
const PHASES = {
  influence: [
    {
      files: ['attribute.ts', 'top-k.ts'],
      banned: ['engine', 'prepare', 'project-weights', 'write-group', 'apply', 'write-state', 'query-matrix'],
      message: 'The read path (attribute.ts) does not import the write path (docs/architecture.md).',
    },
    {
      files: ['prepare.ts', 'project-weights.ts', 'write-group.ts', 'apply.ts', 'write-state.ts', 'query-matrix.ts'],
      banned: ['engine', 'attribute', 'top-k'],
      message: 'The write path does not import the read path or the engine facade (docs/architecture.md).',
    },
  ],
  metrics: [
    {
      files: ['*-metrics.ts', 'sidecar.ts', 'snapshot-metric.ts', 'buckets.ts'],
      banned: ['metrics', 'route'],
      message: 'A collector stands alone; metrics.ts composes them (docs/architecture.md).',
    },
  ],
};

/**
 * Folders split by phase behind a facade: their phase modules never import the facade or the
 * folder's index, which wire the phases together, not the reverse.
 */
const FACADES = { store: ['store', 'index'] };

function restrictedImports(folder, phase) {
  const allowed = new Set([folder, ...LAYERS[folder]]);
  const banned = FOLDERS.filter((f) => !allowed.has(f));
  const patterns = banned.map((f) => ({
    group: [`../${f}/*`, `../../${f}/*`],
    message: `daemon/${folder} may import only ${[...allowed].join(', ')} (docs/architecture.md).`,
  }));
  if (phase !== undefined) patterns.push({ group: phase.banned.map((m) => `./${m}.js`), message: phase.message });
  return [
    'error',
    {
      paths: PACKAGES.filter((name) => !PACKAGE_USERS[name].includes(folder)).map((name) => ({
        name,
        message: `Only ${OWNER[name]} imports ${name}.`,
      })),
      patterns,
    },
  ];
}

/** The folder's layer rule, then one per phase of it (a later rule replaces the earlier for its files). */
function layerRules(folder) {
  return [
    { files: [`daemon/${folder}/**/*.ts`], rules: { 'no-restricted-imports': restrictedImports(folder) } },
    ...(PHASES[folder] ?? []).map((phase) => ({
      files: phase.files.map((f) => `daemon/${folder}/${f}`),
      rules: { 'no-restricted-imports': restrictedImports(folder, phase) },
    })),
    ...(FACADES[folder] === undefined
      ? []
      : [
          {
            files: [`daemon/${folder}/**/*.ts`],
            ignores: FACADES[folder].map((f) => `daemon/${folder}/${f}.ts`),
            rules: {
              'no-restricted-imports': restrictedImports(folder, {
                banned: FACADES[folder],
                message: `daemon/${folder}'s phase modules do not import its facade (${FACADES[folder].join(', ')}); it imports them.`,
              }),
            },
          },
        ]),
  ];
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
  {
    files: ['daemon/*.ts', 'daemon/cli/**/*.ts', 'daemon/replay/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { paths: PACKAGES.map((name) => ({ name, message: `Only ${OWNER[name]} imports ${name}.` })) }],
    },
  },
  ...Object.keys(LAYERS).flatMap(layerRules),
  // Sizes a newcomer can hold (docs/architecture.md, "Sizes"): a file past 600 lines or a function
  // past 80 (blank lines and comments not counted, so explaining why costs nothing) needs a reason,
  // written in a disable comment at the top of its file.
  {
    files: ['daemon/**/*.ts', 'trainer-hooks/ts/**/*.ts'],
    rules: {
      'max-lines': ['error', { max: 600 }],
      'max-lines-per-function': ['error', { max: 80, skipBlankLines: true, skipComments: true }],
    },
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
