/**
 * A query's scores over the G(z) changes ingest has not folded into records yet.
 *
 * A sample's int8 mirror row holds its record's G(z) (set when the record is built or loaded);
 * what ingest adds after that waits in the delta pool until the flusher folds it in. A scan
 * scores the mirror row and adds `<change, q>` from the pool for the samples with a pending
 * change: no record is read and no row is requantised for it, so a scan right after a burst
 * costs about what it costs at rest (the changed rows are scored in float64 by a SIMD kernel,
 * delta-kernel.wat) instead of re-reading every changed sample's record.
 */
import type { DeltaPool } from './delta-pool.js';
import type { RunState, SampleState } from './run-state.js';

export interface PendingScores {
  /** Entries: the sample's mirror slot, `<change, q>`, and `Σ |change[d] · q[d]|`. */
  readonly count: number;
  readonly slots: Int32Array;
  readonly dots: Float64Array;
  readonly abs: Float64Array;
  /**
   * Whether entry `i`'s change was folded into its record (and its mirror row) since: a scan
   * that read the row after that counted the change twice.
   */
  folded(i: number): boolean;
}

const NONE: PendingScores = {
  count: 0,
  slots: new Int32Array(0),
  dots: new Float64Array(0),
  abs: new Float64Array(0),
  folded: () => false,
};

/**
 * `q` against the pending change of each sample of `dirty` that has one (in `pool`). `dirty` is
 * the run's own set: a sample leaves it when its record is built, an import replaces it or its
 * run is deleted, and only ingest gives a sample a pending change.
 */
export function pendingScores(
  run: RunState,
  pool: DeltaPool | undefined,
  dirty: ReadonlySet<SampleState> | undefined,
  q: Float32Array,
): PendingScores {
  if (pool === undefined || dirty === undefined || dirty.size === 0) return NONE;
  const most = dirty.size;
  const samples: SampleState[] = [];
  const slots = new Int32Array(most);
  const dots = new Float64Array(most);
  const abs = new Float64Array(most);
  const flushedLsn = new Float64Array(most);
  const rows = new Int32Array(most);
  const out = new Float64Array(2);
  pool.setQuery(q);
  let n = 0;
  for (const s of dirty) {
    if (s.delta < 0) continue;
    // A sample new since the last flush gets its (zero) row here, before the scan sizes the mirror.
    slots[n] = run.mirrorSlot(s);
    pool.dot(s.delta, out);
    dots[n] = out[0] as number;
    abs[n] = out[1] as number;
    flushedLsn[n] = s.flushedLsn;
    rows[n] = s.delta;
    samples.push(s);
    n++;
  }
  if (n === 0) return NONE;
  return {
    count: n,
    slots,
    dots,
    abs,
    // Building a record moves the change into the record and the mirror row, sets flushedLsn
    // and frees the change's row.
    folded: (i) => {
      const s = samples[i] as SampleState;
      return s.flushedLsn !== flushedLsn[i] || s.delta !== rows[i];
    },
  };
}
