/**
 * The fused signal (docs/method.md, "The fused signal"): the attribution score's robust z-score
 * minus a penalty from the sample's per-clip motion checks (model-free features, each higher =
 * more suspicious, sent by the trainer; docs/wire.md).
 *
 *   z_i     = (f_i − median_i) / σ_i      per feature, over the run's samples that have features
 *   check   = max(0, max_{i ∉ S} z_i − checkFloorZ) + Σ_{i ∈ S} share_i · max(0, z_i − checkFloorZ)
 *   za      = (score − median) / σ        over the eligible samples, as the policy always did
 *   fused   = za − checkWeight · check     (a sample without features: fused = za)
 *
 * S are the features named in `checkShares` (added to the check with their own share instead of
 * entering its largest z; with none named, the check is the largest z alone). σ is 1.4826 · MAD with policy.ts's fallback. A feature whose values do not spread (fewer than
 * two samples, or all equal) has z_i = 0; a run whose scores do not spread has za = 0, so that
 * the checks still weigh before attribution does. Pure functions: the weighting service and the
 * read-side views both use them.
 */
import { robustStats, weightFor, weightOfZ, type RobustStats, type WeightPolicyOptions } from './policy.js';

export type Signal = 'fused' | 'attribution';

export interface FusedOptions {
  /** `fused` (default): weights from the fused z; `attribution`: from the score's z alone. */
  readonly signal?: Signal;
  /** How much one unit of `check` lowers the fused z (default 4, the configuration's: docs/results.md). */
  readonly checkWeight?: number;
  /** The z a feature must exceed before it counts as suspicious (default 0). */
  readonly checkFloorZ?: number;
  /**
   * Features, by name, added to the check with their own share (`share · max(0, z − checkFloorZ)`)
   * instead of entering its largest z (default none here; the configuration's `{ reversal_gap: 0.25 }`:
   * docs/results.md).
   */
  readonly checkShares?: Readonly<Record<string, number>>;
}

/** The statistics a run's signal is computed under (taken at a recompute). */
export interface SignalStats {
  /** Robust statistics of the eligible scores; undefined when they do not spread. */
  readonly attribution: RobustStats | undefined;
  /** Per feature, robust statistics over the samples with features; empty for a run without features. */
  readonly checks: ReadonlyArray<RobustStats | undefined>;
  /** Per feature, its share when `checkShares` names it (undefined: it enters the largest z); absent: none named. */
  readonly shares?: ReadonlyArray<number | undefined> | undefined;
}

/** One sample's signal: its check (undefined without features) and fused z (undefined when nothing spreads). */
export interface SampleSignal {
  readonly check: number | undefined;
  readonly fused: number | undefined;
}

/** Working arrays for {@link featureStat}, `n` long. */
export interface FeatureWork {
  readonly column: Float64Array;
  readonly all: Uint8Array;
  readonly order: Float64Array;
}

export function featureWork(n: number): FeatureWork {
  return { column: new Float64Array(n), all: new Uint8Array(n).fill(1), order: new Float64Array(n) };
}

/** Robust statistics of feature `i` over `rows` ([n × nf] row-major). */
export function featureStat(rows: Float32Array, n: number, nf: number, i: number, work: FeatureWork): RobustStats | undefined {
  const column = work.column.subarray(0, n);
  for (let r = 0; r < n; r++) column[r] = rows[r * nf + i] as number;
  return robustStats(column, work.all.subarray(0, n), work.order);
}

/** Per-feature robust statistics over `rows` ([n × nf] row-major). */
export function featureStats(rows: Float32Array, n: number, nf: number): Array<RobustStats | undefined> {
  const work = featureWork(n);
  return Array.from({ length: nf }, (_, i) => featureStat(rows, n, nf, i, work));
}

/** Per feature of a run (`names`, in its order), its share under `checkShares`; undefined when none is named. */
export function featureShares(names: readonly string[], options: FusedOptions): Array<number | undefined> | undefined {
  const shares = options.checkShares;
  if (shares === undefined || !names.some((n) => Object.prototype.hasOwnProperty.call(shares, n))) return undefined;
  return names.map((n) => (Object.prototype.hasOwnProperty.call(shares, n) ? shares[n] : undefined));
}

/**
 * check = max(0, max_{i ∉ S} z_i − floorZ) + Σ_{i ∈ S} share_i · max(0, z_i − floorZ), S the features
 * with a share; z_i = 0 for a feature without statistics, and the largest z is 0 over no features.
 */
export function checkOf(
  row: ArrayLike<number>,
  checks: ReadonlyArray<RobustStats | undefined>,
  floorZ: number,
  shares?: ReadonlyArray<number | undefined>,
): number {
  let max = -Infinity;
  let added = 0;
  for (let i = 0; i < checks.length; i++) {
    const st = checks[i];
    const z = st === undefined ? 0 : ((row[i] as number) - st.median) / st.sigma;
    const share = shares?.[i];
    if (share !== undefined) added += share * Math.max(0, z - floorZ);
    else if (z > max) max = z;
  }
  if (max === -Infinity) max = 0;
  return Math.max(0, max - floorZ) + added;
}

/** Whether the statistics tell samples apart at all under `signal` (else every weight is 1). */
export function spreads(st: SignalStats, signal: Signal): boolean {
  if (st.attribution !== undefined) return true;
  return signal === 'fused' && st.checks.some((c) => c !== undefined);
}

/** The sample's check and fused z under `st` (`row`: its features, undefined: none). */
export function sampleSignal(score: number, row: ArrayLike<number> | undefined, st: SignalStats, options: FusedOptions): SampleSignal {
  const check = row === undefined || st.checks.length === 0 ? undefined : checkOf(row, st.checks, options.checkFloorZ ?? 0, st.shares);
  if (!spreads(st, 'fused')) return { check, fused: undefined };
  const za = st.attribution === undefined ? 0 : (score - st.attribution.median) / st.attribution.sigma;
  return { check, fused: check === undefined ? za : za - (options.checkWeight ?? 4) * check };
}

/** The weight of an eligible sample under the configured signal. */
export function signalWeight(
  score: number,
  row: ArrayLike<number> | undefined,
  st: SignalStats,
  options: WeightPolicyOptions & FusedOptions,
): number {
  const attributionOnly = (options.signal ?? 'fused') === 'attribution';
  // The score's z alone (a sample without features, or the attribution signal): the policy's own
  // weight, without the fused bookkeeping (a recompute asks this of every sample).
  if (attributionOnly || row === undefined) {
    if (st.attribution !== undefined) return weightFor(score, st.attribution, options);
    if (attributionOnly) return 1;
  }
  const fused = sampleSignal(score, row, st, options).fused;
  return fused === undefined ? 1 : weightOfZ(fused, options);
}
