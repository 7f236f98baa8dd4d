/**
 * Keeps every run's weights current: after commits it recomputes a run's weights (at most once
 * per `intervalMs`), persists the ones that moved by more than `minDelta` with a new weights
 * version, and announces them as a delta. The full snapshot is served on attach. A recompute
 * gathers the scores in slices, yielding to the event loop between them, so a large run does not
 * hold the Acks behind it.
 *
 * With `batchUpdates`, the samples of each committed batch also get their weights at once, from
 * the median and scale of the run's last recompute: a trainer learns its batch's weights right
 * after the batch's Ack instead of up to `intervalMs` later. The next recompute refreshes them
 * (and everyone else's) with current statistics. A new query set changes every score, so after
 * one the batch updates wait for the recompute that follows it.
 */
import { trace, type Logger } from '../shared/index.js';
import type { RunState, SampleState, Store } from '../store/index.js';
import { robustStats, weightFor, type RobustStats, type WeightPolicyOptions } from './policy.js';

export interface WeightingOptions extends WeightPolicyOptions {
  readonly minDelta: number;
  readonly intervalMs: number;
  /** Weights for each committed batch's samples at once, from the last recompute's statistics. */
  readonly batchUpdates?: boolean;
}

/** Samples a recompute gathers between yields to the event loop. */
const RECOMPUTE_SLICE = 8192;

/** A recompute's working arrays, one slot per sample. */
interface Work {
  samples: Array<SampleState | undefined>;
  scores: Float64Array;
  eligible: Uint8Array;
  order: Float64Array;
}

function newWork(): Work {
  return { samples: [], scores: new Float64Array(0), eligible: new Uint8Array(0), order: new Float64Array(0) };
}

/** Grows `w` to `size` slots, keeping what it holds. */
function grow(w: Work, size: number): void {
  const scores = new Float64Array(size);
  scores.set(w.scores);
  const eligible = new Uint8Array(size);
  eligible.set(w.eligible);
  w.scores = scores;
  w.eligible = eligible;
  w.order = new Float64Array(size);
}

/** Weight changes of one run waiting behind its publish in flight. */
interface Waiting {
  readonly run: RunState;
  readonly weights: Map<string, number>;
  readonly newly: Set<string>;
  done: Promise<void>;
}

/** The statistics of a run's last recompute, and the query count its scores were taken over. */
interface RunStats {
  readonly stats: RobustStats | undefined;
  readonly queries: number;
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
  private readonly recomputing = new Map<string, Promise<void>>();
  private readonly publishing = new Map<string, Promise<void>>();
  private readonly waiting = new Map<string, Waiting>();
  private readonly stats = new Map<string, RunStats>();
  private readonly freeWork: Work[] = [];
  private readonly listeners: Array<(e: WeightUpdateEvent) => void> = [];
  private closed = false;

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

  /**
   * After a commit of `runId`: the batch update of `sampleIds` (with `batchUpdates`, unless
   * `querySetChanged`) and a scheduled recompute.
   */
  committed(runId: string, sampleIds: ReadonlyArray<readonly string[]>, querySetChanged: boolean): void {
    if (this.closed) return;
    if (querySetChanged) this.stats.delete(runId);
    else if (this.options.batchUpdates === true && sampleIds.length > 0) this.batchUpdate(runId, sampleIds);
    this.schedule(runId);
  }

  /** Recomputes now; resolves after the changes are durable and announced. */
  recompute(runId: string): Promise<void> {
    const prev = this.recomputing.get(runId) ?? Promise.resolve();
    const next = prev.then(() => this.recomputeNow(runId));
    this.recomputing.set(
      runId,
      next.catch(() => undefined),
    );
    return next;
  }

  /** The batch update: the weights of `lists`' samples under the last recompute's statistics. */
  private batchUpdate(runId: string, lists: ReadonlyArray<readonly string[]>): void {
    const cached = this.stats.get(runId);
    const run = this.store.run(runId);
    if (cached?.stats === undefined || run === undefined || run.queryIds.length !== cached.queries) return;
    const stats = cached.stats;
    const minSeen = this.options.minSeen;
    const done = new Set<string>();
    const ids: string[] = [];
    const moved: number[] = [];
    const newly: string[] = [];
    for (const list of lists) {
      for (const id of list) {
        if (done.has(id)) continue;
        done.add(id);
        const s = run.samples.get(id);
        if (s === undefined) continue;
        // float32, as the stored weights are
        const wi = s.seen >= minSeen ? Math.fround(weightFor(run.score(s), stats, this.options)) : 1;
        this.collect(s, wi, ids, moved, newly);
      }
    }
    void this.publish(run, runId, ids, moved, newly).catch((err: unknown) => this.log.error({ err, runId }, 'batch weight update failed'));
  }

  /** Adds `s` to the update when its new weight `wi` moved enough to push. */
  private collect(s: SampleState, wi: number, ids: string[], moved: number[], newly: string[]): void {
    if (!(Math.abs(wi - s.weight) > this.options.minDelta || ((wi === 0 || wi === 1) && wi !== s.weight))) return;
    if (s.weight >= 1 && wi < 1) newly.push(s.id);
    ids.push(s.id);
    moved.push(wi);
  }

  /**
   * The recompute: every sample's score gathered in slices (yielding to the event loop between
   * them, so Acks are not held behind a pass over a large run), the median and scale taken over
   * the eligible ones, and every weight computed from the sample's score at that moment (batches
   * applied during the gather count).
   */
  private async recomputeNow(runId: string): Promise<void> {
    this.lastRunAt.set(runId, Date.now());
    const run = this.store.run(runId);
    if (run === undefined) return;
    // Work arrays kept between recomputes (one set per recompute in progress): at a short
    // interval over many samples, new ones each time were megabytes of garbage per second.
    const w = this.freeWork.pop() ?? newWork();
    const minSeen = this.options.minSeen;
    const ids: string[] = [];
    const moved: number[] = [];
    const newly: string[] = [];
    let n = 0;
    let stretch = trace.on ? performance.now() : 0;
    try {
      const it = run.samples.values();
      for (let r = it.next(); !r.done; r = it.next()) {
        if (n === w.scores.length) grow(w, Math.max(RECOMPUTE_SLICE, 2 * n));
        const s = r.value;
        w.samples[n] = s;
        w.scores[n] = run.score(s);
        w.eligible[n] = s.seen >= minSeen ? 1 : 0;
        n++;
        if (n % RECOMPUTE_SLICE === 0) {
          if (trace.on) trace.event('recompute', stretch, performance.now());
          await new Promise((resolve) => setImmediate(resolve));
          if (trace.on) stretch = performance.now();
          if (this.closed || this.store.run(runId) !== run) return;
        }
      }
      const stats = robustStats(w.scores.subarray(0, n), w.eligible.subarray(0, n), w.order);
      this.stats.set(runId, { stats, queries: run.queryIds.length });
      for (let i = 0; i < n; i++) {
        const s = w.samples[i] as SampleState;
        const wi = stats !== undefined && s.seen >= minSeen ? Math.fround(weightFor(run.score(s), stats, this.options)) : 1;
        this.collect(s, wi, ids, moved, newly);
      }
      if (trace.on) trace.event('recompute', stretch, performance.now());
    } finally {
      // Drop the references (a deleted run's samples must not stay reachable from here).
      w.samples.fill(undefined, 0, n);
      if (this.freeWork.length < 2) this.freeWork.push(w);
    }
    await this.publish(run, runId, ids, moved, newly);
  }

  /**
   * Publishes in call order per run, so versions are announced in order. Changes that arrive
   * while an earlier publish of the run is in flight wait for it merged into one update (the
   * latest weight of each sample), so a busy run makes one weights commit per turn of the store
   * rather than one per batch.
   */
  private publish(run: RunState, runId: string, ids: string[], moved: number[], newly: string[]): Promise<void> {
    if (ids.length === 0) return Promise.resolve();
    const waiting = this.waiting.get(runId);
    if (waiting !== undefined && waiting.run === run) {
      ids.forEach((id, i) => waiting.weights.set(id, moved[i] as number));
      for (const id of newly) waiting.newly.add(id);
      return waiting.done;
    }
    const weights = new Map<string, number>();
    ids.forEach((id, i) => weights.set(id, moved[i] as number));
    const entry: Waiting = { run, weights, newly: new Set(newly), done: Promise.resolve() };
    const prev = this.publishing.get(runId) ?? Promise.resolve();
    entry.done = prev.then(() => {
      if (this.waiting.get(runId) === entry) this.waiting.delete(runId);
      const merged = [...entry.weights.keys()];
      // Newly down-weighted: below 1 now, and still at 1 after the publishes before this one.
      const down = [...entry.newly].filter((id) => (entry.weights.get(id) as number) < 1 && (run.samples.get(id)?.weight ?? 1) >= 1);
      return this.publishNow(run, runId, merged, [...entry.weights.values()], down);
    });
    this.waiting.set(runId, entry);
    this.publishing.set(
      runId,
      entry.done.catch(() => undefined),
    );
    return entry.done;
  }

  /** Persists `ids`' new weights under the next weights version, applies and announces them. */
  private async publishNow(run: RunState, runId: string, ids: string[], moved: number[], newly: string[]): Promise<void> {
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
    await Promise.all([...this.recomputing.values()]);
    await Promise.all([...this.publishing.values()]);
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }
}
