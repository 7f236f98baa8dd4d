/**
 * The weight policy (docs/method.md): robust z-score of `score` over eligible samples
 * (seen >= minSeen), `w = clamp(exp(beta * z), wMin, 1)`, and under `quarantine` w = 0 where
 * z < quarantineZ. Samples with too little evidence keep weight 1.
 */
import { median } from '../shared/index.js';

export interface WeightPolicyOptions {
  readonly policy: 'observe' | 'downweight' | 'quarantine';
  readonly minSeen: number;
  readonly beta: number;
  readonly wMin: number;
  readonly quarantineZ: number;
}

/** 1.4826 · MAD estimates the standard deviation of normal data. */
const MAD_TO_SIGMA = 1.4826;
/** sqrt(pi/2) · mean absolute deviation estimates it too; used when MAD is 0. */
const MEAN_AD_TO_SIGMA = Math.sqrt(Math.PI / 2);

/**
 * The robust location and scale of the eligible scores: the median, and 1.4826 · MAD (or the mean
 * absolute deviation's estimate where MAD is 0).
 */
export interface RobustStats {
  readonly median: number;
  readonly sigma: number;
}

/**
 * The robust statistics of the eligible `scores`; undefined when fewer than two are eligible or
 * all of them are equal (nobody stands out). `work`, when at least as long as the eligible count,
 * holds the order statistics' working copy instead of a new array.
 */
export function robustStats(scores: Float64Array, eligible: Uint8Array, work?: Float64Array): RobustStats | undefined {
  const n = scores.length;
  let count = 0;
  for (let i = 0; i < n; i++) if (eligible[i]) count++;
  if (count < 2) return undefined;
  // One work array serves both order statistics: the scores, then their absolute deviations.
  const pool = work !== undefined && work.length >= count ? work.subarray(0, count) : new Float64Array(count);
  for (let i = 0, c = 0; i < n; i++) if (eligible[i]) pool[c++] = scores[i] as number;
  const med = median(pool);
  let meanAd = 0;
  for (let i = 0, c = 0; i < n; i++) {
    if (!eligible[i]) continue;
    const d = Math.abs((scores[i] as number) - med);
    pool[c++] = d;
    meanAd += d;
  }
  meanAd /= count;
  let sigma = MAD_TO_SIGMA * median(pool);
  if (!(sigma > 0)) sigma = MEAN_AD_TO_SIGMA * meanAd;
  return sigma > 0 ? { median: med, sigma } : undefined;
}

/** The weight of one eligible sample whose score is `score`, under `stats`. */
export function weightFor(score: number, stats: RobustStats, options: WeightPolicyOptions): number {
  return weightOfZ((score - stats.median) / stats.sigma, options);
}

/** The weight of one eligible sample whose (robust z, or fused) signal is `z`. */
export function weightOfZ(z: number, options: WeightPolicyOptions): number {
  // beta > 0: at z >= 0, exp(beta · z) >= 1 and the weight is 1 without computing it.
  let w = z >= 0 ? 1 : Math.min(1, Math.max(options.wMin, Math.exp(options.beta * z)));
  if (options.policy === 'quarantine' && z < options.quarantineZ) w = 0;
  return w;
}

/**
 * Weights for `scores` (one per sample; `eligible[i]` false → weight 1), written into `out` when
 * given (at least `scores.length` long). `work` as for {@link robustStats}. Depends only on its
 * arguments.
 */
export function computeWeights(
  scores: Float64Array,
  eligible: Uint8Array,
  options: WeightPolicyOptions,
  out?: Float32Array,
  work?: Float64Array,
): Float32Array {
  const n = scores.length;
  const weights = out === undefined ? new Float32Array(n) : out.subarray(0, n);
  weights.fill(1);
  const st = robustStats(scores, eligible, work);
  if (st === undefined) return weights;
  for (let i = 0; i < n; i++) if (eligible[i]) weights[i] = weightFor(scores[i] as number, st, options);
  return weights;
}
