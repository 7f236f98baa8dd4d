/**
 * The figures of `motive eval` on data with many ties and unscored clips, against plain
 * computations written here: the O(n²) pair count for every AUC, a sort and count for precision at
 * the top, sums for mean weights; the bootstrap interval against the Hanley–McNeil standard error.
 */
import { describe, expect, it } from 'vitest';
import { evaluateLabels, type EvalClip } from '../../../daemon/cli/eval-metrics.js';
import { rng } from '../../helpers/reference.js';

/** P(h_a < h_r) + ½ P(h_a = h_r) over all pairs. */
function pairAuc(a: number[], r: number[]): number {
  let wins = 0;
  for (const x of a) for (const y of r) wins += x < y ? 1 : x === y ? 0.5 : 0;
  return wins / (a.length * r.length);
}

/** Hanley & McNeil (1982): the AUC's standard error from its value and the two group sizes. */
function hanleyMcNeil(auc: number, nPos: number, nNeg: number): number {
  const q1 = auc / (2 - auc);
  const q2 = (2 * auc * auc) / (1 + auc);
  return Math.sqrt((auc * (1 - auc) + (nPos - 1) * (q1 - auc * auc) + (nNeg - 1) * (q2 - auc * auc)) / (nPos * nNeg));
}

function dataset(seed: number): EvalClip[] {
  const r = rng(seed);
  const clips: EvalClip[] = [];
  const groups: Array<[string, number, number]> = [
    ['clean', 120, 0],
    ['jitter', 40, -0.9],
    ['frozen', 30, -0.4],
    ['decoy', 25, 0],
  ];
  for (const [label, n, shift] of groups) {
    for (let i = 0; i < n; i++) {
      // Rounded to a coarse grid: many ties inside and across labels.
      const harm = i % 13 === 5 ? null : Math.round((r.normal() + shift) * 4) / 4;
      clips.push({ id: `${label}-${String(i).padStart(3, '0')}`, label, harm, weight: 0.25 + r.uniform() });
    }
  }
  return clips;
}

const options = { reference: 'clean', topCount: (n: number) => Math.ceil(n * 0.1), replicates: 2000, seed: 7, level: 0.95 };

describe('evaluateLabels', () => {
  const clips = dataset(3);
  const figures = evaluateLabels(clips, options);
  const scored = clips.filter((c) => c.harm !== null);
  const harmOf = (label: string): number[] => scored.filter((c) => c.label === label).map((c) => c.harm as number);

  it('gives each label the pair-count AUC against the reference, ties counting half', () => {
    const clean = harmOf('clean');
    expect(figures.labels.map((g) => g.label)).toEqual(['jitter', 'frozen', 'decoy']);
    for (const g of figures.labels) {
      expect(g.auc).toBeCloseTo(pairAuc(harmOf(g.label), clean), 12);
      expect(g.n).toBe(harmOf(g.label).length);
    }
    const others = scored.filter((c) => c.label !== 'clean').map((c) => c.harm as number);
    expect(figures.pooled.auc).toBeCloseTo(pairAuc(others, clean), 12);
    expect(figures.pooled.n).toBe(others.length);
    expect(figures.reference.auc).toBeNull();
    // The data does separate: jitter is shifted furthest, the decoy not at all.
    expect(figures.labels[0]!.auc).toBeGreaterThan(0.65);
    expect(Math.abs(figures.labels[2]!.auc! - 0.5)).toBeLessThan(0.15);
  });

  it('counts unscored clips apart and averages weights over all of a label’s clips', () => {
    for (const g of [...figures.labels, figures.reference]) {
      const mine = clips.filter((c) => c.label === g.label);
      expect(g.unscored).toBe(mine.filter((c) => c.harm === null).length);
      expect(g.meanWeight).toBeCloseTo(mine.reduce((s, c) => s + c.weight, 0) / mine.length, 12);
    }
    const others = clips.filter((c) => c.label !== 'clean');
    expect(figures.pooled.unscored).toBe(others.filter((c) => c.harm === null).length);
    expect(figures.pooled.meanWeight).toBeCloseTo(others.reduce((s, c) => s + c.weight, 0) / others.length, 12);
  });

  it('takes precision at the top 10% from the scored clips ranked most harmful first, ties by id', () => {
    const ranked = [...scored].sort((a, b) => (a.harm as number) - (b.harm as number) || (a.id < b.id ? -1 : 1));
    const k = Math.ceil(ranked.length / 10);
    const top = ranked.slice(0, k);
    expect(figures.ranked).toBe(ranked.length);
    expect(figures.top).toBe(k);
    for (const g of [...figures.labels, figures.reference]) {
      expect(g.precisionAtTop).toBeCloseTo(top.filter((c) => c.label === g.label).length / k, 12);
      expect(g.baseRate).toBeCloseTo(ranked.filter((c) => c.label === g.label).length / ranked.length, 12);
    }
    expect(figures.pooled.precisionAtTop).toBeCloseTo(top.filter((c) => c.label !== 'clean').length / k, 12);
    // Shuffling the input changes nothing.
    const shuffled = [...clips].reverse();
    const again = evaluateLabels(shuffled, options);
    for (const g of figures.labels) expect(again.labels.find((x) => x.label === g.label)!.precisionAtTop).toBe(g.precisionAtTop);
    expect(again.pooled.precisionAtTop).toBe(figures.pooled.precisionAtTop);
  });

  it('bootstraps an interval that holds the AUC, is as wide as the Hanley–McNeil error says, and repeats with its seed', () => {
    const clean = harmOf('clean').length;
    for (const g of [...figures.labels, figures.pooled]) {
      const [lo, hi] = g.ci!;
      expect(lo).toBeLessThanOrEqual(g.auc!);
      expect(hi).toBeGreaterThanOrEqual(g.auc!);
      const se = hanleyMcNeil(g.auc!, g.n, clean);
      expect((hi - lo) / (2 * 1.96 * se)).toBeGreaterThan(0.7);
      expect((hi - lo) / (2 * 1.96 * se)).toBeLessThan(1.4);
    }
    const same = evaluateLabels(clips, options);
    expect(same).toEqual(figures);
    const other = evaluateLabels(clips, { ...options, seed: 8 });
    expect(other.labels[0]!.ci).not.toEqual(figures.labels[0]!.ci);
    expect(other.labels[0]!.auc).toBe(figures.labels[0]!.auc);
  });

  it('leaves the AUC out for a label whose clips are all unscored', () => {
    const some: EvalClip[] = [
      { id: 'a', label: 'clean', harm: 1, weight: 1 },
      { id: 'b', label: 'clean', harm: 2, weight: 1 },
      { id: 'c', label: 'jitter', harm: 0, weight: 0.5 },
      { id: 'd', label: 'late', harm: null, weight: 1 },
    ];
    const f = evaluateLabels(some, { ...options, replicates: 50 });
    expect(f.labels.map((g) => [g.label, g.n, g.unscored, g.auc, g.ci])).toEqual([
      ['jitter', 1, 0, 1, [1, 1]],
      ['late', 0, 1, null, null],
    ]);
    expect(f.pooled.auc).toBe(1);
    expect(f.top).toBe(1);
    expect(f.labels[0]!.precisionAtTop).toBe(1);
  });
});
