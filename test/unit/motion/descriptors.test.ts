/**
 * Motion descriptors on hand-made flow fields, checked against values worked out plainly:
 * VBench's per-pair statistic and dynamic decision, jitter and reversals, static pairs, scene cuts.
 * And the explain statistics (Spearman, AUC) against textbook values.
 */
import { describe, expect, it } from 'vitest';
import { aucOf, computeDescriptors, explain, spearman, topFivePercentMean } from '../../../daemon/motion/index.js';

const H = 8;
const W = 8;
const P = H * W;

/** Frames of constant grey `g[t]`, flows with one uniform vector per pair. */
function clip(greys: number[], vectors: Array<[number, number]>): { frames: Float32Array; flows: Float32Array } {
  const frames = new Float32Array(greys.length * P);
  greys.forEach((g, t) => frames.fill(g, t * P, (t + 1) * P));
  const flows = new Float32Array(vectors.length * 2 * P);
  vectors.forEach(([u, v], t) => {
    flows.fill(u, t * 2 * P, t * 2 * P + P);
    flows.fill(v, t * 2 * P + P, (t + 1) * 2 * P);
  });
  return { frames, flows };
}

describe('motion descriptors', () => {
  it("takes VBench's top-5% mean: the mean of the int(0.05·n) largest values", () => {
    const values = Float32Array.from({ length: 100 }, (_, i) => i);
    expect(topFivePercentMean(values)).toBe((95 + 96 + 97 + 98 + 99) / 5);
    expect(topFivePercentMean(Float32Array.from([1, 2, 3]))).toBe(0);
  });

  it('scales magnitudes to a 256-pixel short side and applies VBench’s dynamic rule', () => {
    // 16 frames, uniform flow of 0.25 px on 8-px frames = 8 px at 256: above VBench's 6.
    const n = 16;
    const moving = clip(new Array<number>(n).fill(0.5), new Array(n - 1).fill([0.25, 0]) as Array<[number, number]>);
    const d = computeDescriptors(moving.frames, moving.flows, n, H, W);
    expect(d.dynamicDegree).toBeCloseTo(8, 5);
    expect(d.flowMean).toBeCloseTo(8, 5);
    expect(d.flowTop5).toBeCloseTo(8, 5);
    expect(d.dynamic).toBe(true);
    expect(d.jitter).toBeCloseTo(0, 6);
    expect(d.reversals).toBe(0);
    expect(d.staticFraction).toBe(0);
    expect(d.frames).toBe(n);
    // Dynamic needs more than round(4·16/16) = 4 moving pairs among the first 13: 4 are not enough.
    const vectors = new Array(n - 1).fill([0, 0]) as Array<[number, number]>;
    for (let t = 0; t < 4; t++) vectors[t] = [0.25, 0];
    vectors[13] = [0.25, 0];
    vectors[14] = [0.25, 0]; // the last two pairs are not counted
    const few = clip(new Array<number>(n).fill(0.5), vectors);
    expect(computeDescriptors(few.frames, few.flows, n, H, W).dynamic).toBe(false);
    vectors[4] = [0.25, 0];
    const five = clip(new Array<number>(n).fill(0.5), vectors);
    expect(computeDescriptors(five.frames, five.flows, n, H, W).dynamic).toBe(true);
  });

  it('measures jitter as the change of the mean motion vector, and counts direction reversals', () => {
    // 8 px at 256 to the right, then left, then right: every step changes by 16, every pair flips.
    const c = clip(
      [0.5, 0.5, 0.5, 0.5],
      [
        [0.25, 0],
        [-0.25, 0],
        [0.25, 0],
      ],
    );
    const d = computeDescriptors(c.frames, c.flows, 4, H, W);
    expect(d.jitter).toBeCloseTo(16, 5);
    expect(d.reversals).toBe(1);
  });

  it('counts static pairs and scene cuts (a cut pair is left out of the flow statistics)', () => {
    const c = clip(
      [0.2, 0.2, 0.9, 0.9],
      [
        [0, 0],
        [5, 5],
        [0.01, 0],
      ],
    );
    const d = computeDescriptors(c.frames, c.flows, 4, H, W);
    expect(d.sceneCuts).toBe(1);
    expect(d.staticFraction).toBe(1);
    expect(d.flowMean).toBeCloseTo(0.16, 5);
  });
});

describe('explain statistics', () => {
  it('Spearman ρ and AUC match textbook values', () => {
    expect(spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7])).toBeCloseTo(0.8207826816681233, 12);
    expect(spearman([1, 1, 1], [1, 2, 3])).toBeNull();
    expect(aucOf([3, 4, 5], [1, 2, 3])).toBeCloseTo((9 - 0.5) / 9, 12);
  });

  it('ranks descriptors by how well they split the lowest- from the highest-scoring clips', () => {
    const base = { dynamic: true, dynamicDegree: 5, flowMean: 1, flowTop5: 5, reversals: 0, staticFraction: 0, sceneCuts: 0, frames: 16 };
    const rows = Array.from({ length: 20 }, (_, i) => ({ score: i - 10, descriptors: { ...base, jitter: i < 10 ? 5 + i : 0.1 * i } }));
    const ex = explain(rows, 0.25);
    expect(ex.harmful).toBe(5);
    expect(ex.descriptors[0]!.name).toBe('jitter');
    expect(ex.descriptors[0]!.auc).toBe(1);
    expect(ex.summary[0]).toMatch(/^harmful clips have higher jitter \(AUC 1\.00/);
  });
});
