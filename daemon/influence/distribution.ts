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

/** Samples {@link DistributionCache.refresh} reads between yields to the event loop. */
const REFRESH_SLICE = 16384;

/** Accumulates one pass over a run's samples; {@link finish} makes the distribution. */
class DistributionBuilder {
  private scores: Float64Array;
  private n = 0;
  private readonly weightCumulative = new Array<number>(WEIGHT_BUCKETS.length).fill(0);
  private weightSum = 0;
  private downweighted = 0;
  private quarantined = 0;
  private scoreSum = 0;

  constructor(sizeHint: number) {
    this.scores = new Float64Array(Math.max(16, sizeHint));
  }

  add(score: number, w: number): void {
    if (this.n === this.scores.length) {
      const grown = new Float64Array(2 * this.n);
      grown.set(this.scores);
      this.scores = grown;
    }
    this.scores[this.n++] = score;
    this.scoreSum += score;
    this.weightSum += w;
    if (w < 1) this.downweighted++;
    if (w === 0) this.quarantined++;
    // First bucket whose bound holds w; cumulated in finish().
    let b = 0;
    while (b < WEIGHT_BUCKETS.length && w > (WEIGHT_BUCKETS[b] as number)) b++;
    if (b < this.weightCumulative.length) this.weightCumulative[b] = (this.weightCumulative[b] as number) + 1;
  }

  finish(revision: number): RunDistribution {
    const n = this.n;
    const scores = this.scores.subarray(0, n);
    const weightCumulative = this.weightCumulative;
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
      revision,
      samples: n,
      downweighted: this.downweighted,
      quarantined: this.quarantined,
      weightCumulative,
      weightSum: this.weightSum,
      // Last: selection reorders `scores`, which the bins above no longer need.
      scoreQuantiles: quantiles(scores, SCORE_QUANTILES),
      scoreSum: this.scoreSum,
      scoreBins,
      scoreMin,
      scoreMax,
    };
  }
}

/** Computes a run's distributions: one pass over the samples, then O(n) per score quantile. */
export function computeDistribution(run: RunState): RunDistribution {
  const b = new DistributionBuilder(run.samples.size);
  for (const s of run.samples.values()) b.add(run.score(s), s.weight);
  return b.finish(run.revision);
}

/** Samples with weight below 1 and at 0: one pass over the weights only (no scores, no order statistics). */
export function weightCounts(run: RunState): { downweighted: number; quarantined: number } {
  let downweighted = 0;
  let quarantined = 0;
  for (const s of run.samples.values()) {
    if (s.weight < 1) downweighted++;
    if (s.weight === 0) quarantined++;
  }
  return { downweighted, quarantined };
}

/**
 * Caches a distribution per run. {@link refresh} brings it up to date in slices that yield to the
 * event loop (a pass over a large run would otherwise hold the Acks behind it); its result is the
 * run as read during the pass, and {@link last} keeps serving it after ingest moves the run on.
 */
export class DistributionCache {
  private readonly cache = new WeakMap<RunState, RunDistribution>();
  private readonly pending = new WeakMap<RunState, Promise<RunDistribution>>();

  /** The last distribution computed for the run, whatever its revision; computed now if none. */
  last(run: RunState): RunDistribution {
    let d = this.cache.get(run);
    if (d === undefined) this.cache.set(run, (d = computeDistribution(run)));
    return d;
  }

  /** Brings the run's distribution up to date without holding the event loop for the whole pass. */
  refresh(run: RunState): Promise<RunDistribution> {
    const hit = this.cache.get(run);
    if (hit?.revision === run.revision) return Promise.resolve(hit);
    let p = this.pending.get(run);
    if (p === undefined) {
      p = this.computeSliced(run).finally(() => this.pending.delete(run));
      this.pending.set(run, p);
    }
    return p;
  }

  private async computeSliced(run: RunState): Promise<RunDistribution> {
    const revision = run.revision;
    const b = new DistributionBuilder(run.samples.size);
    let i = 0;
    for (const s of run.samples.values()) {
      b.add(run.score(s), s.weight);
      if (++i % REFRESH_SLICE === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    const d = b.finish(revision);
    this.cache.set(run, d);
    return d;
  }
}
