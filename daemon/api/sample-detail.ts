/**
 * The parts of `GET /v1/runs/:run/samples/:id` that tell one clip's story (docs/api.md): its score
 * history, and the `/explain` summary (docs/motion-profiling.md) put in terms of this clip.
 */
import { DESCRIPTOR_NAMES, explain, type MotionDescriptors } from '../motion/index.js';
import type { RunState, SampleState, Store } from '../store/index.js';

/** One point of a sample's history as the API shows it. */
export interface HistoryView {
  /** How many batches had counted the sample by then (its `seen` after this batch). */
  readonly seen: number;
  readonly step: number;
  /** Σ_j S_j then, over the run's query count now (the scale of `score`). */
  readonly score: number;
  /** The weight in force when the batch was applied. */
  readonly weight: number;
}

/** Where the clip stands among the run's profiled clips, and the sentence saying so. */
export interface SampleExplainView {
  /** `harmful` / `helpful`: in the lowest / highest `fraction` of profiled clips by score; null: not profiled. */
  readonly group: 'harmful' | 'helpful' | 'middle' | null;
  /** 1 = the lowest score among the profiled clips; null when the clip is not profiled. */
  readonly rank: number | null;
  readonly profiled: number;
  readonly fraction: number;
  readonly sentence: string;
  /** The run's `/explain` summary lines. */
  readonly summary: string[];
}

/** The sample's score history (store history, docs/store.md), oldest first. */
export function historyView(store: Store, run: RunState, s: SampleState): HistoryView[] {
  const m = run.queryIds.length;
  return (store.sampleHistory(run.info.id, s.id) ?? []).map((p) => ({
    seen: p.i + 1,
    step: p.step,
    score: m === 0 ? 0 : p.total / m,
    weight: p.weight,
  }));
}

function descriptorsOf(store: Store, id: string): MotionDescriptors | undefined {
  const f = store.profile(id)?.fields;
  if (f === undefined) return undefined;
  for (const name of DESCRIPTOR_NAMES) if (f[name] === undefined) return undefined;
  return f as unknown as MotionDescriptors;
}

const numeric = (v: number | boolean): number => (typeof v === 'boolean' ? (v ? 1 : 0) : v);
const short = (x: number): string => (Number.isInteger(x) ? String(x) : Math.abs(x) < 1e-3 && x !== 0 ? x.toExponential(2) : x.toFixed(3));

/**
 * The run's `/explain` over its profiled clips (`fraction` of them in each group), and a sentence
 * placing `s` in it: its group, and for each descriptor the summary names, which group's mean its
 * own value lies nearer.
 */
export function sampleExplain(store: Store, run: RunState, s: SampleState, fraction = 0.25): SampleExplainView {
  const rows: Array<{ id: string; score: number; descriptors: MotionDescriptors }> = [];
  for (const t of run.samples.values()) {
    const descriptors = descriptorsOf(store, t.id);
    if (descriptors !== undefined) rows.push({ id: t.id, score: run.score(t), descriptors });
  }
  const e = explain(rows, fraction);
  const own = descriptorsOf(store, s.id);
  if (own === undefined) {
    const sentence =
      'This clip has no motion profile: run `motive profile` to compare its motion with the run’s harmful and helpful clips.';
    return { group: null, rank: null, profiled: rows.length, fraction, sentence, summary: e.summary };
  }
  const sorted = rows.map((r) => r.score).sort((a, b) => a - b);
  const score = run.score(s);
  const rank = sorted.findIndex((x) => x >= score) + 1;
  const k = e.harmful;
  const group =
    k > 0 && score <= (sorted[k - 1] as number)
      ? 'harmful'
      : k > 0 && score >= (sorted[sorted.length - k] as number)
        ? 'helpful'
        : 'middle';
  const pct = Math.round(fraction * 100);
  const parts = [
    group === 'middle'
      ? `This clip ranks ${rank} of ${rows.length} profiled clips by score, between the ${pct}% most harmful and the ${pct}% most helpful.`
      : `This clip is among the ${pct}% most ${group} of ${rows.length} profiled clips (rank ${rank} by score, 1 = most harmful).`,
  ];
  const separating = e.descriptors.filter((d) => d.auc !== null && (d.auc >= 0.7 || d.auc <= 0.3));
  if (separating.length === 0) parts.push('No motion descriptor separates the run’s harmful clips from its helpful ones yet.');
  for (const d of separating) {
    const v = numeric(own[d.name as keyof MotionDescriptors]);
    const bad = d.harmfulMean as number;
    const good = d.helpfulMean as number;
    const side = Math.abs(v - bad) < Math.abs(v - good) ? 'harmful' : Math.abs(v - bad) > Math.abs(v - good) ? 'helpful' : 'neither';
    const dir = (d.auc as number) >= 0.5 ? 'higher' : 'lower';
    parts.push(
      `Harmful clips have ${dir} ${d.name} (AUC ${(d.auc as number).toFixed(2)}); this clip’s ${short(v)} is ` +
        (side === 'neither'
          ? `as near the harmful mean ${short(bad)} as the helpful mean ${short(good)}.`
          : `nearer the ${side} mean (${short(side === 'harmful' ? bad : good)}) than the ${side === 'harmful' ? 'helpful' : 'harmful'} mean (${short(side === 'harmful' ? good : bad)}).`),
    );
  }
  return { group, rank, profiled: rows.length, fraction, sentence: parts.join(' '), summary: e.summary };
}
