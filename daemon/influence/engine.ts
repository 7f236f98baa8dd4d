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
import { MotiveError, normalizeRows, trace, type Logger } from '../shared/index.js';
import { crashPoint } from '../shared/crash-point.js';
import type { AnswerPlan, QuerySetRecord, ReportPlan, RunState, SampleState, Store } from '../store/index.js';
import type { MatMulKernel } from './matmul-kernel.js';
import { allFinite, transpose } from './math.js';
import { overflowReason } from './finite-check.js';
import { SketchBuffers } from './sketch-decode.js';
import { claimRows, releaseClaims } from './sidecar-rows.js';
import { attribute } from './attribute.js';
import type { BatchSubmission, BatchWeigher, CommitEvent, InfluenceEngineOptions, QuerySubmission, SubmitOutcome } from './engine-types.js';

export type {
  BatchSubmission,
  BatchWeigher,
  CommitEvent,
  CommitStages,
  InfluenceEngineOptions,
  QuerySubmission,
  SubmitOutcome,
} from './engine-types.js';

type Item =
  | {
      kind: 'batch';
      sub: BatchSubmission;
      at: number;
      resolve: (o: SubmitOutcome) => void;
      reject: (e: unknown) => void;
      durable: ((o: SubmitOutcome) => void) | undefined;
    }
  | { kind: 'queries'; sub: QuerySubmission; at: number; resolve: (o: SubmitOutcome) => void; reject: (e: unknown) => void };

/** A prepared batch that is neither scored nor applied to samples: a duplicate, or a side-car report. */
const UNSCORED = { samples: undefined, products: undefined, querySet: undefined, rejected: false } as const;

interface PreparedBatch {
  readonly item: Extract<Item, { kind: 'batch' }>;
  readonly run: RunState;
  readonly duplicate: boolean;
  /** Each id's sample when prepared (undefined: new to the run, created when applied). */
  readonly samples: Array<SampleState | undefined> | undefined;
  /** [n × m] products with the query set in force, or undefined before the first query set. */
  products: Float32Array | undefined;
  readonly querySet: QuerySetRecord | undefined;
  /** Rejected while preparing (products overflow): neither committed nor applied. */
  rejected: boolean;
  /** A side-car report's jobs (then nothing else of the batch is logged or applied). */
  readonly report?: ReportPlan;
  /** A worker batch's answered jobs. */
  readonly answer?: AnswerPlan | undefined;
}

/** A sample as it will be once every prepared group is applied (score total, seen, weight). */
interface Projected {
  total: number;
  seen: number;
  weight: number;
  /** Its latest features (a copy), from the batches ahead or the run; undefined: none. */
  features: Float32Array | undefined;
  /** The last prepared group that touched it: the entry is dropped once that group is applied. */
  group: number;
}

/** A run's batch weights in one group: logged in its transaction, applied and announced after. */
interface GroupWeights {
  readonly ids: string[];
  readonly weights: Float32Array;
  readonly newly: string[];
}

interface PreparedQueries {
  readonly item: Extract<Item, { kind: 'queries' }>;
  readonly run: RunState;
  readonly record: QuerySetRecord | undefined;
}

interface PreparedGroup {
  readonly items: Array<PreparedBatch | PreparedQueries>;
  /** Query ids new to each run in this group, in first-seen order: their columns follow the run's. */
  readonly newQueryIds: Map<RunState, string[]>;
  /** Each run's query ids once this group is applied (what its commit persists). */
  readonly queryIds: Map<RunState, string[]>;
  /** The engine's failure epoch when prepared: a group prepared before a failed commit is void. */
  readonly epoch: number;
  /** Preparation order, for the projected samples it leaves in `ahead.projected`. */
  readonly id: number;
  /** Each run's batch weights, logged in this group's transaction. */
  readonly weights: Map<RunState, GroupWeights>;
  /** performance.now() when the group was taken from the queue, and when its preparation ended. */
  readonly takenAt: number;
  readonly preparedAt: number;
}

/** Groups committing while the next one is prepared. */
const GROUPS_IN_FLIGHT = 2;
/** Transposed query matrices cached (the sets used last, across runs). */
const TRANSPOSED_KEPT = 16;

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
  private readonly transposed = new Map<QuerySetRecord, Float32Array>();
  private readonly listeners: Array<(e: CommitEvent) => void> = [];
  /**
   * What groups prepared but not yet applied will change, so the next group is prepared as if
   * they were applied: the last seq per (run, rank), query sets, new query ids and new samples.
   */
  private readonly ahead = {
    seqs: new Map<string, number>(),
    querySets: new Map<RunState, QuerySetRecord[]>(),
    queryIds: new Map<RunState, string[]>(),
    samples: new Map<RunState, Set<string>>(),
    /** Every sample a prepared, unapplied group touches, as it will be once they are applied. */
    projected: new Map<RunState, Map<string, Projected>>(),
  };
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
    this.ahead.seqs.clear();
    this.ahead.querySets.clear();
    this.ahead.queryIds.clear();
    this.ahead.samples.clear();
    this.ahead.projected.clear();
    this.store.jobs.forgetAhead();
  }

  private runFor(runId: string): RunState {
    const run = this.store.run(runId);
    if (run === undefined) throw new MotiveError('MOTIVE_INGEST_INTERNAL', `run ${runId} is not registered`);
    return run;
  }

  /** Dedup, query-set resolution and the products, as if every group ahead were applied. */
  private async prepare(group: Item[], takenAt: number): Promise<PreparedGroup> {
    const ahead = this.ahead;
    const newQueryIds = new Map<RunState, string[]>();
    const items: Array<PreparedBatch | PreparedQueries> = [];
    const products: Array<Promise<Float32Array> | undefined> = [];
    /** Worker batches' claimed jobs, released again where the batch is rejected while prepared. */
    const claims = new Map<Item, AnswerPlan>();
    for (const item of group) {
      let run: RunState;
      try {
        run = this.runFor(item.sub.runId);
      } catch (err) {
        item.reject(err);
        continue;
      }
      const pendingQs = ahead.querySets.get(run) ?? [];
      if (item.kind === 'queries') {
        const dup = run.hasQueryVersion(item.sub.version) || pendingQs.some((q) => q.version === item.sub.version);
        let record: QuerySetRecord | undefined;
        if (!dup) {
          const m = item.sub.ids.length;
          const sketches = item.sub.sketches;
          if (run.info.scoreMode === 'cosine') normalizeRows(sketches, m, run.info.dim);
          let fresh = newQueryIds.get(run);
          if (fresh === undefined) newQueryIds.set(run, (fresh = []));
          let freshAhead = ahead.queryIds.get(run);
          if (freshAhead === undefined) ahead.queryIds.set(run, (freshAhead = []));
          const columns = new Int32Array(m);
          item.sub.ids.forEach((id, j) => {
            let col = run.queryIndex.get(id);
            if (col === undefined) {
              let at = freshAhead.indexOf(id);
              if (at < 0) {
                at = freshAhead.push(id) - 1;
                fresh.push(id);
              }
              col = run.queryIds.length + at;
            }
            columns[j] = col;
          });
          record = {
            version: item.sub.version,
            step: item.sub.step,
            ids: item.sub.ids,
            groups: item.sub.groups,
            columns,
            sketches,
            receivedAtMs: Date.now(),
          };
          pendingQs.push(record);
          ahead.querySets.set(run, pendingQs);
        }
        items.push({ item, run, record });
        products.push(undefined);
        continue;
      }
      let sub = item.sub;
      const key = `${sub.runId}\u0000${sub.rank}`;
      let answer: AnswerPlan | undefined;
      if (sub.jobIds !== undefined) {
        // A worker's batch: rows whose jobs are answered already are cut (sidecar-rows.ts).
        const claimed = claimRows(this.store, run, item);
        if (claimed === 'rejected') continue;
        answer = claimed;
        if (answer === undefined) {
          items.push({ item, run, duplicate: true, ...UNSCORED });
          products.push(undefined);
          continue;
        }
        claims.set(item, answer);
        sub = item.sub;
      } else {
        const last = ahead.seqs.get(key) ?? run.commits.get(sub.rank) ?? 0;
        if (sub.seq <= last) {
          items.push({ item, run, duplicate: true, ...UNSCORED });
          products.push(undefined);
          continue;
        }
        if (sub.deferred === true) {
          ahead.seqs.set(key, sub.seq);
          const report = this.store.jobs.planReport(run.info.id, sub.step, sub.lr, sub.sampleIds);
          items.push({ item, run, duplicate: false, ...UNSCORED, report });
          products.push(undefined);
          continue;
        }
      }
      if (sub.normalized === true && run.info.scoreMode !== 'cosine') {
        // The stream decoded for the run it attached to; a run replaced since scores otherwise.
        item.reject(new MotiveError('MOTIVE_INGEST_INTERNAL', `normalised sketches for run ${run.info.id}, which scores by dot product`));
        continue;
      }
      let fresh = ahead.samples.get(run);
      if (fresh === undefined) ahead.samples.set(run, (fresh = new Set()));
      // One lookup per id: a sample known now stays in the run until the batch is applied (a
      // deleted run is replaced by a new RunState, never emptied).
      const ids = sub.sampleIds;
      const samples = new Array<SampleState | undefined>(ids.length);
      let added = 0;
      for (let i = 0; i < ids.length; i++) {
        const id = ids[i] as string;
        const sample = run.samples.get(id);
        samples[i] = sample;
        if (sample === undefined && !fresh.has(id)) added++;
      }
      if (added > 0 && run.samples.size + fresh.size + added > this.options.maxSamplesPerRun) {
        // Duplicate ids within the batch may have been counted twice: count exactly.
        const distinct = new Set(ids.filter((id, i) => samples[i] === undefined && !fresh.has(id))).size;
        if (run.samples.size + fresh.size + distinct > this.options.maxSamplesPerRun) {
          item.reject(
            new MotiveError('MOTIVE_INGEST_LIMIT_SAMPLES', `run ${run.info.id} is limited to ${this.options.maxSamplesPerRun} samples`),
          );
          continue;
        }
      }
      if (added > 0) for (let i = 0; i < ids.length; i++) if (samples[i] === undefined) fresh.add(ids[i] as string);
      if (answer === undefined) ahead.seqs.set(key, sub.seq);
      const n = sub.sampleIds.length;
      const k = run.info.dim;
      if (run.info.scoreMode === 'cosine' && sub.normalized !== true) normalizeRows(sub.sketches, n, k);
      const qs = querySetAt(run, pendingQs, sub.step);
      // Queued now, awaited below: onnxruntime-node runs each product on a later turn of this
      // thread (with its intra-op threads), so the products of a group run back to back.
      products.push(qs === undefined ? undefined : this.kernel.multiply(sub.sketches, n, k, this.queryMatrix(run, qs, k), qs.ids.length));
      items.push({ item, run, duplicate: false, samples, products: undefined, querySet: qs, rejected: false, answer });
    }
    const done = await Promise.all(products.map((p) => p ?? Promise.resolve(undefined)));
    items.forEach((p, i) => {
      if ('record' in p || p.duplicate || p.report !== undefined) return;
      p.products = done[i];
      // Under `dot`, finite sketches can still overflow float32 products: never store Inf.
      if (p.products !== undefined && !allFinite(p.products)) {
        p.rejected = true;
        p.item.reject(new MotiveError('MOTIVE_INGEST_BATCH_NONFINITE', 'products with the queries overflow float32'));
        return;
      }
      const overflow = overflowReason(p.run, p.item.sub.lr, p.item.sub.sketches, p.products, p.querySet?.columns, p.samples);
      if (overflow !== undefined) {
        p.rejected = true;
        p.item.reject(new MotiveError('MOTIVE_INGEST_BATCH_OVERFLOW', overflow));
      }
    });
    releaseClaims(this.store, claims, items);
    const queryIds = new Map<RunState, string[]>();
    for (const p of items) if (!queryIds.has(p.run)) queryIds.set(p.run, [...p.run.queryIds, ...(ahead.queryIds.get(p.run) ?? [])]);
    const id = ++this.groupIds;
    const weights = this.projectWeights(items, id);
    return { items, newQueryIds, queryIds, epoch: this.epoch, id, weights, takenAt, preparedAt: performance.now() };
  }

  /**
   * Projects every sample the group's batches touch to its state once the group is applied (on
   * top of the groups prepared before it), exactly as the apply will add to it, and, for runs
   * whose batch weights apply, the weights that move with it. Nothing without a weigher that
   * gives batch weights.
   */
  private projectWeights(items: ReadonlyArray<PreparedBatch | PreparedQueries>, group: number): Map<RunState, GroupWeights> {
    const out = new Map<RunState, GroupWeights>();
    const weigher = this.weigher;
    if (weigher?.batchUpdates !== true) return out;
    const touched = new Map<RunState, Map<string, Projected>>();
    for (const p of items) {
      if ('record' in p || p.duplicate || p.rejected || p.report !== undefined) continue;
      const run = p.run;
      let projected = this.ahead.projected.get(run);
      if (projected === undefined) this.ahead.projected.set(run, (projected = new Map<string, Projected>()));
      let mine = touched.get(run);
      if (mine === undefined) touched.set(run, (mine = new Map<string, Projected>()));
      const sub = p.item.sub;
      const ids = sub.sampleIds;
      const products = p.products;
      const m = products === undefined ? 0 : (p.querySet?.ids.length ?? 0);
      for (let i = 0; i < ids.length; i++) {
        const id = ids[i] as string;
        let e = projected.get(id);
        if (e === undefined) {
          const s = p.samples?.[i];
          e = {
            total: s?.total ?? 0,
            seen: s?.seen ?? 0,
            weight: s?.weight ?? 1,
            features: run.features.size === 0 ? undefined : run.features.get(id)?.slice(),
            group,
          };
          projected.set(id, e);
        }
        if (sub.features !== undefined) {
          const nf = sub.features.length / ids.length;
          e.features = sub.features.slice(i * nf, (i + 1) * nf);
        }
        if (products !== undefined) {
          // The apply's own sum, in its order (store.applyBatch).
          let t = 0;
          for (let j = 0; j < m; j++) t += sub.lr * (products[i * m + j] as number);
          e.total += t;
        }
        e.seen++;
        e.group = group;
        mine.set(id, e);
      }
    }
    for (const [run, mine] of touched) {
      // A query set committed after the last recompute, ahead or in this group changes every
      // score: no batch weights until the recompute after it.
      if ((this.ahead.querySets.get(run)?.length ?? 0) > 0 || (this.ahead.queryIds.get(run)?.length ?? 0) > 0) continue;
      const queries = run.queryIds.length;
      const policy = weigher.batchPolicy(run, queries);
      if (policy === undefined || queries === 0) continue;
      const ids: string[] = [];
      const moved: number[] = [];
      const newly: string[] = [];
      for (const [id, e] of mine) {
        const w = policy(e.total / queries, e.seen, e.features);
        if (!weigher.moves(e.weight, w)) continue;
        if (e.weight >= 1 && w < 1) newly.push(id);
        ids.push(id);
        moved.push(w);
        e.weight = w;
      }
      if (ids.length > 0) out.set(run, { ids, weights: Float32Array.from(moved), newly });
    }
    return out;
  }

  /**
   * Commits a prepared group: one durable transaction appends every batch to the store's log
   * with its commit marker, the new query sets and the runs' counters. Then applies it to memory
   * (in group order, exactly as recovery would replay it) and resolves its items.
   */
  private async commitGroup(g: PreparedGroup): Promise<void> {
    const live = g.items.filter((p) => !('rejected' in p && p.rejected));
    const started = performance.now();
    let lsns: Map<PreparedBatch, number>;
    /** Each run's batch weights: the log entry and the weights version they were committed at. */
    const weightLsns = new Map<RunState, { lsn: number; version: number }>();
    let txAt = started;
    try {
      lsns = await this.store.commit((tx) => {
        txAt = performance.now();
        if (g.epoch !== this.epoch) throw new MotiveError('MOTIVE_STORE_COMMIT', 'an earlier group commit failed');
        const out = new Map<PreparedBatch, number>();
        const counters = new Map<RunState, { addBatches: number; addSketches: number; lastStep: number }>();
        for (const p of live) {
          const c = counters.get(p.run) ?? { addBatches: 0, addSketches: 0, lastStep: 0 };
          counters.set(p.run, c);
          if ('record' in p) {
            if (p.record !== undefined) tx.putQuerySet(p.run.info.id, p.record);
            continue;
          }
          if (p.duplicate) continue;
          const sub = p.item.sub;
          if (p.report !== undefined) {
            tx.putCommit(sub.runId, sub.rank, sub.seq);
            for (const w of this.store.jobs.reportWrites(p.report)) tx.write(w);
            continue;
          }
          const lsn = tx.appendBatch(sub.runId, {
            step: sub.step,
            lr: sub.lr,
            sampleIds: sub.sampleIds,
            wire: sub.wire,
            wireDtype: sub.wireDtype,
            querySet: p.querySet,
            products: p.products,
          });
          out.set(p, lsn);
          if (sub.features !== undefined)
            tx.putFeatures(sub.runId, sub.sampleIds, sub.features, sub.features.length / sub.sampleIds.length);
          if (p.answer !== undefined) for (const w of this.store.jobs.answerWrites(p.answer)) tx.write(w);
          else tx.putCommit(sub.runId, sub.rank, sub.seq);
          c.addBatches++;
          c.addSketches += sub.sampleIds.length;
          if (sub.step > c.lastStep) c.lastStep = sub.step;
        }
        // After the batches, as recovery replays them: the weights name samples they create.
        for (const [run, w] of g.weights) {
          const version = tx.weightsVersion(run) + 1;
          weightLsns.set(run, { lsn: tx.appendWeights(run.info.id, w.ids, w.weights), version });
        }
        for (const [run, c] of counters) {
          const version = weightLsns.get(run)?.version;
          tx.updateRun(run, {
            ...c,
            queryIds: g.queryIds.get(run) ?? run.queryIds,
            ...(version === undefined ? {} : { weightsVersion: version }),
          });
        }
        return out;
      });
    } catch (err) {
      if (g.epoch === this.epoch) {
        this.log.error({ err }, 'group commit failed');
        // Groups prepared after this one assumed it: void them and forget what they assumed.
        this.forgetAhead();
      }
      for (const p of live) p.item.reject(err);
      return;
    }
    const now = performance.now();
    crashPoint(live.some((p) => 'record' in p && p.record !== undefined) ? 'query' : 'ingest');
    // Durable now: the batches that wait for that hear first, and the group is applied on the
    // next turn, after their Acks have left (see submitBatch).
    let trainersTold = false;
    for (const p of live) {
      if ('record' in p) continue;
      if (trace.on && !p.duplicate) trace.event('batch', p.item.sub.rank, p.item.sub.seq, p.item.at, g.takenAt, g.preparedAt, txAt, now);
      if (p.item.durable === undefined) continue;
      trainersTold = true;
      try {
        p.item.durable(p.duplicate ? 'duplicate' : 'committed');
      } catch (err) {
        this.log.error({ err }, 'durable callback failed');
      }
    }
    // The batch weights go out with the Acks, after them on each stream.
    if (trainersTold && this.weigher !== undefined)
      for (const [run, w] of weightLsns) {
        const weights = g.weights.get(run) as GroupWeights;
        this.weigher.durable(run, w.version, weights.ids, weights.weights);
      }
    // Immediates run in the order they were queued, and groups reach this point in commit order:
    // so they are applied in commit order.
    await new Promise((resolve) => setImmediate(resolve));
    this.apply(g, live, lsns, weightLsns, now - started, { queuedMs: txAt - g.preparedAt, durableMs: now - txAt }, trainersTold);
  }

  private apply(
    g: PreparedGroup,
    live: ReadonlyArray<PreparedBatch | PreparedQueries>,
    lsns: Map<PreparedBatch, number>,
    weightLsns: Map<RunState, { lsn: number; version: number }>,
    commitMs: number,
    commitStages: { queuedMs: number; durableMs: number },
    trainersTold: boolean,
  ): void {
    const applyStart = performance.now();
    const events = new Map<
      string,
      { batches: number; sketches: number; bytes: number; qs: QuerySetRecord[]; ids: Array<readonly string[]>; waitMs: number[] }
    >();
    for (const [run, ids] of g.newQueryIds) {
      for (const id of ids) run.queryColumn(id);
      const ahead = this.ahead.queryIds.get(run);
      if (ahead !== undefined) {
        ahead.splice(0, ids.length);
        if (ahead.length === 0) this.ahead.queryIds.delete(run);
      }
    }
    for (const p of live) {
      const ev = events.get(p.run.info.id) ?? { batches: 0, sketches: 0, bytes: 0, qs: [], ids: [], waitMs: [] };
      events.set(p.run.info.id, ev);
      p.run.revision++;
      if ('record' in p) {
        if (p.record === undefined) continue;
        p.run.addQuerySet(p.record);
        const pending = this.ahead.querySets.get(p.run);
        const at = pending?.indexOf(p.record) ?? -1;
        if (pending !== undefined && at >= 0) pending.splice(at, 1);
        if (pending?.length === 0) this.ahead.querySets.delete(p.run);
        ev.qs.push(p.record);
        continue;
      }
      const sub = p.item.sub;
      if (p.duplicate) {
        this.sketchBuffers.give(sub.sketches);
        this.sketchBuffers.giveBytes(sub.wire);
        continue;
      }
      if (p.report !== undefined) {
        this.store.jobs.applyReport(p.report);
        p.run.commits.set(sub.rank, sub.seq);
        const key = `${sub.runId}\u0000${sub.rank}`;
        if (this.ahead.seqs.get(key) === sub.seq) this.ahead.seqs.delete(key);
        continue;
      }
      const lsn = lsns.get(p) as number;
      this.store.applyBatch(
        p.run,
        {
          sampleIds: sub.sampleIds,
          step: sub.step,
          lr: sub.lr,
          sketches: sub.sketches,
          querySet: p.querySet,
          products: p.products,
          samples: p.samples,
        },
        lsn,
      );
      this.sketchBuffers.give(sub.sketches);
      this.sketchBuffers.giveBytes(sub.wire);
      if (sub.features !== undefined && sub.features.length === sub.sampleIds.length * p.run.features.width)
        p.run.features.setRows(sub.sampleIds, sub.features);
      if (p.answer !== undefined) this.store.jobs.applyAnswer(p.answer);
      else {
        p.run.commits.set(sub.rank, sub.seq);
        const key = `${sub.runId}\u0000${sub.rank}`;
        if (this.ahead.seqs.get(key) === sub.seq) this.ahead.seqs.delete(key);
      }
      const fresh = this.ahead.samples.get(p.run);
      if (fresh !== undefined && fresh.size > 0) {
        // Only ids new when prepared can be in `fresh`.
        const known = p.samples;
        sub.sampleIds.forEach((id, i) => {
          if (known?.[i] === undefined) fresh.delete(id);
        });
        if (fresh.size === 0) this.ahead.samples.delete(p.run);
      }
      p.run.batches++;
      p.run.sketches += sub.sampleIds.length;
      if (sub.step > p.run.lastStep) p.run.lastStep = sub.step;
      ev.batches++;
      ev.sketches += sub.sampleIds.length;
      ev.ids.push(sub.sampleIds);
      ev.bytes += sub.bytes;
      ev.waitMs.push(g.takenAt - p.item.at);
    }
    for (const [run, w] of weightLsns) {
      const weights = g.weights.get(run) as GroupWeights;
      this.store.applyWeights(run, weights.ids, weights.weights, w.lsn);
      if (w.version > run.weightsVersion) run.weightsVersion = w.version;
      run.revision++;
    }
    // The group's own projections, found through its batches' ids: the map also holds the
    // projections of every group prepared after it, and walking all of it per group cost 5 % of
    // the main thread at 32 batches in flight.
    for (const p of live) {
      if ('record' in p || p.duplicate || p.report !== undefined) continue;
      const projected = this.ahead.projected.get(p.run);
      if (projected === undefined) continue;
      for (const id of p.item.sub.sampleIds) if (projected.get(id)?.group === g.id) projected.delete(id);
      if (projected.size === 0) this.ahead.projected.delete(p.run);
    }
    const applyMs = performance.now() - applyStart;
    for (const p of live)
      p.item.resolve('record' in p ? (p.record === undefined ? 'duplicate' : 'committed') : p.duplicate ? 'duplicate' : 'committed');
    if (weightLsns.size > 0 && this.weigher !== undefined) {
      const weigher = this.weigher;
      // Queued after the resolutions above, so each batch's Ack is written to its stream before
      // the WeightUpdate that carries its weights (where the trainers did not have them with the
      // Acks already; the live feed and metrics hear of them here, applied).
      queueMicrotask(() => {
        for (const [run, w] of weightLsns) {
          const weights = g.weights.get(run) as GroupWeights;
          weigher.announce(run, w.version, weights.ids, weights.weights, weights.newly, trainersTold);
        }
      });
    }
    for (const [runId, ev] of events) {
      if (ev.batches === 0 && ev.qs.length === 0) continue;
      const run = this.store.run(runId);
      const event: CommitEvent = {
        runId,
        batches: ev.batches,
        sketches: ev.sketches,
        bytes: ev.bytes,
        lastStep: run?.lastStep ?? 0,
        querySets: ev.qs,
        sampleIds: ev.ids,
        commitMs,
        stages: { waitMs: ev.waitMs, scoreMs: g.preparedAt - g.takenAt, ...commitStages, applyMs },
      };
      for (const l of this.listeners) {
        try {
          l(event);
        } catch (err) {
          this.log.error({ err }, 'commit listener failed');
        }
      }
    }
  }

  /**
   * Qᵀ [k × m] of a query set, cached for the {@link TRANSPOSED_KEPT} sets used last. A set older
   * than the run's newest few has its sketches read back from the store.
   */
  private queryMatrix(run: RunState, qs: QuerySetRecord, k: number): Float32Array {
    let t = this.transposed.get(qs);
    if (t === undefined) {
      t = transpose(qs.sketches ?? this.store.querySketches(run.info.id, qs.version), qs.ids.length, k);
      if (this.transposed.size >= TRANSPOSED_KEPT) this.transposed.delete(this.transposed.keys().next().value as QuerySetRecord);
    } else this.transposed.delete(qs);
    // Re-inserted: the map's order is the order of last use.
    this.transposed.set(qs, t);
    return t;
  }

  /**
   * Scores a new query against every stored G(z) of a run (the read path, attribute.ts): the best
   * `limit`, best first, exactly.
   */
  attribute(run: RunState, query: Float32Array, limit: number): Promise<Array<{ id: string; score: number }>> {
    return attribute({ store: this.store, kernel: this.kernel, scanChunkSamples: this.options.scanChunkSamples }, run, query, limit);
  }
}

/** Query set in force at `step` among the committed history and the ones ahead of it. */
function querySetAt(run: RunState, pending: readonly QuerySetRecord[], step: number): QuerySetRecord | undefined {
  let best = run.querySetAt(step);
  for (const qs of pending) {
    if (qs.step > step) continue;
    if (best === undefined || qs.step > best.step || (qs.step === best.step && qs.version > best.version)) best = qs;
  }
  return best;
}
