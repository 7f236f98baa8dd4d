/**
 * The figures of `motive eval`: how well a per-clip signal separates clips a user labelled (jitter,
 * frozen, …) from the clips of a reference label (clean). Lower harm values are more harmful.
 *
 * - AUC of label L against the reference R: P(h_L < h_R) + ½ P(h_L = h_R), from one sort of the
 *   clips' harm values and a sweep over tie blocks (O(n log n) once, then O(n) per evaluation).
 * - Its 95 % interval: a stratified bootstrap (each label's clips and the reference clips resampled
 *   separately, with replacement), percentiles of the replicate AUCs. The pooled row reuses the
 *   same draws, so every row of one replicate comes from the same resampled data.
 * - Precision at the top k: among the scored labelled clips ranked most harmful first (ties by id),
 *   the share of the first k that carry the label; pooled, the share that is not the reference.
 */
import { percentile } from '../shared/index.js';

export interface EvalClip {
  readonly id: string;
  readonly label: string;
  /** The signal as a harm value (lower = more harmful); null when the clip has none yet. */
  readonly harm: number | null;
  /** Its pushed sampling weight (1 when none was pushed). */
  readonly weight: number;
}

export interface EvalOptions {
  readonly reference: string;
  /** How many of `n` ranked clips make the top (e.g. ⌈10 % · n⌉). */
  readonly topCount: (n: number) => number;
  readonly replicates: number;
  readonly seed: number;
  /** Two-sided interval level, e.g. 0.95. */
  readonly level: number;
}

export interface GroupFigures {
  readonly label: string;
  /** Clips with a harm value: the ones the AUC and precision count. */
  readonly n: number;
  /** Clips of the run with this label but no harm value yet (never seen, or no signal). */
  readonly unscored: number;
  /** Against the reference; null for the reference row and for a label with no scored clip. */
  readonly auc: number | null;
  readonly ci: readonly [number, number] | null;
  /** Share of the top k carrying this label (pooled row: not the reference). */
  readonly precisionAtTop: number | null;
  /** n over all scored labelled clips: what the precision would be by chance. */
  readonly baseRate: number | null;
  /** Over all the label's clips in the run, scored or not. */
  readonly meanWeight: number | null;
}

export interface EvalFigures {
  /** Every non-reference label, in order of first appearance. */
  readonly labels: GroupFigures[];
  /** All non-reference labels together against the reference. */
  readonly pooled: GroupFigures;
  readonly reference: GroupFigures;
  /** Scored labelled clips ranked, and how many of them make the top. */
  readonly ranked: number;
  readonly top: number;
}

export const POOLED_LABEL = 'all non-reference';

/**
 * Seeded uniform generator (mulberry32): the same seed gives the same intervals. The state stays a
 * signed 32-bit integer, which V8 keeps unboxed.
 */
export class Mulberry32 {
  private state: number;

  constructor(seed: number) {
    this.state = seed | 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}

/**
 * Clips sorted by harm once, with their tie blocks, so that AUC numerators for any multiplicities
 * (1 each, or a bootstrap draw) take one sequential sweep. Everything is indexed by sorted position.
 */
class RankedClips {
  /** Group of the clip at each sorted position (harm ascending). */
  readonly group: Int32Array;
  /** blockStart[b]: first sorted position of tie block b; one more entry holds the clip count. */
  readonly blockStart: Int32Array;

  constructor(
    harm: Float64Array,
    group: Int32Array,
    readonly referenceGroup: number,
  ) {
    const order = Array.from({ length: harm.length }, (_, i) => i);
    order.sort((a, b) => (harm[a] as number) - (harm[b] as number));
    this.group = Int32Array.from(order, (i) => group[i] as number);
    const starts: number[] = [];
    for (let p = 0; p < order.length; p++) {
      if (p === 0 || harm[order[p] as number] !== harm[order[p - 1] as number]) starts.push(p);
    }
    starts.push(order.length);
    this.blockStart = Int32Array.from(starts);
  }

  /**
   * Σ over (labelled, reference) pairs of [h_L < h_R] + ½ [h_L = h_R], each clip counted `mult`
   * times (by sorted position; null: once), per group (the reference group's entry stays 0).
   * Sweeps from the least harmful block: `above` is the reference weight strictly less harmful.
   */
  pairWins(mult: Float64Array | null, out: Float64Array): void {
    out.fill(0);
    const { group, blockStart, referenceGroup } = this;
    let above = 0;
    for (let b = blockStart.length - 2; b >= 0; b--) {
      const start = blockStart[b] as number;
      const end = blockStart[b + 1] as number;
      let tiedRef = 0;
      for (let p = start; p < end; p++) {
        if (group[p] === referenceGroup) tiedRef += mult === null ? 1 : (mult[p] as number);
      }
      const credit = above + tiedRef / 2;
      for (let p = start; p < end; p++) {
        const g = group[p] as number;
        if (g !== referenceGroup) out[g] = (out[g] as number) + (mult === null ? 1 : (mult[p] as number)) * credit;
      }
      above += tiedRef;
    }
  }
}

/**
 * The top k of the scored clips (`options.topCount`) and how many of each group are among them.
 * Ascending harm, ties by id, so the cut does not depend on input order.
 */
function topByGroup(
  scored: readonly EvalClip[],
  harm: Float64Array,
  group: Int32Array,
  groups: number,
  options: EvalOptions,
): { k: number; inTop: Float64Array } {
  const byHarm = scored.map((c, i) => i);
  byHarm.sort((a, b) => {
    const d = (harm[a] as number) - (harm[b] as number);
    if (d !== 0) return d;
    const x = (scored[a] as EvalClip).id;
    const y = (scored[b] as EvalClip).id;
    return x < y ? -1 : x > y ? 1 : 0;
  });
  const k = scored.length === 0 ? 0 : Math.min(scored.length, options.topCount(scored.length));
  const inTop = new Float64Array(groups);
  for (const i of byHarm.slice(0, k)) inTop[group[i] as number] = (inTop[group[i] as number] as number) + 1;
  return { k, inTop };
}

/** The figures for `clips` (every labelled clip found in the run). */
export function evaluateLabels(clips: readonly EvalClip[], options: EvalOptions): EvalFigures {
  const names = [...new Set(clips.map((c) => c.label))].filter((l) => l !== options.reference);
  const groupOf = new Map<string, number>(names.map((l, g) => [l, g]));
  const refGroup = names.length;
  groupOf.set(options.reference, refGroup);
  const groups = names.length + 1;

  const scored = clips.filter((c) => c.harm !== null && Number.isFinite(c.harm));
  const harm = Float64Array.from(scored, (c) => c.harm as number);
  const group = Int32Array.from(scored, (c) => groupOf.get(c.label) as number);
  const size = new Float64Array(groups);
  for (const g of group) size[g] = (size[g] as number) + 1;
  const unscored = new Float64Array(groups);
  const weightSum = new Float64Array(groups);
  const all = new Float64Array(groups);
  for (const c of clips) {
    const g = groupOf.get(c.label) as number;
    all[g] = (all[g] as number) + 1;
    weightSum[g] = (weightSum[g] as number) + c.weight;
    if (c.harm === null || !Number.isFinite(c.harm)) unscored[g] = (unscored[g] as number) + 1;
  }

  const ranked = new RankedClips(harm, group, refGroup);
  const wins = new Float64Array(groups);
  ranked.pairWins(null, wins);
  const nRef = size[refGroup] as number;
  const nPooled = scored.length - nRef;
  const aucOf = (w: Float64Array, g: number): number | null => {
    const n = size[g] as number;
    return n === 0 || nRef === 0 ? null : (w[g] as number) / (n * nRef);
  };
  const pooledAuc = (w: Float64Array): number | null => {
    if (nPooled === 0 || nRef === 0) return null;
    let s = 0;
    for (let g = 0; g < refGroup; g++) s += w[g] as number;
    return s / (nPooled * nRef);
  };

  const intervals = bootstrap(ranked, size, options, aucOf, pooledAuc);

  const { k, inTop } = topByGroup(scored, harm, group, groups, options);
  const share = (x: number, of: number): number | null => (of === 0 ? null : x / of);

  const row = (g: number, label: string): GroupFigures => ({
    label,
    n: size[g] as number,
    unscored: unscored[g] as number,
    auc: g === refGroup ? null : aucOf(wins, g),
    ci: g === refGroup ? null : (intervals.groups[g] ?? null),
    precisionAtTop: share(inTop[g] as number, k),
    baseRate: share(size[g] as number, scored.length),
    meanWeight: share(weightSum[g] as number, all[g] as number),
  });
  let pooledUnscored = 0;
  let pooledWeight = 0;
  let pooledAll = 0;
  for (let g = 0; g < refGroup; g++) {
    pooledUnscored += unscored[g] as number;
    pooledWeight += weightSum[g] as number;
    pooledAll += all[g] as number;
  }
  return {
    labels: names.map((l, g) => row(g, l)),
    pooled: {
      label: POOLED_LABEL,
      n: nPooled,
      unscored: pooledUnscored,
      auc: pooledAuc(wins),
      ci: intervals.pooled,
      precisionAtTop: share(k - (inTop[refGroup] as number), k),
      baseRate: share(nPooled, scored.length),
      meanWeight: share(pooledWeight, pooledAll),
    },
    reference: row(refGroup, options.reference),
    ranked: scored.length,
    top: k,
  };
}

/** Stratified bootstrap: per replicate, each group's clips drawn with replacement, its own size. */
function bootstrap(
  ranked: RankedClips,
  size: Float64Array,
  options: EvalOptions,
  aucOf: (w: Float64Array, g: number) => number | null,
  pooledAuc: (w: Float64Array) => number | null,
): { groups: Array<readonly [number, number] | null>; pooled: readonly [number, number] | null } {
  const n = ranked.group.length;
  const groups = size.length;
  const lists: number[][] = Array.from({ length: groups }, () => []);
  for (let p = 0; p < n; p++) (lists[ranked.group[p] as number] as number[]).push(p);
  const members = lists.map((l) => Int32Array.from(l));
  const reps = Math.max(0, Math.floor(options.replicates));
  const perGroup = Array.from({ length: groups }, () => new Float64Array(reps));
  const pooled = new Float64Array(reps);
  const random = new Mulberry32(options.seed);
  const mult = new Float64Array(n);
  const wins = new Float64Array(groups);
  for (let r = 0; r < reps; r++) {
    mult.fill(0);
    for (const list of members) {
      for (let d = 0; d < list.length; d++) {
        const i = list[Math.floor(random.next() * list.length)] as number;
        mult[i] = (mult[i] as number) + 1;
      }
    }
    ranked.pairWins(mult, wins);
    for (let g = 0; g < groups; g++) (perGroup[g] as Float64Array)[r] = aucOf(wins, g) ?? NaN;
    pooled[r] = pooledAuc(wins) ?? NaN;
  }
  const tail = ((1 - options.level) / 2) * 100;
  const interval = (values: Float64Array): readonly [number, number] | null => {
    if (values.length === 0 || Number.isNaN(values[0])) return null;
    return [percentile(values, tail), percentile(values, 100 - tail)];
  };
  return { groups: perGroup.map(interval), pooled: interval(pooled) };
}
