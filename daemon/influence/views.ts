/**
 * Read-side views of a run: per-sample rows with score, votes and the run's weighting signal
 * (docs/method.md, "The fused signal"), cached per run revision so repeated REST
 * reads don't recompute the percentile cuts and the robust statistics.
 */
import type { RunState, SampleState } from '../store/index.js';
import { percentileVotes } from '../shared/index.js';
import { featureShares, featureStats, sampleSignal, type FusedOptions, type SignalStats } from '../weighting/fused.js';
import { robustStats } from '../weighting/policy.js';

export interface SampleView {
  readonly id: string;
  readonly score: number;
  readonly seen: number;
  readonly votes: number;
  readonly weight: number;
  readonly lastStep: number;
  /** The fused z (null when neither the scores nor the features spread). */
  readonly fused: number | null;
  /** The motion check from the sample's features (null: it has none). */
  readonly check: number | null;
}

export type SampleOrder = 'harmful' | 'helpful' | 'votes';

/** What the views need of the weight configuration: eligibility and the signal. */
export interface ViewSignalOptions extends FusedOptions {
  readonly minSeen: number;
}

interface VoteCache {
  readonly revision: number;
  readonly thresholds: Float64Array;
  readonly votes: Map<string, number>;
}

interface SignalCache {
  readonly revision: number;
  readonly stats: SignalStats;
}

export class RunViews {
  private readonly votePercentile: number;
  private readonly signal: ViewSignalOptions;
  private readonly cache = new WeakMap<RunState, VoteCache>();
  private readonly signals = new WeakMap<RunState, SignalCache>();

  /**
   * @param votePercentile tau_j's percentile of S_j over seen samples (0–100).
   * @param signal the weights' eligibility and signal (`weights.*`), for `fused`, `check` and the order.
   */
  constructor(votePercentile: number, signal: ViewSignalOptions = { minSeen: 2 }) {
    this.votePercentile = votePercentile;
    this.signal = signal;
  }

  /** tau_j per query (in the run's query id order), NaN for a run with no samples. */
  thresholds(run: RunState): Float64Array {
    return this.votes(run).thresholds;
  }

  private votes(run: RunState): VoteCache {
    const cached = this.cache.get(run);
    if (cached !== undefined && cached.revision === run.revision) return cached;
    const samples = [...run.samples.values()].filter((s) => s.seen > 0);
    const cut = percentileVotes(
      samples.map((s) => run.sumsOf(s)),
      run.queryIds.length,
      this.votePercentile,
    );
    const thresholds = cut.thresholds;
    const votes = new Map(samples.map((s, i) => [s.id, cut.votes[i] as number]));
    const fresh: VoteCache = { revision: run.revision, thresholds, votes };
    this.cache.set(run, fresh);
    return fresh;
  }

  /** The statistics of the run's signal now: the scores' over eligible samples, each feature's over the samples with features. */
  signalStats(run: RunState): SignalStats {
    const cached = this.signals.get(run);
    if (cached !== undefined && cached.revision === run.revision) return cached.stats;
    const n = run.samples.size;
    const scores = new Float64Array(n);
    const eligible = new Uint8Array(n);
    let i = 0;
    for (const s of run.samples.values()) {
      scores[i] = run.score(s);
      eligible[i++] = s.seen >= this.signal.minSeen ? 1 : 0;
    }
    const f = run.features;
    const stats: SignalStats = {
      attribution: robustStats(scores, eligible),
      checks: f.size === 0 ? [] : featureStats(f.rows(), f.size, f.width),
      shares: featureShares(f.names, this.signal),
    };
    this.signals.set(run, { revision: run.revision, stats });
    return stats;
  }

  sample(run: RunState, s: SampleState): SampleView {
    const score = run.score(s);
    const row = run.features.size === 0 ? undefined : run.features.get(s.id);
    const sig = sampleSignal(score, row, this.signalStats(run), this.signal);
    return {
      id: s.id,
      score,
      seen: s.seen,
      votes: this.votes(run).votes.get(s.id) ?? 0,
      weight: s.weight,
      lastStep: s.lastStep,
      fused: sig.fused ?? null,
      check: sig.check ?? null,
    };
  }

  /**
   * The first `limit` samples by `order`: harmful = lowest signal first, helpful = highest, votes =
   * most votes (ties by score). The signal is the fused z under `weights.signal: fused` (ties by
   * score: for a run without features it orders as the score does), the score under `attribution`.
   */
  list(run: RunState, order: SampleOrder, limit: number): SampleView[] {
    const rows = [...run.samples.values()].map((s) => this.sample(run, s));
    const byId = (a: SampleView, b: SampleView): number => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
    const fused = (this.signal.signal ?? 'fused') === 'fused';
    const key = (v: SampleView): number => (fused ? (v.fused ?? 0) : v.score);
    if (order === 'harmful') rows.sort((a, b) => key(a) - key(b) || a.score - b.score || byId(a, b));
    else if (order === 'helpful') rows.sort((a, b) => key(b) - key(a) || b.score - a.score || byId(a, b));
    else rows.sort((a, b) => b.votes - a.votes || b.score - a.score || byId(a, b));
    return rows.slice(0, limit);
  }
}
