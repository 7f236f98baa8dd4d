/**
 * The live feed's `top` event: a run's most harmful and most helpful clips, ranked as the weights
 * are, with the score and weight histograms (docs/observability.md, "WebSocket feed").
 */
import { WEIGHT_BUCKETS, type RunDistribution } from '../influence/index.js';
import type { RunState, SampleState, Store } from '../store/index.js';
import { sampleSignal, type FusedOptions, type SignalStats, type WeightingService } from '../weighting/index.js';
import type { LiveEventBody, LiveSampleRow, LiveTopRow } from './live-events.js';
import { sampleMotion } from './sample-motion.js';
import { sidecarView } from './sidecar-view.js';

/** The signal a top list ranks by: the weights' own (`weights.signal`) under their last recompute's statistics. */
export interface TopSignal {
  readonly stats: SignalStats;
  readonly options: FusedOptions;
}

/**
 * Picks the `limit` samples with the lowest (`harmful`) or highest (`helpful`) signal, without
 * sorting the run: the fused z under `signal` when given (ties by score, then id), else the score.
 */
export function topSamples(run: RunState, order: 'harmful' | 'helpful', limit: number, signal?: TopSignal): LiveSampleRow[] {
  const sign = order === 'harmful' ? 1 : -1;
  const features = run.features.size === 0 ? undefined : run.features;
  type Row = { key: number; tie: number; s: SampleState; score: number; fused: number | undefined };
  // true when `a` ranks before `b`.
  const before = (a: Row, b: Row): boolean => a.key < b.key || (a.key === b.key && (a.tie < b.tie || (a.tie === b.tie && a.s.id < b.s.id)));
  // `best` stays sorted, first-ranked first; a candidate enters only when it ranks before the last row.
  const best: Row[] = [];
  for (const s of run.samples.values()) {
    const score = run.score(s);
    const fused = signal === undefined ? undefined : sampleSignal(score, features?.get(s.id), signal.stats, signal.options).fused;
    const row: Row = { key: sign * (fused ?? score), tie: sign * score, s, score, fused };
    if (best.length === limit && !before(row, best[best.length - 1]!)) continue;
    let at = best.length;
    while (at > 0 && before(row, best[at - 1]!)) at--;
    best.splice(at, 0, row);
    if (best.length > limit) best.pop();
  }
  return best.map(({ s, score, fused }) => ({
    id: s.id,
    score,
    fused: fused ?? null,
    weight: s.weight,
    seen: s.seen,
    lastStep: s.lastStep,
  }));
}

/**
 * The body of a `top` event for `run`, from its last computed distribution `d`. The lists are
 * ranked as the weights are: by the fused signal under the last recompute's statistics.
 */
export function topEventBody(
  store: Store,
  weighting: WeightingService,
  run: RunState,
  d: RunDistribution,
  limit: number,
): LiveEventBody<'top'> {
  const stats = weighting.signal === 'fused' ? weighting.signalStats(run) : undefined;
  const signal = stats === undefined ? undefined : { stats, options: weighting.signalOptions };
  const weightCounts = d.weightCumulative.map((c, i) => c - (i === 0 ? 0 : (d.weightCumulative[i - 1] ?? 0)));
  // Each clip's motion descriptors (from `motive profile`), or null when not profiled.
  const withMotion = (rows: LiveSampleRow[]): LiveTopRow[] => rows.map((r) => ({ ...r, motion: sampleMotion(store, r.id) }));
  return {
    samples: d.samples,
    batches: run.batches,
    sketches: run.sketches,
    lastStep: run.lastStep,
    weightsVersion: run.weightsVersion,
    queryVersion: run.latestQuerySet()?.version ?? 0,
    downweighted: d.downweighted,
    quarantined: d.quarantined,
    harmful: withMotion(topSamples(run, 'harmful', limit, signal)),
    helpful: withMotion(topSamples(run, 'helpful', limit, signal)),
    scoreHistogram: { min: d.scoreMin, max: d.scoreMax, counts: d.scoreBins },
    weightHistogram: { le: WEIGHT_BUCKETS, counts: weightCounts },
    sidecar: sidecarView(store, run.info.id) ?? null,
  };
}
