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

/** Weights for `scores` (one per sample; `eligible[i]` false → weight 1). Pure function. */
export function computeWeights(scores: Float64Array, eligible: Uint8Array, options: WeightPolicyOptions): Float32Array {
  const n = scores.length;
  const weights = new Float32Array(n).fill(1);
  let count = 0;
  for (let i = 0; i < n; i++) if (eligible[i]) count++;
  if (count < 2) return weights;
  const pool = new Float64Array(count);
  for (let i = 0, c = 0; i < n; i++) if (eligible[i]) pool[c++] = scores[i] as number;
  const med = median(pool);
  const dev = new Float64Array(count);
  let meanAd = 0;
  for (let i = 0, c = 0; i < n; i++) {
    if (!eligible[i]) continue;
    const d = Math.abs((scores[i] as number) - med);
    dev[c++] = d;
    meanAd += d;
  }
  meanAd /= count;
  let sigma = MAD_TO_SIGMA * median(dev);
  if (!(sigma > 0)) sigma = MEAN_AD_TO_SIGMA * meanAd;
  // All eligible scores equal: nobody stands out, everyone keeps weight 1.
  if (!(sigma > 0)) return weights;
  for (let i = 0; i < n; i++) {
    if (!eligible[i]) continue;
    const zi = ((scores[i] as number) - med) / sigma;
    let w = Math.min(1, Math.max(options.wMin, Math.exp(options.beta * zi)));
    if (options.policy === 'quarantine' && zi < options.quarantineZ) w = 0;
    weights[i] = w;
  }
  return weights;
}
