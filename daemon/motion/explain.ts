/**
 * Which motion descriptors separate a run's harmful clips from its helpful ones: per descriptor,
 * the Spearman rank correlation with the influence score and the AUC between the lowest- and
 * highest-scoring fractions of profiled clips.
 */
import { DESCRIPTOR_NAMES, type MotionDescriptors } from './descriptors.js';

/** One profiled sample: its influence score and descriptors. */
export interface ScoredProfile {
  readonly score: number;
  readonly descriptors: MotionDescriptors;
}

export interface DescriptorSeparation {
  readonly name: string;
  /** Spearman ρ between the descriptor and the score; null when either is constant. Negative: higher values go with harm. */
  readonly spearman: number | null;
  /** P(descriptor of a harmful clip > that of a helpful clip), ties half; null without both groups. */
  readonly auc: number | null;
  readonly harmfulMean: number | null;
  readonly helpfulMean: number | null;
  /** |2·AUC − 1|: 0 = no separation, 1 = perfect; the list is sorted by it. */
  readonly separation: number;
}

export interface Explanation {
  readonly profiled: number;
  /** The fraction of profiled clips in each group (lowest scores = harmful, highest = helpful). */
  readonly fraction: number;
  readonly harmful: number;
  readonly helpful: number;
  readonly descriptors: DescriptorSeparation[];
  /** One readable line per descriptor with a clear separation (AUC ≥ 0.7 or ≤ 0.3). */
  readonly summary: string[];
}

/** Average ranks (1-based), ties sharing their mean rank. */
export function ranks(values: readonly number[]): Float64Array {
  const order = values.map((v, i) => i).sort((a, b) => (values[a] as number) - (values[b] as number));
  const out = new Float64Array(values.length);
  for (let i = 0; i < order.length;) {
    let j = i;
    while (j + 1 < order.length && values[order[j + 1] as number] === values[order[i] as number]) j++;
    for (let k = i; k <= j; k++) out[order[k] as number] = (i + j) / 2 + 1;
    i = j + 1;
  }
  return out;
}

/** Spearman's ρ (Pearson correlation of average ranks); null when a side is constant or n < 2. */
export function spearman(a: readonly number[], b: readonly number[]): number | null {
  if (a.length < 2) return null;
  const ra = ranks(a);
  const rb = ranks(b);
  const n = a.length;
  const mean = (n + 1) / 2;
  let num = 0;
  let da = 0;
  let db = 0;
  for (let i = 0; i < n; i++) {
    const x = (ra[i] as number) - mean;
    const y = (rb[i] as number) - mean;
    num += x * y;
    da += x * x;
    db += y * y;
  }
  return da === 0 || db === 0 ? null : num / Math.sqrt(da * db);
}

/** Mann–Whitney AUC: P(x > y) over pairs, ties counted half. */
export function aucOf(xs: readonly number[], ys: readonly number[]): number | null {
  if (xs.length === 0 || ys.length === 0) return null;
  const all = [...xs, ...ys];
  const r = ranks(all);
  let sum = 0;
  for (let i = 0; i < xs.length; i++) sum += r[i] as number;
  return (sum - (xs.length * (xs.length + 1)) / 2) / (xs.length * ys.length);
}

const numeric = (d: MotionDescriptors, name: (typeof DESCRIPTOR_NAMES)[number]): number => {
  const v = d[name];
  return typeof v === 'boolean' ? (v ? 1 : 0) : v;
};

/** Separation of every descriptor; `fraction` (0–0.5] of the profiled clips form each group. */
export function explain(rows: readonly ScoredProfile[], fraction = 0.25): Explanation {
  const sorted = [...rows].sort((a, b) => a.score - b.score);
  const k = Math.floor(sorted.length * fraction);
  const harmful = sorted.slice(0, k);
  const helpful = k === 0 ? [] : sorted.slice(sorted.length - k);
  const mean = (v: number[]): number | null => (v.length === 0 ? null : v.reduce((x, y) => x + y, 0) / v.length);
  const descriptors = DESCRIPTOR_NAMES.map((name): DescriptorSeparation => {
    const bad = harmful.map((r) => numeric(r.descriptors, name));
    const good = helpful.map((r) => numeric(r.descriptors, name));
    const auc = aucOf(bad, good);
    return {
      name,
      spearman: spearman(
        rows.map((r) => numeric(r.descriptors, name)),
        rows.map((r) => r.score),
      ),
      auc,
      harmfulMean: mean(bad),
      helpfulMean: mean(good),
      separation: auc === null ? 0 : Math.abs(2 * auc - 1),
    };
  }).sort((a, b) => b.separation - a.separation);
  const summary = descriptors
    .filter((d) => d.auc !== null && (d.auc >= 0.7 || d.auc <= 0.3))
    .map((d) => {
      const auc = d.auc as number;
      const dir = auc >= 0.5 ? 'higher' : 'lower';
      const rho = d.spearman === null ? '' : `, Spearman ρ with score ${d.spearman.toFixed(2)}`;
      return `harmful clips have ${dir} ${d.name} (AUC ${auc.toFixed(2)}${rho})`;
    });
  return { profiled: rows.length, fraction, harmful: harmful.length, helpful: helpful.length, descriptors, summary };
}
