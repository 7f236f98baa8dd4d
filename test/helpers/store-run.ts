/**
 * A real store in a temp dir with one run and an engine over it, for the store tests that drive
 * the engine in process (no gRPC), and a byte-exact snapshot of a run's samples.
 */
import { InfluenceEngine, type InfluenceEngineOptions } from '../../daemon/influence/index.js';
import { MatMulKernel } from '../../daemon/influence/matmul-kernel.js';
import { createLogger } from '../../daemon/shared/index.js';
import { Store, type RunState, type ScoreMode, type StoreOptions } from '../../daemon/store/index.js';
import type { RunSegments } from '../../daemon/store/segments.js';
import { tempDir } from './daemon.js';

export interface StoreRun {
  readonly dir: string;
  readonly store: Store;
  readonly run: RunState;
  readonly engine: InfluenceEngine;
}

/** A store in a new temp dir (registered in `dirs` for removal) with run `r` of dimension `dim`. */
export async function openStoreRun(
  prefix: string,
  dirs: Array<{ remove: () => void }>,
  dim: number,
  scoreMode: ScoreMode,
  options: Partial<StoreOptions> = {},
  engineOptions: Partial<InfluenceEngineOptions> = {},
): Promise<StoreRun> {
  const d = tempDir(prefix);
  dirs.push(d);
  const store = await Store.open({ dataDir: d.path, mapSizeBytes: 1 << 30, ...options });
  const engine = new InfluenceEngine(store, await MatMulKernel.create({ threads: 1 }), createLogger('warn'), {
    maxGroupBytes: 1 << 20,
    scanChunkSamples: 64,
    maxSamplesPerRun: 1e6,
    ...engineOptions,
  });
  const run = await store.createRun({
    id: 'r',
    dim,
    dtype: 'float32',
    projection: { kind: 'gaussian', seed: '1', dim, fingerprint: 'fp' },
    scoreMode,
    worldSize: 1,
    createdAtMs: 0,
  });
  return { dir: d.path, store, run, engine };
}

/**
 * Every sample's evidence, G(z) (`dim` floats) and score history, sorted by id, with the arrays as
 * exact bytes.
 */
export function sampleRows(store: Store, run: RunState, dim: number): unknown[] {
  const hex = (a: Float64Array | Float32Array): string => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex');
  return [...run.samples.values()]
    .sort((a, b) => (a.id < b.id ? -1 : 1))
    .map((s) => [
      s.id,
      s.seen,
      s.lastStep,
      s.weight,
      s.total,
      hex(run.sumsOf(s)),
      hex(store.embedding(run.info.id, s.id, dim)!),
      store.sampleHistory(run.info.id, s.id)!.map((p) => [p.i, p.step, p.total, p.weight]),
    ]);
}

/** Commits and applies a weight change the way the weighting service does, with the next weights version. */
export async function reweigh(store: Store, run: RunState, ids: readonly string[], weights: Float32Array): Promise<void> {
  const lsn = await store.commit((tx) => {
    tx.updateRun(run, { weightsVersion: tx.weightsVersion(run) + 1 });
    return tx.appendWeights(run.info.id, ids, weights);
  });
  store.applyWeights(run, ids, weights, lsn);
  run.weightsVersion++;
}

/** The run's record segments (a store internal the store tests watch). */
export function segmentsOf(store: Store, run: RunState): RunSegments {
  return (store as unknown as { segments: Map<RunState, RunSegments> }).segments.get(run)!;
}

/** The largest difference between a stored G(z) of run `r` (`dim` floats) and its expected value. */
export function worstEmbeddingError(store: Store, dim: number, expected: Map<string, Float64Array>): number {
  let worst = 0;
  for (const [id, g] of expected) {
    const got = store.embedding('r', id, dim)!;
    for (let d = 0; d < dim; d++) worst = Math.max(worst, Math.abs((got[d] as number) - (g[d] as number)));
  }
  return worst;
}
