/**
 * Keeps every run's weights current: after commits it recomputes a run's weights (at most once
 * per `intervalMs`), persists the ones that moved by more than `minDelta` with a new weights
 * version, and announces them as a delta. The full snapshot is served on attach. A recompute
 * gathers the scores in slices, yielding to the event loop between them, so a large run does not
 * hold the Acks behind it.
 *
 * With `batchUpdates`, the samples of each batch also get their weights with the batch, from the
 * median and scale of the run's last recompute: the influence engine projects their scores while
 * it prepares the batch's group and asks {@link WeightingService.batchPolicy} for the weights,
 * which it logs in the group's own transaction, so a trainer learns its batch's weights right
 * after the batch's Ack instead of up to `intervalMs` later. The next recompute refreshes them
 * (and everyone else's) with current statistics. A new query set changes every score, so after
 * one the batch weights wait for the recompute that follows it.
 */
import type { BatchWeigher } from '../influence/index.js';
import type { Logger } from '../shared/index.js';
import { recomputeStretches, weightsPushed, weightsUpdated } from './channels.js';
import { crashPoint } from '../shared/crash-point.js';
import type { RunState, SampleState, Store } from '../store/index.js';
import { featureShares, featureStat, featureWork, signalWeight, spreads, type FusedOptions, type SignalStats } from './fused.js';
import { robustStats, type RobustStats, type WeightPolicyOptions } from './policy.js';

export interface WeightingOptions extends WeightPolicyOptions, FusedOptions {
  readonly minDelta: number;
  readonly intervalMs: number;
  /**
   * Most of the main thread a run's recomputes may take (default 1: `intervalMs` alone): the
   * next recompute starts no sooner than the last one's busy time over this after it began.
   */
  readonly maxRecomputeShare?: number;
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

/** The statistics of a run's last recompute (both parts of its signal), and the query count its scores were taken over. */
interface RunStats {
  readonly stats: SignalStats;
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

export class WeightingService implements BatchWeigher {
  private readonly store: Store;
  private readonly options: WeightingOptions;
  private readonly log: Logger;
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly lastRunAt = new Map<string, number>();
  /** Main-thread ms the run's last recompute took (its slices, not the waits between them). */
  private readonly lastBusyMs = new Map<string, number>();
  /** Runs with a commit announced while a recompute of theirs ran. */
  private readonly again = new Set<string>();
  /** Per run, the end of its last queued recompute, while one is queued or running. */
  private readonly recomputing = new Map<string, Promise<void>>();
  private readonly stats = new Map<string, RunStats>();
  private readonly freeWork: Work[] = [];
  private readonly trainerListeners: Array<(e: WeightUpdateEvent) => void> = [];
  private closed = false;
  /**
   * Batch weights told to the trainers at their group's commit and not applied yet (each run's, in
   * version order): a trainer that attaches in between takes its snapshot from memory, which
   * lacks them, and is never told them again, so {@link WeightingService.snapshot} adds them.
   */
  private readonly told = new WeakMap<RunState, Array<{ version: number; ids: readonly string[]; weights: Float32Array }>>();

  constructor(store: Store, options: WeightingOptions, log: Logger) {
    this.store = store;
    this.options = options;
    this.log = log;
  }

  /** The configured policy. */
  get policy(): string {
    return this.options.policy;
  }

  /** Whether batches get their weights with them (`batchUpdates`). */
  get batchUpdates(): boolean {
    return this.options.batchUpdates === true;
  }

  /** Whether updates are pushed to trainers (not under `observe`). */
  get pushes(): boolean {
    return this.options.policy !== 'observe';
  }

  /**
   * Every update of this service, once it is applied to memory: a subscription to
   * `motive:weighting:update` (channels.ts), where the live feed and the metrics hear them.
   * Returns the unsubscribe.
   */
  onUpdate(listener: (e: WeightUpdateEvent) => void): () => void {
    return weightsUpdated.subscribe(this, listener, (err) => this.log.error({ err }, 'weight listener failed'));
  }

  /**
   * Every update for the trainers (ingest's WeightUpdate): a batch's weights as soon as its group
   * is durable, with its Acks, before the group is applied; a recompute's once applied.
   */
  onTrainerUpdate(listener: (e: WeightUpdateEvent) => void): void {
    this.trainerListeners.push(listener);
  }

  /** The least time between the starts of two recomputes of `runId` (`intervalMs`, stretched by `maxRecomputeShare`). */
  recomputeGapMs(runId: string): number {
    const share = this.options.maxRecomputeShare ?? 1;
    return Math.max(this.options.intervalMs, this.recomputeBusyMs(runId) / share);
  }

  /** Main-thread time the last recompute of `runId` took (its slices and its apply, not the yields between them). */
  recomputeBusyMs(runId: string): number {
    return this.lastBusyMs.get(runId) ?? 0;
  }

  /**
   * Asks for a recompute of `runId`, throttled to one per {@link WeightingService.recomputeGapMs};
   * while one runs, the next is scheduled when it ends (its busy time known).
   */
  schedule(runId: string): void {
    if (this.closed || this.timers.has(runId)) return;
    if (this.recomputing.has(runId)) {
      this.again.add(runId);
      return;
    }
    const since = Date.now() - (this.lastRunAt.get(runId) ?? 0);
    const delay = Math.max(0, this.recomputeGapMs(runId) - since);
    const timer = setTimeout(() => {
      this.timers.delete(runId);
      void this.recompute(runId).catch((err: unknown) => this.log.error({ err, runId }, 'weight recompute failed'));
    }, delay);
    timer.unref();
    this.timers.set(runId, timer);
  }

  /** After a commit of `runId`: a scheduled recompute (a new query set voids the statistics). */
  committed(runId: string, querySetChanged: boolean): void {
    if (this.closed) return;
    if (querySetChanged) this.stats.delete(runId);
    this.schedule(runId);
  }

  /** Recomputes now; resolves after the changes are durable and announced. */
  recompute(runId: string): Promise<void> {
    const prev = this.recomputing.get(runId) ?? Promise.resolve();
    const next = prev.then(() => this.recomputeNow(runId));
    const tail: Promise<void> = next
      .catch(() => undefined)
      .then(() => {
        // The last recompute queued for the run has ended: a commit meanwhile asks for the next.
        if (this.recomputing.get(runId) !== tail) return;
        this.recomputing.delete(runId);
        if (this.again.delete(runId)) this.schedule(runId);
      });
    this.recomputing.set(runId, tail);
    return next;
  }

  /**
   * Batch weights (`batchUpdates`): a sample's weight from its projected score, `seen` and latest
   * features under the statistics of the run's last recompute (both parts of the signal), float32
   * as stored; undefined without batch updates, a recompute, or when that recompute scored over
   * another query count.
   */
  batchPolicy(run: RunState, queries: number): ((score: number, seen: number, features: Float32Array | undefined) => number) | undefined {
    if (this.closed || !this.batchUpdates) return undefined;
    const cached = this.stats.get(run.info.id);
    if (cached === undefined || !spreads(cached.stats, this.signal) || cached.queries !== queries || this.store.run(run.info.id) !== run)
      return undefined;
    const stats = cached.stats;
    const minSeen = this.options.minSeen;
    return (score, seen, features) => (seen >= minSeen ? Math.fround(signalWeight(score, features, stats, this.options)) : 1);
  }

  /**
   * The statistics the run's current weights were computed under (its last recompute), for readers
   * that rank by the same signal without computing it again; undefined before the first recompute
   * or after a new query set.
   */
  signalStats(run: RunState): SignalStats | undefined {
    return this.store.run(run.info.id) === run ? this.stats.get(run.info.id)?.stats : undefined;
  }

  /** The fused-signal options of the weights (`weights.signal`, `checkWeight`, `checkFloorZ`, `checkShares`). */
  get signalOptions(): FusedOptions {
    return this.options;
  }

  /** The signal the weights come from (`weights.signal`). */
  get signal(): 'fused' | 'attribution' {
    return this.options.signal ?? 'fused';
  }

  /** Whether a weight that moves from `from` to `to` is pushed: by more than `minDelta`, or to 0 or 1. */
  moves(from: number, to: number): boolean {
    return Math.abs(to - from) > this.options.minDelta || ((to === 0 || to === 1) && to !== from);
  }

  /** Weights committed at `version` (a group's batch weights, a recompute's), not applied yet: to the trainers. */
  durable(run: RunState, version: number, ids: readonly string[], weights: Float32Array): void {
    if (this.closed) return;
    const event = { runId: run.info.id, version, full: false, sampleIds: ids, weights: [...weights], newlyDownweighted: [] };
    let told = this.told.get(run);
    if (told === undefined) this.told.set(run, (told = []));
    told.push({ version, ids, weights });
    this.emitTo(this.trainerListeners, event);
    weightsPushed.publish(this, event);
  }

  /**
   * Announces batch weights the engine committed with their group at `version`, now applied;
   * to the trainers too unless {@link WeightingService.durable} told them already.
   */
  announce(
    run: RunState,
    version: number,
    ids: readonly string[],
    weights: Float32Array,
    newlyDownweighted: readonly string[],
    trainersTold: boolean,
  ): void {
    if (this.closed) return;
    const told = this.told.get(run);
    const at = told?.findIndex((t) => t.version === version) ?? -1;
    if (told !== undefined && at >= 0) told.splice(at, 1);
    const event = { runId: run.info.id, version, full: false, sampleIds: ids, weights: [...weights], newlyDownweighted };
    if (trainersTold) weightsUpdated.publish(this, event);
    else this.emit(event);
  }

  /** Adds `s` to the update when its new weight `wi` moved enough to push. */
  private collect(s: SampleState, wi: number, ids: string[], moved: number[], newly: string[]): void {
    if (!this.moves(s.weight, wi)) return;
    if (s.weight >= 1 && wi < 1) newly.push(s.id);
    ids.push(s.id);
    moved.push(wi);
  }

  /**
   * The recompute: every sample's score gathered in slices (yielding to the event loop between
   * them, so Acks are not held behind a pass over a large run), the median and scale taken over
   * the eligible ones, and every weight computed, again in slices, from the sample's score at that
   * moment (batches applied meanwhile count).
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
    // Main-thread time of the slices (not the yields between them), for the next one's start.
    let busy = 0;
    let stretch = performance.now();
    const endStretch = (): void => {
      const now = performance.now();
      busy += now - stretch;
      recomputeStretches.publish(this, { runId, start: stretch, end: now });
    };
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
          endStretch();
          await new Promise((resolve) => setImmediate(resolve));
          stretch = performance.now();
          if (this.closed || this.store.run(runId) !== run) return;
        }
      }
      const features = run.features;
      const attribution = robustStats(w.scores.subarray(0, n), w.eligible.subarray(0, n), w.order);
      // One feature per turn of the event loop: over a million samples each is a pass like the
      // scores' own (two order statistics), and all of them at once held the Acks for a second.
      const checks: Array<RobustStats | undefined> = [];
      const nf = features.width;
      const rows = features.size;
      const work = rows === 0 ? undefined : featureWork(rows);
      for (let i = 0; work !== undefined && i < nf; i++) {
        endStretch();
        await new Promise((resolve) => setImmediate(resolve));
        stretch = performance.now();
        if (this.closed || this.store.run(runId) !== run) return;
        // The rows as they are now (batches applied meanwhile may have added some).
        checks.push(featureStat(features.rows(), Math.min(rows, features.size), nf, i, work));
      }
      const stats: SignalStats = { attribution, checks, shares: featureShares(features.names, this.options) };
      this.stats.set(runId, { stats, queries: run.queryIds.length });
      const weighs = spreads(stats, this.signal);
      // The weights in slices too: over 100,000 samples this pass held the main thread (and the
      // Acks waiting on it) for 5–16 ms in one piece.
      for (let i = 0; i < n; i++) {
        if (i > 0 && i % RECOMPUTE_SLICE === 0) {
          endStretch();
          await new Promise((resolve) => setImmediate(resolve));
          stretch = performance.now();
          if (this.closed || this.store.run(runId) !== run) return;
        }
        const s = w.samples[i] as SampleState;
        const row = features.size === 0 ? undefined : features.get(s.id);
        const wi = weighs && s.seen >= minSeen ? Math.fround(signalWeight(run.score(s), row, stats, this.options)) : 1;
        this.collect(s, wi, ids, moved, newly);
      }
      endStretch();
    } finally {
      // Drop the references (a deleted run's samples must not stay reachable from here).
      w.samples.fill(undefined, 0, n);
      if (this.freeWork.length < 2) this.freeWork.push(w);
    }
    busy += await this.publish(run, runId, ids, moved, newly);
    this.lastBusyMs.set(runId, busy);
  }

  /**
   * Persists a recompute's changed weights under the next weights version (allocated in log order,
   * after any batch weights committed meanwhile), applies and announces them. Recomputes of a run
   * run one at a time, so its publishes are in order. Resolves with the main-thread ms the apply
   * and announcement took.
   */
  private async publish(run: RunState, runId: string, ids: string[], moved: number[], newly: string[]): Promise<number> {
    if (ids.length === 0) return 0;
    const changed = Float32Array.from(moved);
    let version = 0;
    const lsn = await this.store.commit((tx) => {
      version = tx.weightsVersion(run) + 1;
      tx.updateRun(run, { weightsVersion: version });
      return tx.appendWeights(runId, ids, changed);
    });
    crashPoint('recompute');
    // Durable: the trainers hear now, as they hear a group's batch weights, so that they hear
    // every change in commit order (a later group's, told at its commit, may come before the
    // apply below); the feed hears once it is applied.
    if (this.store.run(runId) === run) this.durable(run, version, ids, changed);
    // Applied on the next turn, as the engine applies its groups: the store needs its entries
    // applied in log order (a sample's record claims every entry up to its LSN). A synchronous
    // commit (`store.syncCommits`) can begin and end inside the turn in which an earlier group
    // became durable, before that group's apply (queued as an immediate); applied here at once,
    // the flusher could write the samples moved with this LSN, and the group's batch would then
    // be skipped for them as already held, live and in recovery (docs/store.md, "The write path").
    // Immediates run in the order they were queued, and an earlier group queued its apply before
    // this commit began.
    await new Promise((resolve) => setImmediate(resolve));
    // The run may have been deleted (and made again) while the commit was in flight.
    if (this.store.run(runId) !== run) return 0;
    const started = performance.now();
    // Newly down-weighted (`newly` go below 1 here): those still at 1 after what was applied meanwhile.
    const down = newly.filter((id) => (run.samples.get(id)?.weight ?? 1) >= 1);
    this.store.applyWeights(run, ids, changed, lsn);
    if (version > run.weightsVersion) run.weightsVersion = version;
    run.revision++;
    this.announce(run, version, ids, changed, down, true);
    return performance.now() - started;
  }

  private emit(event: WeightUpdateEvent): void {
    this.emitTo(this.trainerListeners, event);
    weightsPushed.publish(this, event);
    weightsUpdated.publish(this, event);
  }

  private emitTo(listeners: ReadonlyArray<(e: WeightUpdateEvent) => void>, event: WeightUpdateEvent): void {
    for (const l of listeners) {
      try {
        l(event);
      } catch (err) {
        this.log.error({ err }, 'weight listener failed');
      }
    }
  }

  /**
   * Full snapshot: every sample whose weight is not 1, at the run's current weights version, with
   * the batch weights the trainers were told and memory has not applied yet.
   */
  snapshot(run: RunState): WeightUpdateEvent {
    const weights = new Map<string, number>();
    for (const s of run.samples.values()) if (s.weight !== 1) weights.set(s.id, s.weight);
    let version = run.weightsVersion;
    for (const t of this.told.get(run) ?? []) {
      t.ids.forEach((id, i) => {
        const w = t.weights[i] as number;
        if (w === 1) weights.delete(id);
        else weights.set(id, w);
      });
      if (t.version > version) version = t.version;
    }
    return {
      runId: run.info.id,
      version,
      full: true,
      sampleIds: [...weights.keys()],
      weights: [...weights.values()],
      newlyDownweighted: [],
    };
  }

  /** Runs every pending recompute now (used on drain and by tests). */
  async flushAll(): Promise<void> {
    // The recomputes running now first: a commit announced during one asks for another after it.
    await Promise.all([...this.recomputing.values()]);
    const pending = new Set([...this.timers.keys(), ...this.again]);
    this.again.clear();
    for (const runId of pending) {
      clearTimeout(this.timers.get(runId));
      this.timers.delete(runId);
    }
    await Promise.all([...pending].map((r) => this.recompute(r)));
    await Promise.all([...this.recomputing.values()]);
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }
}
