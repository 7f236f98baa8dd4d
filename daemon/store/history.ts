/**
 * Per-sample score history (docs/store.md, "Score history"): a bounded list of points, one per
 * batch that touched the sample, thinned evenly as it grows. A point holds the batch's step, the
 * sample's Σ_j S_j after it (its score is that over the run's query count, as `RunState.score`)
 * and the sample's weight when the batch was applied (weight pushes between batches add no point).
 *
 * The history is derived from the log like every other field of a sample: a batch's apply adds its
 * point, recovery's replay adds the same point again, and the sample's record (layout 4) carries
 * the points it holds in a trailer after G(z). In memory only the points not yet written are kept,
 * per dirty sample ({@link HistoryPending}): nothing per sample at rest.
 *
 * Thinning depends on the point's ordinal alone, so writing the points in one flush or several,
 * live or in replay, keeps the same ones: the `i`-th batch of a sample (i = seen − 1) is kept
 * while `i` is a multiple of `stride(seen)` or the last, where `stride(n)` is the smallest power
 * of two that leaves at most {@link HISTORY_GRID} multiples below `n`. A point dropped once is
 * never needed again (the stride only grows, and only the newest point is kept off the grid), so at
 * most {@link HISTORY_POINTS} points: the first, evenly spaced ones, and the newest.
 */
import type { SampleState } from './run-state.js';

/** Points a sample's history holds at most: the grid and the newest point. */
export const HISTORY_POINTS = 32;
/** Points on the evenly thinned grid. */
export const HISTORY_GRID = HISTORY_POINTS - 1;
/** Bytes of one point in a record: f64 step, f64 Σ_j S_j, f32 weight, u32 ordinal. */
const POINT_BYTES = 24;
/**
 * Bytes of the history trailer of a layout-4 record: u32 count, then {@link HISTORY_POINTS}
 * slots. 772 ≡ 4 (mod 8): a record's length then tells layout 4 from layout 3 (whose length past
 * the header and G(z) is a multiple of 8) without reading it.
 */
export const HISTORY_TRAILER_BYTES = 4 + POINT_BYTES * HISTORY_POINTS;

/** One point of a sample's history. */
export interface HistoryPoint {
  /** The sample's ordinal batch (seen − 1 after it). */
  readonly i: number;
  readonly step: number;
  /** Σ_j S_j after the batch. */
  readonly total: number;
  /** The sample's weight when the batch was applied (float32). */
  readonly weight: number;
}

/** The grid stride for a sample seen `n` times (a power of two). */
export function historyStride(n: number): number {
  let s = 1;
  while (Math.ceil(n / s) > HISTORY_GRID) s *= 2;
  return s;
}

/** Whether the point of ordinal `i` stays in the history of a sample seen `n` times. */
export function keepsPoint(i: number, n: number): boolean {
  return i === n - 1 || i % historyStride(n) === 0;
}

/** The points of `points` (in ordinal order) a sample seen `n` times keeps. */
export function thinHistory(points: readonly HistoryPoint[], n: number): HistoryPoint[] {
  const s = historyStride(n);
  return points.filter((p) => p.i === n - 1 || p.i % s === 0);
}

/** Writes `points` (at most {@link HISTORY_POINTS}) as a trailer at `at`; unused slots zeroed. */
export function writeHistoryTrailer(buf: Buffer, at: number, points: readonly HistoryPoint[]): void {
  if (points.length > HISTORY_POINTS) throw new Error(`${points.length} history points, at most ${HISTORY_POINTS}`);
  buf.writeUInt32LE(points.length, at);
  buf.fill(0, at + 4, at + HISTORY_TRAILER_BYTES);
  points.forEach((p, j) => {
    const o = at + 4 + j * POINT_BYTES;
    buf.writeDoubleLE(p.step, o);
    buf.writeDoubleLE(p.total, o + 8);
    buf.writeFloatLE(p.weight, o + 16);
    buf.writeUInt32LE(p.i, o + 20);
  });
}

/**
 * Adds `pending` (flat: ordinal, step, total, weight per point, oldest first, all newer than the
 * trailer's) to the trailer at `at` in `buf`, which holds the sample's written points, and thins
 * the whole for a sample seen `seen` times: in place, allocating nothing (the flusher does this for
 * every record it writes).
 */
export function appendToTrailer(buf: Buffer, at: number, pending: readonly number[] | undefined, seen: number): void {
  const count = buf.readUInt32LE(at);
  if (count > HISTORY_POINTS) throw new Error(`history trailer of ${count} points, at most ${HISTORY_POINTS}`);
  const s = historyStride(seen);
  const slot = (j: number): number => at + 4 + j * POINT_BYTES;
  let w = 0;
  for (let j = 0; j < count; j++) {
    const i = buf.readUInt32LE(slot(j) + 20);
    if (i !== seen - 1 && i % s !== 0) continue;
    if (w !== j) buf.copyWithin(slot(w), slot(j), slot(j) + POINT_BYTES);
    w++;
  }
  const n = pending?.length ?? 0;
  for (let r = 0; r < n; r += 4) {
    const i = (pending as readonly number[])[r] as number;
    if (i !== seen - 1 && i % s !== 0) continue;
    if (w === HISTORY_POINTS) throw new Error(`more than ${HISTORY_POINTS} history points kept at seen = ${seen}`);
    const o = slot(w++);
    buf.writeDoubleLE((pending as readonly number[])[r + 1] as number, o);
    buf.writeDoubleLE((pending as readonly number[])[r + 2] as number, o + 8);
    buf.writeFloatLE((pending as readonly number[])[r + 3] as number, o + 16);
    buf.writeUInt32LE(i, o + 20);
  }
  buf.writeUInt32LE(w, at);
  if (w < count) buf.fill(0, slot(w), slot(count));
}

/** The points of a trailer (its {@link HISTORY_TRAILER_BYTES} bytes at `at`). */
export function readHistoryTrailer(bytes: Uint8Array, at = 0): HistoryPoint[] {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = buf.readUInt32LE(at);
  if (count > HISTORY_POINTS) throw new Error(`history trailer of ${count} points, at most ${HISTORY_POINTS}`);
  const out: HistoryPoint[] = [];
  for (let j = 0; j < count; j++) {
    const o = at + 4 + j * POINT_BYTES;
    out.push({ i: buf.readUInt32LE(o + 20), step: buf.readDoubleLE(o), total: buf.readDoubleLE(o + 8), weight: buf.readFloatLE(o + 16) });
  }
  return out;
}

/**
 * The points of dirty samples not in their records yet, four numbers each (ordinal, step, total,
 * weight), thinned as they come so a sample touched often between flushes holds at most
 * {@link HISTORY_POINTS + 1}. Held on the sample itself (`historyPending`): a deleted run's samples
 * take theirs with them, and the apply adds a point without a lookup (a WeakMap keyed by the
 * sample cost a hash lookup per sample per batch, and its entries the garbage collector's
 * ephemeron work).
 */
export class HistoryPending {
  /** Adds the point of the batch just applied to `sample` (its seen already counted). */
  add(sample: SampleState, step: number, weight: number): void {
    let list = sample.historyPending;
    if (list === undefined) sample.historyPending = list = [];
    const n = sample.seen;
    list.push(n - 1, step, sample.total, Math.fround(weight));
    // Drop what the grid no longer holds once the list is longer than a history: the rule keeps
    // the same points whenever it is applied.
    if (list.length > 4 * (HISTORY_POINTS + 1)) {
      const s = historyStride(n);
      let w = 0;
      for (let r = 0; r < list.length; r += 4) {
        const i = list[r] as number;
        if (i !== n - 1 && i % s !== 0) continue;
        for (let c = 0; c < 4; c++) list[w + c] = list[r + c] as number;
        w += 4;
      }
      list.length = w;
    }
  }

  /** The sample's unwritten points, oldest first. */
  peek(sample: SampleState): HistoryPoint[] {
    const list = sample.historyPending;
    const out: HistoryPoint[] = [];
    if (list === undefined) return out;
    for (let r = 0; r < list.length; r += 4)
      out.push({ i: list[r] as number, step: list[r + 1] as number, total: list[r + 2] as number, weight: list[r + 3] as number });
    return out;
  }

  /**
   * The sample's unwritten points (flat, as {@link appendToTrailer} takes them), which the caller
   * now writes: they are forgotten here.
   */
  take(sample: SampleState): number[] | undefined {
    const list = sample.historyPending;
    sample.historyPending = undefined;
    return list;
  }
}

/** A sample's history: the points of its written record followed by its unwritten ones, thinned. */
export function mergeHistory(written: readonly HistoryPoint[], pending: readonly HistoryPoint[], seen: number): HistoryPoint[] {
  return thinHistory(written.concat(pending), seen);
}
