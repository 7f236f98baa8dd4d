/**
 * The fused signal (docs/method.md, "The fused signal"): the attribution score's robust z-score
 * minus a penalty from the sample's per-clip motion checks (model-free features, each higher =
 * more suspicious, sent by the trainer; docs/wire.md).
 *
 *   z_i     = (f_i − median_i) / σ_i      per feature, over the run's samples that have features
 *   check   = max(0, max_i z_i − checkFloorZ)
 *   za      = (score − median) / σ        over the eligible samples, as the policy always did
 *   fused   = za − checkWeight · check     (a sample without features: fused = za)
 *
 * σ is 1.4826 · MAD with policy.ts's fallback. A feature whose values do not spread (fewer than
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
}

/** The statistics a run's signal is computed under (taken at a recompute). */
export interface SignalStats {
  /** Robust statistics of the eligible scores; undefined when they do not spread. */
  readonly attribution: RobustStats | undefined;
  /** Per feature, robust statistics over the samples with features; empty for a run without features. */
  readonly checks: ReadonlyArray<RobustStats | undefined>;
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

/** check = max(0, max_i z_i − floorZ), z_i = 0 for a feature without statistics. */
export function checkOf(row: ArrayLike<number>, checks: ReadonlyArray<RobustStats | undefined>, floorZ: number): number {
  let max = -Infinity;
  for (let i = 0; i < checks.length; i++) {
    const st = checks[i];
    const z = st === undefined ? 0 : ((row[i] as number) - st.median) / st.sigma;
    if (z > max) max = z;
  }
  if (checks.length === 0) max = 0;
  return Math.max(0, max - floorZ);
}

/** Whether the statistics tell samples apart at all under `signal` (else every weight is 1). */
export function spreads(st: SignalStats, signal: Signal): boolean {
  if (st.attribution !== undefined) return true;
  return signal === 'fused' && st.checks.some((c) => c !== undefined);
}

/** The sample's check and fused z under `st` (`row`: its features, undefined: none). */
export function sampleSignal(score: number, row: ArrayLike<number> | undefined, st: SignalStats, options: FusedOptions): SampleSignal {
  const check = row === undefined || st.checks.length === 0 ? undefined : checkOf(row, st.checks, options.checkFloorZ ?? 0);
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
