/**
 * In-memory state of a run, materialised from the store at start-up and kept in step with it.
 * The store (LMDB and the record segments) is the truth; this is the index that serves scoring, weighting and reads.
 * It changes only after the store commit that makes the change durable.
 */

import { EmbeddingMirror } from './embedding-mirror.js';
import { SampleFeatures } from './features.js';

export type SketchDType = 'float32' | 'float16';
export type ScoreMode = 'cosine' | 'dot';

/** The projection a run's sketches were made with; a Hello must match it exactly. */
export interface ProjectionInfo {
  readonly kind: string;
  /** uint64 seed, kept as a decimal string. */
  readonly seed: string;
  readonly dim: number;
  readonly fingerprint: string;
}

export interface RunInfo {
  readonly id: string;
  readonly dim: number;
  readonly dtype: SketchDType;
  readonly projection: ProjectionInfo;
  readonly scoreMode: ScoreMode;
  readonly worldSize: number;
  readonly createdAtMs: number;
}

/** One version of the run's query set, kept as history (docs/wire.md). */
export interface QuerySetRecord {
  readonly version: number;
  readonly step: number;
  readonly ids: readonly string[];
  readonly groups: readonly string[];
  /** Run-wide query index of each row, i.e. the position in {@link RunState.queryIds}. */
  readonly columns: Int32Array;
  /**
   * [ids.length × dim] float32, already normalised per the run's score mode. Held in memory for
   * the run's {@link QUERY_SKETCHES_KEPT} newest sets only (by step, then version); undefined for
   * older ones, which `Store.querySketches` reads back when a late batch needs one.
   */
  sketches: Float32Array | undefined;
  readonly receivedAtMs: number;
}

/**
 * Query sets per run whose sketches stay in memory. The history itself (versions, steps, ids,
 * columns) is all kept; a run that refreshes its queries every few steps would otherwise hold
 * every version's m × k floats (an hour's soak at a refresh every 0.4 s: 6,835 versions, about
 * 110 MiB with the engine's transposed copies), though batches are scored against the newest.
 */
export const QUERY_SKETCHES_KEPT = 4;

/** Per-sample evidence (docs/method.md). */
export interface SampleState {
  readonly id: string;
  seen: number;
  lastStep: number;
  weight: number;
  /**
   * Where its S_j(z) lie in the run's sums slabs ({@link RunState.sumsOf}): `nq` float64s, indexed
   * like {@link RunState.queryIds}.
   */
  sumsAt: number;
  /** How many S_j(z) it holds: fewer than the run's queries when queries were added later (missing = 0). */
  nq: number;
  /** Σ_j S_j(z), kept with the sums (the same increments) so that score(z) is O(1). */
  total: number;
  /** Store bookkeeping: the last log entry applied to this sample (0: none). */
  lsn: number;
  /** Store bookkeeping: the last log entry folded into its written record (0: never written). */
  flushedLsn: number;
  /** Store bookkeeping: row of its pending G(z) change in the store's delta pool (-1: none). */
  delta: number;
  /** Store bookkeeping: location of its newest written record in the run's segments (-1: none). */
  at: number;
  /** Store bookkeeping: bytes of that record. */
  atBytes: number;
  /** Store bookkeeping: location of a weight entry newer than that record (-1: none). */
  weightAt: number;
  /** Store bookkeeping: its row in the run's int8 mirror (-1: none yet; {@link RunState.mirrorSlot}). */
  mirrorSlot: number;
  /**
   * Store bookkeeping: its score-history points not in its record yet (history.ts's
   * HistoryPending), undefined while it has none. A field, not a map keyed by the sample: the
   * apply adds a point per sample per batch.
   */
  historyPending: number[] | undefined;
}

export class RunState {
  readonly info: RunInfo;
  /** int8 copy of every sample's G(z) for fast scans (see embedding-mirror.ts). */
  readonly mirror: EmbeddingMirror;
  /** Every query id the run has seen, in first-seen order: the order of `querySums`. */
  readonly queryIds: string[] = [];
  readonly queryIndex = new Map<string, number>();
  /** Sorted by (step, version). */
  readonly querySets: QuerySetRecord[] = [];
  private readonly byVersion = new Map<number, QuerySetRecord>();
  private latest: QuerySetRecord | undefined;
  /** rank → last committed batch seq. */
  readonly commits = new Map<number, number>();
  readonly samples = new Map<string, SampleState>();
  /** Per-sample features (motion checks) and their names, when the run's trainers send any (features.ts). */
  readonly features = new SampleFeatures();
  weightsVersion = 0;
  batches = 0;
  sketches = 0;
  lastStep = 0;
  /** Bumped on every mutation; caches derived from samples key on it. */
  revision = 0;

  constructor(info: RunInfo) {
    this.info = info;
    this.mirror = new EmbeddingMirror(info.dim);
  }

  /** The query set in force at `step`: the largest `step' <= step`, ties by version (the last such in order). */
  querySetAt(step: number): QuerySetRecord | undefined {
    // Binary search: a run's history grows with every refresh, and every batch asks.
    let lo = 0;
    let hi = this.querySets.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.querySets[mid] as QuerySetRecord).step <= step) lo = mid + 1;
      else hi = mid;
    }
    return lo === 0 ? undefined : this.querySets[lo - 1];
  }

  hasQueryVersion(version: number): boolean {
    return this.byVersion.has(version);
  }

  /** The query set of `version`, if the run has it. */
  querySet(version: number): QuerySetRecord | undefined {
    return this.byVersion.get(version);
  }

  /**
   * Inserts keeping (step, version) order, registering new query ids; drops the sketches of sets
   * no longer among the newest {@link QUERY_SKETCHES_KEPT}.
   */
  addQuerySet(qs: QuerySetRecord): void {
    let at = this.querySets.length;
    while (at > 0) {
      const prev = this.querySets[at - 1] as QuerySetRecord;
      if (prev.step < qs.step || (prev.step === qs.step && prev.version < qs.version)) break;
      at--;
    }
    this.querySets.splice(at, 0, qs);
    this.byVersion.set(qs.version, qs);
    if (this.latest === undefined || qs.version > this.latest.version) this.latest = qs;
    // Only the last QUERY_SKETCHES_KEPT in order hold sketches: the one this pushes out of them
    // drops its own, as does a set inserted behind them.
    const keepFrom = this.querySets.length - QUERY_SKETCHES_KEPT;
    if (keepFrom > 0) (this.querySets[keepFrom - 1] as QuerySetRecord).sketches = undefined;
    if (at < keepFrom) qs.sketches = undefined;
    this.revision++;
  }

  /** Index of a query id, registering it when new. */
  queryColumn(id: string): number {
    let idx = this.queryIndex.get(id);
    if (idx === undefined) {
      idx = this.queryIds.length;
      this.queryIds.push(id);
      this.queryIndex.set(id, idx);
    }
    return idx;
  }

  /** The newest query set by version. */
  latestQuerySet(): QuerySetRecord | undefined {
    return this.latest;
  }

  /** score(z) = mean_j S_j(z) over the run's query ids (0 before any query set). */
  score(sample: SampleState): number {
    const m = this.queryIds.length;
    return m === 0 ? 0 : sample.total / m;
  }

  getOrCreateSample(id: string): SampleState {
    let s = this.samples.get(id);
    if (s === undefined) {
      const nq = this.queryIds.length;
      s = {
        id,
        seen: 0,
        lastStep: 0,
        weight: 1,
        sumsAt: this.sumsRow(nq),
        nq,
        total: 0,
        lsn: 0,
        flushedLsn: 0,
        delta: -1,
        at: -1,
        atBytes: 0,
        weightAt: -1,
        mirrorSlot: -1,
        historyPending: undefined,
      };
      this.samples.set(id, s);
    }
    return s;
  }

  /**
   * Puts `sample` in the run's index, in place of `known` (the sample of that id held now, if
   * any) whose mirror row it takes over: one row per sample, whichever object stands for it.
   */
  putSample(sample: SampleState, known = this.samples.get(sample.id)): void {
    if (known !== undefined && known !== sample) sample.mirrorSlot = known.mirrorSlot;
    this.samples.set(sample.id, sample);
  }

  /** The sample's row in the mirror, assigned on first use. */
  mirrorSlot(sample: SampleState): number {
    if (sample.mirrorSlot < 0) sample.mirrorSlot = this.mirror.add(sample.id);
    return sample.mirrorSlot;
  }

  /**
   * Every sample's S_j(z), in slabs of {@link SUMS_SLAB_LENGTH} float64s: a sample's `nq` sums
   * start at {@link RunState.sumsOffset} of {@link RunState.sumsSlab} (its `sumsAt`). Rows in shared
   * slabs rather than a typed array per sample: at a million samples those views alone were about
   * 100 MiB of heap, and a million objects for every full collection to mark.
   */
  readonly sumsSlabs: Float64Array[] = [];
  private sumsUsed = SUMS_SLAB_LENGTH;

  /** A zeroed row of `nq` sums; returns its `sumsAt`. A row never spans two slabs. */
  sumsRow(nq: number): number {
    if (nq > SUMS_SLAB_LENGTH) {
      // A row longer than a slab gets a slab of its own.
      this.sumsSlabs.push(new Float64Array(nq));
      this.sumsUsed = SUMS_SLAB_LENGTH;
      return (this.sumsSlabs.length - 1) * SUMS_SLAB_LENGTH;
    }
    if (this.sumsUsed + nq > SUMS_SLAB_LENGTH) {
      this.sumsSlabs.push(new Float64Array(SUMS_SLAB_LENGTH));
      this.sumsUsed = 0;
    }
    const at = (this.sumsSlabs.length - 1) * SUMS_SLAB_LENGTH + this.sumsUsed;
    this.sumsUsed += nq;
    return at;
  }

  /** The slab holding the sums row at `sumsAt`; the row starts at {@link RunState.sumsOffset} in it. */
  sumsSlab(sumsAt: number): Float64Array {
    return this.sumsSlabs[sumsAt >>> SUMS_SLAB_BITS] as Float64Array;
  }

  /** Where the sums row at `sumsAt` starts in its {@link RunState.sumsSlab}. */
  sumsOffset(sumsAt: number): number {
    return sumsAt & SUMS_SLAB_MASK;
  }

  /** The sample's sums, as a view into its slab (a new object per call: not for per-sample loops). */
  sumsOf(sample: SampleState): Float64Array {
    if (sample.nq === 0) return new Float64Array(0);
    const from = this.sumsOffset(sample.sumsAt);
    return this.sumsSlab(sample.sumsAt).subarray(from, from + sample.nq);
  }

  /** S_j(z) of the sample, 0 where it holds none. */
  sumAt(sample: SampleState, j: number): number {
    if (j >= sample.nq) return 0;
    return this.sumsSlab(sample.sumsAt)[this.sumsOffset(sample.sumsAt) + j] as number;
  }

  /** Gives the sample room for `nq` sums (missing ones 0), moving them to a longer row if needed. */
  growSums(sample: SampleState, nq: number): void {
    if (sample.nq >= nq) return;
    const at = this.sumsRow(nq);
    if (sample.nq > 0) this.sumsSlab(at).set(this.sumsOf(sample), this.sumsOffset(at));
    sample.sumsAt = at;
    sample.nq = nq;
  }

  /** Sets the sample's sums to `values` (its `nq` becomes their count); `total` is left to the caller. */
  setSums(sample: SampleState, values: ArrayLike<number>): void {
    if (values.length !== sample.nq) {
      sample.sumsAt = this.sumsRow(values.length);
      sample.nq = values.length;
    }
    if (values.length > 0) this.sumsSlab(sample.sumsAt).set(values, this.sumsOffset(sample.sumsAt));
  }
}

/** log2 of the float64s per sums slab (1 MiB slabs). */
const SUMS_SLAB_BITS = 17;
export const SUMS_SLAB_LENGTH = 1 << SUMS_SLAB_BITS;
const SUMS_SLAB_MASK = SUMS_SLAB_LENGTH - 1;
