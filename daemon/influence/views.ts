/**
 * Read-side views of a run: per-sample rows with score and votes (DESIGN.md §5), cached per
 * run revision so repeated REST reads don't recompute the percentile cuts.
 */
import type { RunState, SampleState } from '../store/index.js';
import { percentileVotes } from '../shared/index.js';

export interface SampleView {
  readonly id: string;
  readonly score: number;
  readonly seen: number;
  readonly votes: number;
  readonly weight: number;
  readonly lastStep: number;
}

export type SampleOrder = 'harmful' | 'helpful' | 'votes';

interface VoteCache {
  readonly revision: number;
  readonly thresholds: Float64Array;
  readonly votes: Map<string, number>;
}

export class RunViews {
  private readonly votePercentile: number;
  private readonly cache = new WeakMap<RunState, VoteCache>();

  /** @param votePercentile tau_j's percentile of S_j over seen samples (0–100). */
  constructor(votePercentile: number) {
    this.votePercentile = votePercentile;
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

  sample(run: RunState, s: SampleState): SampleView {
    return {
      id: s.id,
      score: run.score(s),
      seen: s.seen,
      votes: this.votes(run).votes.get(s.id) ?? 0,
      weight: s.weight,
      lastStep: s.lastStep,
    };
  }

  /** The first `limit` samples by `order`: harmful = lowest score first, helpful = highest, votes = most votes (ties by score). */
  list(run: RunState, order: SampleOrder, limit: number): SampleView[] {
    const rows = [...run.samples.values()].map((s) => this.sample(run, s));
    const byId = (a: SampleView, b: SampleView): number => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
    if (order === 'harmful') rows.sort((a, b) => a.score - b.score || byId(a, b));
    else if (order === 'helpful') rows.sort((a, b) => b.score - a.score || byId(a, b));
    else rows.sort((a, b) => b.votes - a.votes || b.score - a.score || byId(a, b));
    return rows.slice(0, limit);
  }
}
