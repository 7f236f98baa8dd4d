/**
 * Brings a run's int8 mirror up to date with the G(z) changes ingest has not folded into records
 * yet, before a scan reads it, and scores the changes it leaves for later.
 *
 * A sample's mirror row holds its record's G(z), quantised, until the flusher folds the sample's
 * pending change into a new record and quantises that. In between, a scan that scores every dirty
 * sample's float32 change beside the mirror reads up to `maxDirtySamples` rows of 2 KiB each
 * (k = 512) on every scan, after a burst more bytes than the whole int8 mirror of 100k samples.
 * Here a dirty sample's row is requantised instead: its record's int8 row (kept beside the change
 * in the delta pool, its base) dequantised, plus the change, quantised again; later scans read it
 * as any row, and redo it only when the change moved (the pool counts each row's adds). So scans
 * during ingest pay for the samples the batches since the last scan touched, not for every dirty
 * one.
 *
 * Requantising a row costs about ten float32 dots of its change, so a scan requantises at most
 * `budget` rows whose mirror row is still their record's; the rest (after a burst, most of the
 * dirty set) are scored from their change in one kernel call (`DeltaPool.dots`) and added by the
 * scan, and the next scans requantise them `budget` at a time. A row requantised before whose
 * change moved since is always redone: its mirror row no longer is its record's.
 *
 * A requantised row stands for record + change within its own rounding (scale / 2 per element,
 * as any row) plus the base's (base scale / 2) and the float32 rounding of the sum;
 * `EmbeddingMirror.setApproximate` keeps that bound per row and the scan adds it, so the exact
 * rescoring still returns the exact ranking.
 */
import type { DeltaPool } from './delta-pool.js';
import type { RunState, SampleState } from './run-state.js';

/** Per pool row: the mirror slot it was last requantised into (-1: none) and the row's stamp then. */
interface Refreshed {
  slot: Int32Array;
  stamp: Uint32Array;
}

const refreshed = new WeakMap<DeltaPool, Refreshed>();

/** The pool's state, sized for its every row. */
function stateOf(pool: DeltaPool): Refreshed {
  let st = refreshed.get(pool);
  if (st === undefined || pool.rows > st.slot.length) {
    const size = Math.max(1024, 2 * (st?.slot.length ?? 0), pool.rows);
    const slot = new Int32Array(size).fill(-1);
    const stamp = new Uint32Array(size);
    if (st !== undefined) {
      slot.set(st.slot);
      stamp.set(st.stamp);
    }
    st = { slot, stamp };
    refreshed.set(pool, st);
  }
  return st;
}

/**
 * The changes a scan scores beside the mirror: each entry's mirror slot, `<change, q>` and
 * `Σ |change[d] · q[d]|`, both summed in float32, each within `roundoff · abs[i]` of exact.
 */
export interface PendingTail {
  readonly count: number;
  readonly slots: Int32Array;
  readonly dots: Float64Array;
  readonly abs: Float64Array;
  readonly roundoff: number;
  /** How many rows this call requantised. */
  readonly requantized: number;
  /**
   * Whether entry `i`'s mirror row may hold its change now (folded into its record by a flush,
   * or requantised by another scan): a scan that read the row after that would count the change
   * twice.
   */
  folded(i: number): boolean;
}

const none = (requantized: number): PendingTail => ({
  count: 0,
  slots: new Int32Array(0),
  dots: new Float64Array(0),
  abs: new Float64Array(0),
  roundoff: 0,
  requantized,
  folded: () => false,
});

/**
 * Requantises the mirror rows of `dirty` (the run's own set; `pool` its changes) whose change
 * moved since they were, up to `budget` rows still holding their record, and scores the other
 * changes against `q`.
 */
export function refreshMirror(
  run: RunState,
  pool: DeltaPool | undefined,
  dirty: ReadonlySet<SampleState> | undefined,
  q: Float32Array,
  budget: number,
): PendingTail {
  if (pool === undefined || dirty === undefined || dirty.size === 0) return none(0);
  const mirror = run.mirror;
  const st = stateOf(pool);
  const most = dirty.size;
  const samples: SampleState[] = [];
  const slots = new Int32Array(most);
  const flushedLsn = new Float64Array(most);
  const rows = new Int32Array(most);
  let n = 0;
  let done = 0;
  let fresh = 0;
  for (const s of dirty) {
    const row = s.delta;
    if (row < 0) continue;
    // A sample new since the last flush gets its (zero) row here, before the scan sizes the mirror.
    const slot = run.mirrorSlot(s);
    const err = mirror.err(slot);
    if (err === 0) {
      if (fresh >= budget) {
        // The row is its record's: the scan adds the change.
        slots[n] = slot;
        flushedLsn[n] = s.flushedLsn;
        rows[n] = row;
        samples.push(s);
        n++;
        continue;
      }
      // The row is its record's: it becomes the base (a flush since the last refresh reset it).
      pool.setBase(row, mirror.row(slot), mirror.scale(slot));
      fresh++;
    } else {
      if (st.slot[row] !== slot) {
        // Requantised from another change row, which this sample no longer has without a flush
        // having reset its mirror row: no base is known, so the row's bound becomes infinite and
        // every scan rescores it from the store until the flusher writes it.
        if (err !== Infinity) mirror.setApproximate(slot, mirror.scale(slot), mirror.row(slot), Infinity);
        continue;
      }
      if (st.stamp[row] === pool.stamp(row)) continue;
    }
    requantize(run, pool, row, slot);
    st.slot[row] = slot;
    st.stamp[row] = pool.stamp(row);
    done++;
  }
  if (n === 0) return none(done);
  const dots = new Float64Array(n);
  const abs = new Float64Array(n);
  pool.setQuery(q);
  pool.dots(rows, n, dots, abs);
  // A float32 dot of k terms, products rounded and summed in any order, is within γ_k · Σ|terms|
  // of the exact one, γ_k = k·u / (1 − k·u) with u = 2⁻²⁴; the float32 Σ|terms| is at least
  // (1 − γ_k) of the exact one, so γ_k / (1 − γ_k) of it bounds both.
  const ku = pool.dim * 2 ** -24;
  const gamma = ku / (1 - ku);
  return {
    count: n,
    slots,
    dots,
    abs,
    roundoff: gamma / (1 - gamma),
    requantized: done,
    // Building a record moves the change into the record and the mirror row, sets flushedLsn
    // and frees the change's row; a scan that began meanwhile may have requantised the row.
    folded: (i) => {
      const s = samples[i] as SampleState;
      return s.flushedLsn !== flushedLsn[i] || s.delta !== rows[i] || mirror.err(slots[i] as number) !== 0;
    },
  };
}

/** Base + change of `row` quantised into the mirror row `slot`, with its bound. */
function requantize(run: RunState, pool: DeltaPool, row: number, slot: number): void {
  const max = pool.requantize(row);
  const scale = max / 127;
  const base = pool.baseScale(row);
  // base scale / 2 for the base's rounding; 2⁻²⁰ · 127 · (scale + base scale) covers the float32
  // roundings of dequantising and adding (each within 2⁻²⁴ of a value at most 127 scales) and
  // of the float32 record + change the rescoring reads, with room to spare; 1e-30 keeps it positive.
  const err = base / 2 + 2 ** -20 * 127 * (scale + base) + 1e-30;
  run.mirror.setApproximate(slot, scale, scale === 0 ? undefined : pool.quantize(row, 1 / scale), err);
}
