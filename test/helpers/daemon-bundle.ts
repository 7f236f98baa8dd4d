/**
 * The daemon as one prebuilt JavaScript file, for tests that start it many times (the crash
 * harness restarts it after every kill). `bin/motived.js` compiles every TypeScript module through
 * tsx's loader on each start, and Node then resolves and reads hundreds of package files: seconds
 * on a loaded machine. This bundles the same sources and their packages once with esbuild (tsx's
 * own compiler) into a temp directory and runs `main()` from there. Packages that load native
 * code or files beside their own (lmdb, onnxruntime-node, parquet-wasm) stay external, reached
 * through a link to the repository's node_modules; each of the daemon's modules gets its source
 * file's `import.meta.url`, so the files the daemon reads beside its sources (the proto, the
 * pages, the flow model) are the same ones.
 */
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build, type Plugin } from 'esbuild';

const REPO_ROOT = new URL('../../', import.meta.url).pathname;

/** Packages loaded from node_modules at run time: native addons and packages that read files beside their own. */
const EXTERNAL = ['lmdb', 'onnxruntime-node', 'parquet-wasm'];

/** Rewrites `import.meta.url` in each of the daemon's modules to the URL of its source file. */
const sourceUrls: Plugin = {
  name: 'source-import-meta-url',
  setup(b) {
    b.onLoad({ filter: /\.ts$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      return { contents: text.replaceAll('import.meta.url', JSON.stringify(pathToFileURL(args.path).href)), loader: 'ts' };
    });
  },
};

export interface DaemonBundle {
  /** The bundled `motived` entry: `node <entry>` behaves as `node bin/motived.js`. */
  readonly entry: string;
  readonly remove: () => void;
}

/** Bundles `daemon/main.ts` and a call of its `main` into a fresh temp directory. */
export async function buildDaemonBundle(): Promise<DaemonBundle> {
  const dir = mkdtempSync(join(tmpdir(), 'motive-daemon-bundle-'));
  symlinkSync(join(REPO_ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
  const entry = join(dir, 'motived.mjs');
  try {
    await build({
      stdin: {
        contents: "import { main } from './daemon/main.ts';\nawait main();\n",
        resolveDir: REPO_ROOT,
        sourcefile: 'motived.ts',
        loader: 'ts',
      },
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      external: EXTERNAL,
      // The packages bundled from CommonJS call require() for Node's modules and their own.
      banner: {
        js: "import { createRequire as motiveCreateRequire } from 'node:module';\nconst require = motiveCreateRequire(import.meta.url);",
      },
      outfile: entry,
      plugins: [sourceUrls],
      logLevel: 'error',
    });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return { entry, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
