/**
 * The estimator's arithmetic on one committed log entry (docs/method.md): a batch adds to its
 * samples' seen, lastStep, per-query sums S_j and accumulated gradient sketch G(z); a weight
 * change sets their weights. It lives in the store, not in influence/, because recovery
 * (recovery.ts) replays the log through it and the store may not import influence/
 * (docs/architecture.md, "Modules and the direction of their imports").
 */
import type { QuerySetRecord, RunState, SampleState } from './run-state.js';
import type { PendingSamples } from './pending.js';

/** A committed batch's effect on its samples (docs/method.md). */
export interface BatchEffect {
  readonly sampleIds: readonly string[];
  readonly step: number;
  readonly lr: number;
  /** [n × k] float32, normalised per the run's score mode. */
  readonly sketches: Float32Array;
  readonly querySet: QuerySetRecord | undefined;
  readonly products: Float32Array | undefined;
  /**
   * Each id's sample as the caller already looked it up (undefined where it was not in the run
   * yet), so the batch costs one id lookup, not one per stage. Recovery leaves it out.
   */
  readonly samples?: ReadonlyArray<SampleState | undefined> | undefined;
}

/**
 * Applies a committed batch (logged as `lsn`) to its samples in memory: seen, lastStep,
 * S_j += lr · products and G(z) += lr · ĝ (into the sample's pending delta). Called once per
 * batch in log order, live after the commit and again by recovery, which skips samples whose
 * record already holds the entry.
 */
export function applyBatch(pending: PendingSamples, run: RunState, b: BatchEffect, lsn: number): void {
  const n = b.sampleIds.length;
  const qs = b.querySet;
  const m = qs?.ids.length ?? 0;
  const nq = run.queryIds.length;
  const pool = pending.poolOf(run);
  const dirty = pending.setOf(run);
  const lr = b.lr;
  const known = b.samples;
  pool.stage(b.sketches, n);
  // Query j adds to sums[columns[j]]; in the usual case (the run's queries, in order) that is
  // sums[j], and the loop without the indirection is faster (0.68 vs 0.83–1.15 µs a sample at
  // m = 64 in a micro-benchmark over 200,000 samples; the misses on the sums rows dominate both).
  const cols = qs?.columns;
  let identity = cols !== undefined;
  for (let j = 0; identity && j < m; j++) identity = (cols as Int32Array)[j] === j;
  for (let i = 0; i < n; i++) {
    const sample = known?.[i] ?? run.getOrCreateSample(b.sampleIds[i] as string);
    if (lsn <= sample.flushedLsn) continue;
    if (sample.nq < nq) run.growSums(sample, nq);
    sample.seen++;
    if (b.step > sample.lastStep || sample.seen === 1) sample.lastStep = b.step;
    if (cols !== undefined && b.products !== undefined) {
      const sums = run.sumsSlab(sample.sumsAt);
      const row = run.sumsOffset(sample.sumsAt);
      const products = b.products;
      const at = i * m;
      let total = 0;
      if (identity) {
        for (let j = 0; j < m; j++) {
          const c = lr * (products[at + j] as number);
          sums[row + j] = (sums[row + j] as number) + c;
          total += c;
        }
      } else {
        for (let j = 0; j < m; j++) {
          const col = row + (cols[j] as number);
          const c = lr * (products[at + j] as number);
          sums[col] = (sums[col] as number) + c;
          total += c;
        }
      }
      sample.total += total;
    }
    pending.history.add(sample, b.step, sample.weight);
    if (sample.delta < 0) sample.delta = pool.alloc();
    pool.add(sample.delta, i, lr);
    pending.touch(dirty, sample, lsn);
  }
}

/** Applies a committed weight change (logged as `lsn`) in memory. */
export function applyWeights(pending: PendingSamples, run: RunState, ids: readonly string[], weights: Float32Array, lsn: number): void {
  const dirty = pending.setOf(run);
  ids.forEach((id, i) => {
    const sample = run.samples.get(id);
    if (sample === undefined || lsn <= sample.flushedLsn) return;
    sample.weight = weights[i] as number;
    pending.touch(dirty, sample, lsn);
  });
}
