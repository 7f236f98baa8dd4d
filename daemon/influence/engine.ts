/**
 * The influence engine (docs/method.md): a single writer that folds queued batches and query sets
 * into group commits. For each group it scores every batch against the query set in force at the
 * batch's step (onnxruntime MatMul), appends the batches to the store's write-ahead log with their
 * (run, rank) commit markers in one durable transaction, and only then applies the seen /
 * lastStep / S_j / G(z) updates in memory (docs/store.md). Submissions resolve after that, which
 * is what lets ingest acknowledge exactly-once; a submission with a `durable` callback (ingest's
 * Ack) hears as soon as its group is durable. Every group is applied on the next turn of the
 * event loop after its commit, before any further I/O is read. The next group is prepared while one commits.
 */
import { MotiveError, type Logger } from '../shared/index.js';
import { crashPoint } from '../shared/crash-point.js';
import type { RunState, Store } from '../store/index.js';
import type { MatMulKernel } from './matmul-kernel.js';
import { SketchBuffers } from './sketch-decode.js';
import { attribute } from './attribute.js';
import type { BatchSubmission, BatchWeigher, CommitEvent, InfluenceEngineOptions, QuerySubmission, SubmitOutcome } from './engine-types.js';
import { Ahead, type GroupLsns, type Item, type PreparedGroup } from './write-state.js';
import { QueryMatrices } from './query-matrix.js';
import { prepareItems, type PrepareContext } from './prepare.js';
import { projectWeights } from './project-weights.js';
import { writeGroup } from './write-group.js';
import { applyGroup, tellDurable, type ApplyContext } from './apply.js';

export type {
  BatchSubmission,
  BatchWeigher,
  CommitEvent,
  CommitStages,
  InfluenceEngineOptions,
  QuerySubmission,
  SubmitOutcome,
} from './engine-types.js';

/** Groups committing while the next one is prepared. */
const GROUPS_IN_FLIGHT = 2;

/**
 * The engine's facade: the queue and the pump that takes groups from it are here; a group's
 * preparation is in prepare.ts and project-weights.ts, its transaction in write-group.ts, what
 * follows its commit in apply.ts, and the read path (`attribute`) in attribute.ts.
 */
export class InfluenceEngine {
  private readonly store: Store;
  private readonly kernel: MatMulKernel;
  private readonly log: Logger;
  private readonly options: InfluenceEngineOptions;
  private readonly queue: Item[] = [];
  private queueHead = 0;
  private pumping = false;
  private pendingBytes = 0;
  private idle: Promise<void> = Promise.resolve();
  private idleResolve: (() => void) | undefined;
  private readonly listeners: Array<(e: CommitEvent) => void> = [];
  /**
   * What groups prepared but not yet applied will change, so the next group is prepared as if
   * they were applied (write-state.ts).
   */
  private readonly ahead = new Ahead();
  private readonly queryMatrices: QueryMatrices;
  private epoch = 0;
  private groupIds = 0;
  /** Set once the engine stops taking work: every later submission is rejected with it. */
  private refusal: Error | undefined;
  private weigher: BatchWeigher | undefined;
  /**
   * Buffers for decoded batches: ingest decodes into one, and the engine gives it back once the
   * batch is applied (or found a duplicate).
   */
  readonly sketchBuffers = new SketchBuffers();

  constructor(store: Store, kernel: MatMulKernel, log: Logger, options: InfluenceEngineOptions) {
    this.store = store;
    this.kernel = kernel;
    this.log = log;
    this.options = options;
    this.queryMatrices = new QueryMatrices(store);
  }

  /** Where batch weights come from (the weighting service); without one, groups carry none. */
  setWeigher(weigher: BatchWeigher): void {
    this.weigher = weigher;
  }

  /** Subscribes to group commits. */
  onCommit(listener: (e: CommitEvent) => void): void {
    this.listeners.push(listener);
  }

  /** Wire bytes of the items queued or being committed. */
  get queuedBytes(): number {
    return this.pendingBytes;
  }

  /** Items waiting for a group commit. */
  get queueDepth(): number {
    return this.queue.length - this.queueHead;
  }

  /**
   * Queues a batch; resolves once it is committed and applied to memory. `durable`, if given, is
   * called as soon as the batch is durable (committed, or found a duplicate of one that is), before
   * the apply: ingest sends its Ack from there, so an Ack does not wait for its group's apply.
   * The apply then runs on the next turn of the event loop, ahead of any further I/O (so a
   * request a trainer makes after an Ack sees the batch).
   */
  submitBatch(sub: BatchSubmission, durable?: (o: SubmitOutcome) => void): Promise<SubmitOutcome> {
    return new Promise((resolve, reject) => this.enqueue({ kind: 'batch', sub, at: performance.now(), resolve, reject, durable }));
  }

  submitQueries(sub: QuerySubmission): Promise<SubmitOutcome> {
    return new Promise((resolve, reject) => this.enqueue({ kind: 'queries', sub, at: performance.now(), resolve, reject }));
  }

  /** Resolves when everything queued so far is committed. */
  drained(): Promise<void> {
    return this.queueDepth === 0 && !this.pumping ? Promise.resolve() : this.idle;
  }

  /**
   * Stops taking work: rejects with `err` every item not yet taken into a group, and every later
   * submission. Groups already taken still commit; `drained()` then waits for those alone. The
   * daemon calls it when a drain's grace runs out: the rejected batches were never acknowledged,
   * so their trainers resend them to the next daemon.
   */
  refuseQueued(err: Error): void {
    this.refusal ??= err;
    const left = this.queue.splice(this.queueHead);
    this.queue.length = 0;
    this.queueHead = 0;
    for (const item of left) item.reject(err);
  }

  private enqueue(item: Item): void {
    if (this.refusal !== undefined) {
      item.reject(this.refusal);
      return;
    }
    this.pendingBytes += item.sub.bytes;
    let settled = false;
    const settle = (): void => {
      if (settled) return;
      settled = true;
      this.pendingBytes -= item.sub.bytes;
    };
    const { resolve, reject } = item;
    item.resolve = (o) => {
      settle();
      resolve(o);
    };
    item.reject = (e) => {
      settle();
      reject(e);
    };
    this.queue.push(item);
    if (!this.pumping) {
      this.pumping = true;
      this.idle = new Promise((r) => (this.idleResolve = r));
      void this.pump();
    }
  }

  private takeGroup(): Item[] {
    const group: Item[] = [];
    let bytes = 0;
    while (this.queueHead < this.queue.length) {
      const item = this.queue[this.queueHead] as Item;
      if (group.length > 0 && bytes + item.sub.bytes > this.options.maxGroupBytes) break;
      group.push(item);
      bytes += item.sub.bytes;
      this.queueHead++;
    }
    if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue.splice(0, this.queueHead);
      this.queueHead = 0;
    }
    return group;
  }

  private async pump(): Promise<void> {
    const inFlight: Array<Promise<void>> = [];
    try {
      for (;;) {
        if (this.queueDepth === 0) {
          // Nothing to prepare: wait for a commit; stop only when none is left (checked and
          // left synchronously, so an item enqueued meanwhile always finds a running pump).
          const next = inFlight.shift();
          if (next === undefined) break;
          await next;
          continue;
        }
        const group = this.takeGroup();
        let prepared: PreparedGroup;
        try {
          // Bound memory: wait while the store holds too many samples not yet flushed.
          await this.store.room();
          if (this.refusal !== undefined) {
            for (const item of group) item.reject(this.refusal);
            continue;
          }
          prepared = await this.prepare(group, performance.now());
        } catch (err) {
          this.log.error({ err }, 'group prepare failed');
          // The failed group may have left its seqs, query sets and samples in `ahead`: let the
          // groups before it finish, then forget what was assumed, so a resent batch is counted.
          await Promise.allSettled(inFlight.splice(0));
          this.forgetAhead();
          for (const item of group) item.reject(err);
          continue;
        }
        inFlight.push(this.commitGroup(prepared));
        if (inFlight.length >= GROUPS_IN_FLIGHT) await inFlight.shift();
      }
    } finally {
      this.pumping = false;
      this.idleResolve?.();
    }
  }

  /** Voids every group prepared so far (their commits will refuse) and what they assumed. */
  private forgetAhead(): void {
    this.epoch++;
    this.ahead.clear();
    this.store.jobs.forgetAhead();
  }

  /** Prepares a group (prepare.ts) and projects its batch weights (project-weights.ts). */
  private async prepare(group: readonly Item[], takenAt: number): Promise<PreparedGroup> {
    const ctx: PrepareContext = {
      store: this.store,
      kernel: this.kernel,
      ahead: this.ahead,
      queryMatrices: this.queryMatrices,
      maxSamplesPerRun: this.options.maxSamplesPerRun,
    };
    const prepared = await prepareItems(ctx, group);
    const id = ++this.groupIds;
    const weights = projectWeights(this.ahead, this.weigher, prepared.items, id);
    return { ...prepared, epoch: this.epoch, id, weights, takenAt, preparedAt: performance.now() };
  }

  /**
   * Commits a prepared group: one durable transaction appends every batch to the store's log
   * with its commit marker, the new query sets and the runs' counters (write-group.ts). Then
   * applies it to memory (in group order, exactly as recovery would replay it) and resolves its
   * items (apply.ts).
   */
  private async commitGroup(group: PreparedGroup): Promise<void> {
    const live = group.items.filter((p) => !(p.kind === 'batch' && p.rejected));
    const startedAt = performance.now();
    let lsns: GroupLsns;
    let txAt = startedAt;
    try {
      lsns = await this.store.commit((tx) => {
        txAt = performance.now();
        if (group.epoch !== this.epoch) throw new MotiveError('MOTIVE_STORE_COMMIT', 'an earlier group commit failed');
        return writeGroup(tx, this.store.jobs, group, live);
      });
    } catch (err) {
      if (group.epoch === this.epoch) {
        this.log.error({ err }, 'group commit failed');
        // Groups prepared after this one assumed it: void them and forget what they assumed.
        this.forgetAhead();
      }
      for (const p of live) p.item.reject(err);
      return;
    }
    const durableAt = performance.now();
    crashPoint(live.some((p) => p.kind === 'queries' && p.record !== undefined) ? 'query' : 'ingest');
    // Durable now: the batches that wait for that hear first, and the group is applied on the
    // next turn, after their Acks have left (see submitBatch).
    const trainersTold = tellDurable(this.applyContext(), group, live, lsns, txAt, durableAt);
    // Immediates run in the order they were queued, and groups reach this point in commit order:
    // so they are applied in commit order.
    await new Promise((resolve) => setImmediate(resolve));
    applyGroup(this.applyContext(), { group, live, lsns, startedAt, txAt, durableAt, trainersTold });
  }

  /** What the steps after a commit use; the weigher is read when they run. */
  private applyContext(): ApplyContext {
    const { store, ahead, sketchBuffers, weigher, listeners, log } = this;
    return { store, ahead, sketchBuffers, weigher, listeners, log, source: this };
  }

  /**
   * Scores a new query against every stored G(z) of a run (the read path, attribute.ts): the best
   * `limit`, best first, exactly.
   */
  attribute(run: RunState, query: Float32Array, limit: number): Promise<Array<{ id: string; score: number }>> {
    return attribute({ store: this.store, kernel: this.kernel, scanChunkSamples: this.options.scanChunkSamples }, run, query, limit);
  }
}
