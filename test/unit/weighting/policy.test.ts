import { describe, expect, it } from 'vitest';
import { computeWeights, type WeightPolicyOptions } from '../../../daemon/weighting/index.js';

const base: WeightPolicyOptions = { policy: 'downweight', minSeen: 1, beta: 0.5, wMin: 0.05, quarantineZ: -3 };

function referenceWeights(scores: number[], eligible: boolean[], o: typeof base): number[] {
  const pool = scores.filter((_, i) => eligible[i]).sort((a, b) => a - b);
  const med = (v: number[]): number => (v.length % 2 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2);
  const m = med(pool);
  let sigma = 1.4826 * med(pool.map((x) => Math.abs(x - m)).sort((a, b) => a - b));
  if (!(sigma > 0)) sigma = Math.sqrt(Math.PI / 2) * (pool.reduce((s, x) => s + Math.abs(x - m), 0) / pool.length);
  return scores.map((s, i) => {
    if (!eligible[i]) return 1;
    if (!(sigma > 0)) return 1;
    const z = (s - m) / sigma;
    let w = Math.min(1, Math.max(o.wMin, Math.exp(o.beta * z)));
    if (o.policy === 'quarantine' && z < o.quarantineZ) w = 0;
    return w;
  });
}

describe('weight policy', () => {
  const scores = [0.5, 0.1, -0.2, 0.3, -3, 0.05, 0.2, -0.1, 8, 0.0];
  const eligible = [true, true, true, true, true, true, true, true, true, false];

  it.each(['downweight', 'quarantine', 'observe'] as const)('matches the plain formula under %s', (policy) => {
    const o = { ...base, policy };
    const weights = computeWeights(Float64Array.from(scores), Uint8Array.from(eligible.map(Number)), o);
    const want = referenceWeights(scores, eligible, o);
    want.forEach((w, i) => expect(weights[i]).toBeCloseTo(w, 6));
  });

  it('only down-weights, keeps ineligible samples at 1, quarantines the outlier', () => {
    const weights = computeWeights(Float64Array.from(scores), Uint8Array.from(eligible.map(Number)), { ...base, policy: 'quarantine' });
    for (const w of weights) expect(w).toBeLessThanOrEqual(1);
    expect(weights[9]).toBe(1);
    expect(weights[4]).toBe(0);
    expect(weights[8]).toBe(1);
  });

  it('gives everyone weight 1 when all scores are equal (no NaN)', () => {
    const weights = computeWeights(new Float64Array(5).fill(0.3), new Uint8Array(5).fill(1), base);
    expect([...weights]).toEqual([1, 1, 1, 1, 1]);
  });

  it('matches the plain formula on large random runs, calls after calls, with reused arrays', () => {
    // The output and work arrays are reused between calls: a smaller call after a larger one must
    // not see its data.
    const out = new Float32Array(5000);
    const work = new Float64Array(5000);
    let seed = 12345;
    const next = (): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed / 2 ** 32;
    };
    for (const n of [5000, 37, 2000, 1]) {
      const s = Array.from({ length: n }, () => (next() - 0.5) * 10 ** (next() * 3));
      const e = Array.from({ length: n }, () => next() < 0.8);
      for (const policy of ['downweight', 'quarantine'] as const) {
        const o = { ...base, policy, beta: 1.5, quarantineZ: -2 };
        const got = computeWeights(Float64Array.from(s), Uint8Array.from(e.map(Number)), o, out, work);
        expect(got.length).toBe(n);
        expect(got.buffer).toBe(out.buffer);
        const want = referenceWeights(s, e, o);
        want.forEach((w, i) => expect(got[i]).toBe(Math.fround(w)));
      }
    }
  });
});
