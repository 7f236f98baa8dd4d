/**
 * Distributions over a run's current per-sample state (weights, scores), computed in one pass and
 * cached per run revision, so a scrape or a live-feed tick while nothing changed costs nothing.
 * Shared by the Prometheus collectors and the live feed.
 */
import { selectInPlace } from '../shared/stats.js';
import type { RunState } from '../store/index.js';

/** Upper bounds of the weight histogram buckets (weights live in [0, 1]). */
export const WEIGHT_BUCKETS: readonly number[] = [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.99, 1];

/** Quantiles reported for the score distribution. */
export const SCORE_QUANTILES: readonly number[] = [0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99];

/** Bins of the score histogram the live page draws. */
export const SCORE_BINS = 24;

/** A run's distributions at one revision. */
export interface RunDistribution {
  readonly revision: number;
  readonly samples: number;
  /** Samples with weight < 1. */
  readonly downweighted: number;
  /** Samples with weight 0. */
  readonly quarantined: number;
  /** Cumulative counts per {@link WEIGHT_BUCKETS} bound (Prometheus `le` semantics). */
  readonly weightCumulative: readonly number[];
  readonly weightSum: number;
  /** Score value at each of {@link SCORE_QUANTILES}; NaN with no samples. */
  readonly scoreQuantiles: readonly number[];
  readonly scoreSum: number;
  /** Equal-width score bins from `scoreMin` to `scoreMax`, {@link SCORE_BINS} of them. */
  readonly scoreBins: readonly number[];
  readonly scoreMin: number;
  readonly scoreMax: number;
}

/**
 * Quantiles of `values` with linear interpolation between order statistics (numpy's default),
 * the same numbers as from the sorted array, in O(n · quantiles) instead of a sort: each order
 * statistic is selected in the part of the array right of the previous one. Reorders `values`.
 */
function quantiles(values: Float64Array, qs: readonly number[]): number[] {
  const n = values.length;
  if (n === 0) return qs.map(() => NaN);
  const positions = [...new Set(qs.flatMap((q) => [Math.floor(q * (n - 1)), Math.ceil(q * (n - 1))]))].sort((a, b) => a - b);
  const at = new Map<number, number>();
  let base = 0;
  for (const p of positions) {
    // Everything left of `base` is ≤ values[base] ≤ everything right of it: position p of the
    // whole array is position p − base of the part from `base` on.
    const part = values.subarray(base);
    selectInPlace(part, p - base);
    at.set(p, part[p - base] as number);
    base = p;
  }
  return qs.map((q) => {
    const pos = q * (n - 1);
    const lo = Math.floor(pos);
    const a = at.get(lo) as number;
    const b = at.get(Math.ceil(pos)) as number;
    return a + (b - a) * (pos - lo);
  });
}

/** Computes a run's distributions: one pass over the samples, then O(n) per score quantile. */
export function computeDistribution(run: RunState): RunDistribution {
  const n = run.samples.size;
  const scores = new Float64Array(n);
  const weightCumulative = new Array<number>(WEIGHT_BUCKETS.length).fill(0);
  let weightSum = 0;
  let downweighted = 0;
  let quarantined = 0;
  let scoreSum = 0;
  let i = 0;
  for (const s of run.samples.values()) {
    const score = run.score(s);
    scores[i++] = score;
    scoreSum += score;
    const w = s.weight;
    weightSum += w;
    if (w < 1) downweighted++;
    if (w === 0) quarantined++;
    // First bucket whose bound holds w; cumulated below.
    let b = 0;
    while (b < WEIGHT_BUCKETS.length && w > (WEIGHT_BUCKETS[b] as number)) b++;
    if (b < weightCumulative.length) weightCumulative[b] = (weightCumulative[b] as number) + 1;
  }
  for (let b = 1; b < weightCumulative.length; b++)
    weightCumulative[b] = (weightCumulative[b] as number) + (weightCumulative[b - 1] as number);
  let scoreMin = n > 0 ? Infinity : 0;
  let scoreMax = n > 0 ? -Infinity : 0;
  for (const v of scores) {
    if (v < scoreMin) scoreMin = v;
    if (v > scoreMax) scoreMax = v;
  }
  const scoreBins = new Array<number>(SCORE_BINS).fill(0);
  const width = (scoreMax - scoreMin) / SCORE_BINS;
  for (const v of scores) {
    const bin = width > 0 ? Math.min(SCORE_BINS - 1, Math.floor((v - scoreMin) / width)) : 0;
    scoreBins[bin] = (scoreBins[bin] as number) + 1;
  }
  return {
    revision: run.revision,
    samples: n,
    downweighted,
    quarantined,
    weightCumulative,
    weightSum,
    // Last: selection reorders `scores`, which the bins above no longer need.
    scoreQuantiles: quantiles(scores, SCORE_QUANTILES),
    scoreSum,
    scoreBins,
    scoreMin,
    scoreMax,
  };
}

/** Caches {@link computeDistribution} per run, keyed on the run's revision. */
export class DistributionCache {
  private readonly cache = new WeakMap<RunState, RunDistribution>();

  get(run: RunState): RunDistribution {
    const hit = this.cache.get(run);
    if (hit?.revision === run.revision) return hit;
    const fresh = computeDistribution(run);
    this.cache.set(run, fresh);
    return fresh;
  }
}
