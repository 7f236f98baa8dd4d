/** Run distributions (weight buckets, score quantiles and bins) against plain float64 references. */
import { describe, expect, it } from 'vitest';
import {
  DistributionCache,
  SCORE_BINS,
  SCORE_QUANTILES,
  WEIGHT_BUCKETS,
  computeDistribution,
  weightCounts,
  type RunDistribution,
} from '../../../daemon/influence/index.js';
import { topSamples } from '../../../daemon/api/index.js';
import { RunState } from '../../../daemon/store/index.js';
import { rng } from '../../helpers/reference.js';
import { refSignalUnder, refStatsOf, type RefOptions, type RefSample } from '../../helpers/fused-reference.js';

function makeRun(n: number): { run: RunState; scores: number[]; weights: number[] } {
  const run = new RunState({
    id: 'r',
    dim: 4,
    dtype: 'float32',
    projection: { kind: 'gaussian', seed: '1', dim: 4, fingerprint: 'f' },
    scoreMode: 'cosine',
    worldSize: 1,
    createdAtMs: 0,
  });
  run.queryColumn('q0');
  run.queryColumn('q1');
  const r = rng(11);
  const scores: number[] = [];
  const weights: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = run.getOrCreateSample(`s${i}`);
    const sums = [r.normal(), r.normal()];
    run.setSums(s, sums);
    s.total = (sums[0] as number) + (sums[1] as number);
    s.seen = 1;
    s.weight = i % 7 === 0 ? 0 : i % 3 === 0 ? Math.fround(r.uniform()) : 1;
    scores.push(((sums[0] as number) + (sums[1] as number)) / 2);
    weights.push(s.weight);
  }
  return { run, scores, weights };
}

/** `d` against plain counts and numpy-style (linearly interpolated) quantiles of the inputs. */
function expectReference(d: RunDistribution, scores: number[], weights: number[]): void {
  expect(d.samples).toBe(scores.length);
  expect(d.downweighted).toBe(weights.filter((w) => w < 1).length);
  expect(d.quarantined).toBe(weights.filter((w) => w === 0).length);
  WEIGHT_BUCKETS.forEach((le, b) => expect(d.weightCumulative[b]).toBe(weights.filter((w) => w <= le).length));
  expect(d.weightSum).toBeCloseTo(
    weights.reduce((a, b) => a + b, 0),
    9,
  );
  const sorted = [...scores].sort((a, b) => a - b);
  SCORE_QUANTILES.forEach((q, i) => {
    const pos = q * (sorted.length - 1);
    const lo = sorted[Math.floor(pos)]!;
    const hi = sorted[Math.ceil(pos)]!;
    expect(d.scoreQuantiles[i]).toBeCloseTo(lo + (hi - lo) * (pos - Math.floor(pos)), 12);
  });
  expect(d.scoreBins.reduce((a, b) => a + b, 0)).toBe(scores.length);
  expect(d.scoreBins).toHaveLength(SCORE_BINS);
  expect(d.scoreMin).toBe(sorted[0]);
  expect(d.scoreMax).toBe(sorted.at(-1));
}

describe('computeDistribution', () => {
  it('matches plain counts and numpy-style quantiles', () => {
    const { run, scores, weights } = makeRun(1001);
    expectReference(computeDistribution(run), scores, weights);
  });

  it('refreshes in slices to the same numbers, yielding to the event loop on the way', async () => {
    const n = 40_000; // more than two slices
    const { run, scores, weights } = makeRun(n);
    const cache = new DistributionCache();
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    const d = await cache.refresh(run);
    clearInterval(timer);
    expect(ticks).toBeGreaterThan(0); // timers ran while it computed
    expectReference(d, scores, weights);
    expect(cache.last(run)).toBe(d);
    expect(await cache.refresh(run)).toBe(d); // same revision: cached
    // a change: last() keeps the old one until the next refresh
    run.revision++;
    expect(cache.last(run)).toBe(d);
    expect(await cache.refresh(run)).not.toBe(d);
  });

  it('counts the down-weighted and quarantined samples from the weights alone', () => {
    const { run, weights } = makeRun(1001);
    expect(weightCounts(run)).toEqual({
      downweighted: weights.filter((w) => w < 1).length,
      quarantined: weights.filter((w) => w === 0).length,
    });
  });

  it('picks the same top lists as a full sort', () => {
    const { run, scores } = makeRun(500);
    const ids = scores.map((s, i) => ({ id: `s${i}`, s }));
    const harmful = [...ids].sort((a, b) => a.s - b.s || (a.id < b.id ? -1 : 1)).slice(0, 10);
    const helpful = [...ids].sort((a, b) => b.s - a.s || (a.id < b.id ? -1 : 1)).slice(0, 10);
    expect(topSamples(run, 'harmful', 10).map((r) => r.id)).toEqual(harmful.map((r) => r.id));
    expect(topSamples(run, 'helpful', 10).map((r) => r.id)).toEqual(helpful.map((r) => r.id));
  });

  it('ranks top lists by the fused signal under given statistics, as a float64 reference does', () => {
    const { run, scores } = makeRun(400);
    run.features.names = ['shake', 'still'];
    const r = rng(5);
    const samples: RefSample[] = scores.map((score, i) => {
      // A third of the samples carry no features (a rank that sends none); the rest float32 rows.
      if (i % 3 === 0) return { score, seen: 1 };
      const row = [Math.fround(r.normal() * (i % 11 === 0 ? 4 : 1)), Math.fround(r.uniform())];
      run.features.set(`s${i}`, row);
      return { score, seen: 1, features: row };
    });
    const o: RefOptions = {
      policy: 'downweight',
      minSeen: 1,
      beta: 0.5,
      wMin: 0.05,
      quarantineZ: -3,
      signal: 'fused',
      checkWeight: 2,
      checkFloorZ: 0,
    };
    const st = refStatsOf(samples, o);
    const want = samples.map((s, i) => ({ id: `s${i}`, fused: refSignalUnder(st, s, o).fused!, score: s.score }));
    const order = (sign: number) => (a: (typeof want)[0], b: (typeof want)[0]) =>
      sign * (a.fused - b.fused) || sign * (a.score - b.score) || (a.id < b.id ? -1 : 1);
    const signal = { stats: { attribution: st.att, checks: st.fst }, options: o };
    const harmful = topSamples(run, 'harmful', 10, signal);
    expect(harmful.map((x) => x.id)).toEqual(
      [...want]
        .sort(order(1))
        .slice(0, 10)
        .map((x) => x.id),
    );
    expect(topSamples(run, 'helpful', 10, signal).map((x) => x.id)).toEqual(
      [...want]
        .sort(order(-1))
        .slice(0, 10)
        .map((x) => x.id),
    );
    for (const row of harmful) expect(row.fused!).toBeCloseTo(want.find((w) => w.id === row.id)!.fused, 9);
    // The fused ranking is not the score's: checks moved samples into the harmful list.
    expect(harmful.map((x) => x.id)).not.toEqual(topSamples(run, 'harmful', 10).map((x) => x.id));
  });

  it.each([1, 2, 3, 5, 8, 101])('gives the sorted-array quantiles and bins with %i samples, ties included', (n) => {
    const { run } = makeRun(n);
    // Few distinct values, so positions land on runs of equal scores.
    const scores: number[] = [];
    [...run.samples.values()].forEach((s, i) => {
      s.total = 2 * ((i * 7) % 4) - 3;
      scores.push(s.total / 2);
    });
    run.revision++;
    const d = computeDistribution(run);
    const sorted = [...scores].sort((a, b) => a - b);
    SCORE_QUANTILES.forEach((q, i) => {
      const pos = q * (n - 1);
      const lo = sorted[Math.floor(pos)]!;
      const hi = sorted[Math.ceil(pos)]!;
      expect(d.scoreQuantiles[i]).toBe(lo + (hi - lo) * (pos - Math.floor(pos)));
    });
    const width = (sorted.at(-1)! - sorted[0]!) / SCORE_BINS;
    const bins = new Array<number>(SCORE_BINS).fill(0);
    for (const v of scores) bins[width > 0 ? Math.min(SCORE_BINS - 1, Math.floor((v - sorted[0]!) / width)) : 0]!++;
    expect(d.scoreBins).toEqual(bins);
    expect([d.scoreMin, d.scoreMax]).toEqual([sorted[0], sorted.at(-1)]);
  });
});
