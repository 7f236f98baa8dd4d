/**
 * What memory holds of a run's samples beyond their written records (docs/store.md, "Ingest"):
 * the dirty samples (changed since their record was written), their pending G(z) changes and
 * score-history points, and the records handed to a flush write not known durable yet. Apply
 * fills it, the flusher drains it, and reads add it to the written records.
 */
import { copyEmbedding, embeddingOffset, recordLayout } from './codec.js';
import { DeltaPool } from './delta-pool.js';
import { HISTORY_TRAILER_BYTES, HistoryPending, readHistoryTrailer, type HistoryPoint } from './history.js';
import type { RunState, SampleState } from './run-state.js';
import type { RunSegments } from './segments.js';

export class PendingSamples {
  /** Per run: samples changed since their record was written, and their pending G(z) changes. */
  readonly dirty = new Map<RunState, Set<SampleState>>();
  readonly deltas = new Map<RunState, DeltaPool>();
  /** Per dirty sample: its score-history points not in its record yet (history.ts). */
  readonly history = new HistoryPending();
  /** Dirty samples, all runs together. */
  count = 0;
  /**
   * Records handed to a flush write not known durable yet (or whose write failed): for these
   * samples the record here, not the one in their segment, is the base their delta adds to.
   */
  readonly inflight = new Map<SampleState, Uint8Array>();
  private readonly segmentsOf: (run: RunState) => RunSegments;

  constructor(segmentsOf: (run: RunState) => RunSegments) {
    this.segmentsOf = segmentsOf;
  }

  touch(dirty: Set<SampleState>, sample: SampleState, lsn: number): void {
    sample.lsn = lsn;
    if (dirty.has(sample)) return;
    dirty.add(sample);
    this.count++;
  }

  setOf(run: RunState): Set<SampleState> {
    let set = this.dirty.get(run);
    if (set === undefined) this.dirty.set(run, (set = new Set()));
    return set;
  }

  poolOf(run: RunState): DeltaPool {
    let pool = this.deltas.get(run);
    if (pool === undefined) this.deltas.set(run, (pool = new DeltaPool(run.info.dim)));
    return pool;
  }

  /** Forgets a deleted run's pending state. */
  dropRun(run: RunState): void {
    this.count -= this.dirty.get(run)?.size ?? 0;
    this.dirty.delete(run);
    this.deltas.delete(run);
    for (const sample of run.samples.values()) this.inflight.delete(sample);
  }

  /** Copies the G(z) of the sample's written record (in flight or in its segment) into `out`; zeros if none. */
  baseEmbedding(run: RunState, sample: SampleState, out: Float32Array, outBytes?: Uint8Array): void {
    const inflight = this.inflight.get(sample);
    if (inflight !== undefined) copyEmbedding(inflight, out);
    else if (sample.at < 0) out.fill(0);
    else {
      // G(z) alone, read straight into `out`: the record's length gives its number of sums.
      const k = run.info.dim;
      const { nq } = recordLayout(sample.atBytes, k);
      const n = Math.min(k, out.length);
      const into = outBytes !== undefined && outBytes.length === 4 * n ? outBytes : new Uint8Array(out.buffer, out.byteOffset, 4 * n);
      this.segmentsOf(run).read(sample.at, embeddingOffset(nq), into);
      if (n < out.length) out.fill(0, n);
    }
  }

  /**
   * Copies the history trailer of the sample's written record (in flight or in its segment) into
   * `out`; leaves `out` (an empty trailer) as it is where the record has none.
   */
  copyWrittenHistory(run: RunState, sample: SampleState, out: Uint8Array): void {
    const k = run.info.dim;
    const inflight = this.inflight.get(sample);
    if (inflight !== undefined) {
      const { historyAt } = recordLayout(inflight.length, k);
      if (historyAt >= 0) out.set(inflight.subarray(historyAt, historyAt + HISTORY_TRAILER_BYTES));
      return;
    }
    if (sample.at < 0) return;
    const { historyAt } = recordLayout(sample.atBytes, k);
    if (historyAt >= 0) this.segmentsOf(run).read(sample.at, historyAt, out);
  }

  /** The score-history points of the sample's written record (in flight or in its segment). */
  writtenHistory(run: RunState, sample: SampleState): HistoryPoint[] {
    const k = run.info.dim;
    const inflight = this.inflight.get(sample);
    if (inflight !== undefined) {
      const { historyAt } = recordLayout(inflight.length, k);
      return historyAt < 0 ? [] : readHistoryTrailer(inflight, historyAt);
    }
    if (sample.at < 0) return [];
    const { historyAt } = recordLayout(sample.atBytes, k);
    if (historyAt < 0) return [];
    const trailer = new Uint8Array(HISTORY_TRAILER_BYTES);
    this.segmentsOf(run).read(sample.at, historyAt, trailer);
    return readHistoryTrailer(trailer);
  }

  /** Current G(z) of a sample: its written record plus its pending delta. */
  currentEmbedding(run: RunState, sample: SampleState, out: Float32Array): void {
    this.baseEmbedding(run, sample, out);
    if (sample.delta >= 0) this.poolOf(run).addTo(sample.delta, out);
  }
}
