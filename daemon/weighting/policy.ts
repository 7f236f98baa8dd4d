/**
 * The weight policy (DESIGN.md §6): robust z-score of `score` over eligible samples
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
 * Weights for `scores` (one per sample; `eligible[i]` false → weight 1), written into `out` when
 * given (at least `scores.length` long). `work`, when at least as long as `scores`, holds the order
 * statistics' working copy instead of a new array (a caller that recomputes often keeps one).
 * Depends only on its arguments.
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
  let count = 0;
  for (let i = 0; i < n; i++) if (eligible[i]) count++;
  if (count < 2) return weights;
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
  // All eligible scores equal: nobody stands out, everyone keeps weight 1.
  if (!(sigma > 0)) return weights;
  const quarantine = options.policy === 'quarantine';
  for (let i = 0; i < n; i++) {
    if (!eligible[i]) continue;
    const zi = ((scores[i] as number) - med) / sigma;
    // beta > 0: at zi >= 0, exp(beta · zi) >= 1 and the weight is 1 without computing it.
    let w = zi >= 0 ? 1 : Math.min(1, Math.max(options.wMin, Math.exp(options.beta * zi)));
    if (quarantine && zi < options.quarantineZ) w = 0;
    weights[i] = w;
  }
  return weights;
}
