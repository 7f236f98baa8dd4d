/**
 * Filled stores for the scan and memory benchmarks: `n` samples of one run (k floats of G(z) each,
 * 8 per-query sums), written in-process through the public Store API in batches of 20,000 samples
 * per commit, and cached under bench/.cache/ (keyed by store format, n and k) for later runs.
 */
import { existsSync, mkdirSync, openSync, closeSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Store, STORE_FORMAT_VERSION, type RunState, type SampleState } from '../daemon/store/index.js';
import { CACHE_DIR } from './lib.js';

export const BENCH_RUN = 'bench';
const QUERIES = 8;
const PER_COMMIT = 20_000;

/**
 * Fast deterministic uniform values in [-1, 1) (xorshift32): G(z) contents and query vectors do
 * not matter for timing.
 */
export function filler(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2147483648 - 1;
  };
}

export function sampleId(i: number): string {
  return `clip-${String(i).padStart(7, '0')}`;
}

/** Path of a cached store holding `n` samples at dimension `k`, filling it first when missing. */
export async function filledStore(n: number, k: number, log: (s: string) => void = (s) => process.stderr.write(s)): Promise<string> {
  const dir = join(CACHE_DIR, `store-f${STORE_FORMAT_VERSION}-n${n}-k${k}`);
  if (existsSync(join(dir, 'complete.json'))) return dir;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const started = performance.now();
  const store = await Store.open({ dataDir: dir, mapSizeBytes: 64 * 1024 ** 3 });
  const run: RunState = await store.createRun({
    id: BENCH_RUN,
    dim: k,
    dtype: 'float16',
    projection: { kind: 'gaussian', seed: '1', dim: k, fingerprint: 'bench' },
    scoreMode: 'cosine',
    worldSize: 1,
    createdAtMs: Date.now(),
  });
  const rand = filler(n + k);
  const ids = Array.from({ length: QUERIES }, (_, j) => `q${j}`);
  const sketches = Float32Array.from({ length: QUERIES * k }, rand);
  await store.commit((tx) => {
    const qs = {
      version: 1,
      step: 0,
      ids,
      groups: [],
      columns: Int32Array.from(ids, (id) => run.queryColumn(id)),
      sketches,
      receivedAtMs: Date.now(),
    };
    run.addQuerySet(qs);
    tx.putQuerySet(BENCH_RUN, qs);
    tx.putRun(run);
  });
  for (let start = 0; start < n; start += PER_COMMIT) {
    const end = Math.min(n, start + PER_COMMIT);
    const entries: Array<{ sample: SampleState; g: Float32Array }> = [];
    for (let i = start; i < end; i++) {
      const s = run.getOrCreateSample(sampleId(i));
      s.seen = 1 + (i % 5);
      s.lastStep = i;
      run.setSums(
        s,
        Array.from({ length: QUERIES }, () => rand() * 1e-4),
      );
      const g = new Float32Array(k);
      for (let d = 0; d < k; d++) g[d] = rand() * 1e-4;
      entries.push({ sample: s, g });
    }
    await store.writeSamples(BENCH_RUN, entries);
    run.sketches += end - start;
    run.batches += Math.ceil((end - start) / 256);
    run.lastStep = end;
    await store.commit((tx) => tx.putRun(run));
    if ((end / PER_COMMIT) % 10 === 0 || end === n)
      log(`  filling ${dir}: ${end}/${n} (${((performance.now() - started) / 1000).toFixed(0)} s)\n`);
  }
  await store.close();
  writeFileSync(
    join(dir, 'complete.json'),
    `${JSON.stringify({ n, k, queries: QUERIES, fillSeconds: (performance.now() - started) / 1000 })}\n`,
  );
  return dir;
}

/**
 * Dumps the run's G matrix [n × k] float32 (store scan order) to a raw file next to the store, once,
 * for the NumPy and plain-JS baselines.
 */
export async function dumpedMatrix(storeDir: string, n: number, k: number): Promise<string> {
  const file = `${storeDir}.g.f32`;
  if (existsSync(`${file}.complete`)) return file;
  const store = await Store.open({ dataDir: storeDir, mapSizeBytes: 64 * 1024 ** 3 });
  const fd = openSync(file, 'w');
  let rows = 0;
  try {
    for (const chunk of store.embeddingChunks(BENCH_RUN, k, 8192)) {
      const bytes = new Uint8Array(chunk.rows.buffer, chunk.rows.byteOffset, chunk.ids.length * k * 4);
      let off = 0;
      while (off < bytes.length) off += writeSync(fd, bytes, off);
      rows += chunk.ids.length;
    }
  } finally {
    closeSync(fd);
    await store.close();
  }
  if (rows !== n) throw new Error(`dumped ${rows} rows, expected ${n}`);
  writeFileSync(`${file}.complete`, `${rows}\n`);
  return file;
}
