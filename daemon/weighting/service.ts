/**
 * Keeps every run's weights current: after commits it recomputes a run's weights (at most once
 * per `intervalMs`), persists the ones that moved by more than `minDelta` with a new weights
 * version, and announces them as a delta. The full snapshot is served on attach.
 */
import type { Logger } from '../shared/index.js';
import type { RunState, SampleState, Store } from '../store/index.js';
import { computeWeights, type WeightPolicyOptions } from './policy.js';

export interface WeightingOptions extends WeightPolicyOptions {
  readonly minDelta: number;
  readonly intervalMs: number;
}

/** A set of weight changes (or a full snapshot) of one run at one weights version. */
export interface WeightUpdateEvent {
  readonly runId: string;
  readonly version: number;
  /** true: every sample not listed has weight 1. */
  readonly full: boolean;
  readonly sampleIds: readonly string[];
  readonly weights: readonly number[];
  /** Samples whose weight dropped below 1 for the first time in this update. */
  readonly newlyDownweighted: readonly string[];
}

export class WeightingService {
  private readonly store: Store;
  private readonly options: WeightingOptions;
  private readonly log: Logger;
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly lastRunAt = new Map<string, number>();
  private readonly running = new Map<string, Promise<void>>();
  private readonly listeners: Array<(e: WeightUpdateEvent) => void> = [];
  private closed = false;
  private readonly work = {
    samples: [] as Array<SampleState | undefined>,
    scores: new Float64Array(0),
    eligible: new Uint8Array(0),
    weights: new Float32Array(0),
    order: new Float64Array(0),
  };

  constructor(store: Store, options: WeightingOptions, log: Logger) {
    this.store = store;
    this.options = options;
    this.log = log;
  }

  /** The configured policy. */
  get policy(): string {
    return this.options.policy;
  }

  /** Whether updates are pushed to trainers (not under `observe`). */
  get pushes(): boolean {
    return this.options.policy !== 'observe';
  }

  onUpdate(listener: (e: WeightUpdateEvent) => void): void {
    this.listeners.push(listener);
  }

  /** Asks for a recompute of `runId`, throttled to one per `intervalMs`. */
  schedule(runId: string): void {
    if (this.closed || this.timers.has(runId)) return;
    const since = Date.now() - (this.lastRunAt.get(runId) ?? 0);
    const delay = Math.max(0, this.options.intervalMs - since);
    const timer = setTimeout(() => {
      this.timers.delete(runId);
      void this.recompute(runId).catch((err: unknown) => this.log.error({ err, runId }, 'weight recompute failed'));
    }, delay);
    timer.unref();
    this.timers.set(runId, timer);
  }

  /** Recomputes now; resolves after the changes are durable and announced. */
  recompute(runId: string): Promise<void> {
    const prev = this.running.get(runId) ?? Promise.resolve();
    const next = prev.then(() => this.recomputeNow(runId));
    this.running.set(
      runId,
      next.catch(() => undefined),
    );
    return next;
  }

  private async recomputeNow(runId: string): Promise<void> {
    this.lastRunAt.set(runId, Date.now());
    const run = this.store.run(runId);
    if (run === undefined) return;
    // Work arrays kept between recomputes: at a short interval over many samples, new ones each
    // time were megabytes of garbage per second.
    const n = run.samples.size;
    const w = this.work;
    if (w.scores.length < n) {
      const size = 2 ** Math.ceil(Math.log2(n));
      w.scores = new Float64Array(size);
      w.eligible = new Uint8Array(size);
      w.weights = new Float32Array(size);
      w.order = new Float64Array(size);
    }
    const samples = w.samples;
    const scores = w.scores.subarray(0, n);
    const eligible = w.eligible.subarray(0, n);
    const minSeen = this.options.minSeen;
    let at = 0;
    for (const s of run.samples.values()) {
      samples[at] = s;
      scores[at] = run.score(s);
      eligible[at] = s.seen >= minSeen ? 1 : 0;
      at++;
    }
    const weights = computeWeights(scores, eligible, this.options, w.weights, w.order);
    const minDelta = this.options.minDelta;
    const ids: string[] = [];
    const moved: number[] = [];
    const newly: string[] = [];
    for (let i = 0; i < n; i++) {
      const s = samples[i] as SampleState;
      const wi = weights[i] as number;
      if (!(Math.abs(wi - s.weight) > minDelta || ((wi === 0 || wi === 1) && wi !== s.weight))) continue;
      if (s.weight >= 1 && wi < 1) newly.push(s.id);
      ids.push(s.id);
      moved.push(wi);
    }
    // Drop the references (a deleted run's samples must not stay reachable from here).
    samples.fill(undefined, 0, n);
    if (ids.length === 0) return;
    const changed = Float32Array.from(moved);
    const version = run.weightsVersion + 1;
    const lsn = await this.store.commit((tx) => {
      tx.updateRun(run, { weightsVersion: version });
      return tx.appendWeights(runId, ids, changed);
    });
    // The run may have been deleted (and made again) while the commit was in flight.
    if (this.store.run(runId) !== run) return;
    this.store.applyWeights(run, ids, changed, lsn);
    run.weightsVersion = version;
    run.revision++;
    const event: WeightUpdateEvent = { runId, version, full: false, sampleIds: ids, weights: [...changed], newlyDownweighted: newly };
    for (const l of this.listeners) {
      try {
        l(event);
      } catch (err) {
        this.log.error({ err }, 'weight listener failed');
      }
    }
  }

  /** Full snapshot: every sample whose weight is not 1, at the run's current weights version. */
  snapshot(run: RunState): WeightUpdateEvent {
    const ids: string[] = [];
    const ws: number[] = [];
    for (const s of run.samples.values()) {
      if (s.weight !== 1) {
        ids.push(s.id);
        ws.push(s.weight);
      }
    }
    return { runId: run.info.id, version: run.weightsVersion, full: true, sampleIds: ids, weights: ws, newlyDownweighted: [] };
  }

  /** Runs every pending recompute now (used on drain and by tests). */
  async flushAll(): Promise<void> {
    const pending = [...this.timers.keys()];
    for (const runId of pending) {
      clearTimeout(this.timers.get(runId));
      this.timers.delete(runId);
    }
    await Promise.all(pending.map((r) => this.recompute(r)));
    await Promise.all([...this.running.values()]);
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }
}
