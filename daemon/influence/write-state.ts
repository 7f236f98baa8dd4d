/**
 * The write path's state (docs/architecture.md, "The influence engine"): the queue items, the
 * prepared group as it goes from `prepare` (prepare.ts) through the commit (write-group.ts) to the
 * apply (apply.ts), and `Ahead`, what the groups prepared but not yet applied will change.
 */
import type { AnswerPlan, QuerySetRecord, ReportPlan, RunState, SampleState } from '../store/index.js';
import type { BatchSubmission, QuerySubmission, SubmitOutcome } from './engine-types.js';

/** A queued batch: settled once its group is applied; `durable` hears once it is durable. */
export interface BatchItem {
  readonly kind: 'batch';
  /** Cut to the rows of open jobs when a worker batch's preparation finds some answered already. */
  sub: BatchSubmission;
  readonly at: number;
  resolve: (o: SubmitOutcome) => void;
  reject: (e: unknown) => void;
  readonly durable: ((o: SubmitOutcome) => void) | undefined;
}

/** A queued query set. */
export interface QueriesItem {
  readonly kind: 'queries';
  readonly sub: QuerySubmission;
  readonly at: number;
  resolve: (o: SubmitOutcome) => void;
  reject: (e: unknown) => void;
}

export type Item = BatchItem | QueriesItem;

export interface PreparedBatch {
  readonly kind: 'batch';
  readonly item: BatchItem;
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

export interface PreparedQueries {
  readonly kind: 'queries';
  readonly item: QueriesItem;
  readonly run: RunState;
  /** The query set to commit; undefined: a version the run has (or has ahead) already. */
  readonly record: QuerySetRecord | undefined;
}

export type Prepared = PreparedBatch | PreparedQueries;

/** A batch whose samples the group scores and applies: neither a duplicate nor a side-car report. */
export function appliesSamples(p: Prepared): p is PreparedBatch {
  return p.kind === 'batch' && !p.duplicate && p.report === undefined;
}

/** A prepared batch that is neither scored nor applied to samples: a duplicate, or a side-car report. */
export function unscored(item: BatchItem, run: RunState, duplicate: boolean): PreparedBatch {
  return { kind: 'batch', item, run, duplicate, samples: undefined, products: undefined, querySet: undefined, rejected: false };
}

/** A sample as it will be once every prepared group is applied (score total, seen, weight). */
export interface Projected {
  total: number;
  seen: number;
  weight: number;
  /** Its latest features (a copy), from the batches ahead or the run; undefined: none. */
  features: Float32Array | undefined;
  /** The last prepared group that touched it: the entry is dropped once that group is applied. */
  group: number;
}

/** A run's batch weights in one group: logged in its transaction, applied and announced after. */
export interface GroupWeights {
  readonly ids: string[];
  readonly weights: Float32Array;
  readonly newly: string[];
}

export interface PreparedGroup {
  readonly items: Prepared[];
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

/** Where a group's commit put its entries: each batch's log entry, each run's batch weights'. */
export interface GroupLsns {
  readonly batches: Map<PreparedBatch, number>;
  /** Each run's batch weights: the log entry and the weights version they were committed at. */
  readonly weights: Map<RunState, { lsn: number; version: number }>;
}

/** The key of a (run, rank) commit marker in {@link Ahead.seqs}. */
export function seqKey(runId: string, rank: number): string {
  return `${runId}\u0000${rank}`;
}

/** Most dropped projections kept for reuse (a few groups' worth of batches of 256). */
const SPARE_PROJECTIONS = 16384;

/**
 * What groups prepared but not yet applied will change, so the next group is prepared as if
 * they were applied: the last seq per (run, rank), query sets, new query ids and new samples.
 * The apply takes each group's share out again (the `applied…` methods).
 */
export class Ahead {
  readonly seqs = new Map<string, number>();
  readonly querySets = new Map<RunState, QuerySetRecord[]>();
  readonly queryIds = new Map<RunState, string[]>();
  readonly samples = new Map<RunState, Set<string>>();
  /** Every sample a prepared, unapplied group touches, as it will be once they are applied. */
  readonly projected = new Map<RunState, Map<string, Projected>>();
  /**
   * Projections dropped by the apply, reused by the next groups' (project-weights.ts): one per
   * sample a group touches lived through the scavenges of the groups in flight and died old.
   */
  readonly spareProjections: Projected[] = [];

  /** Forgets everything assumed (the groups that assumed it are void). */
  clear(): void {
    this.seqs.clear();
    this.querySets.clear();
    this.queryIds.clear();
    this.samples.clear();
    this.projected.clear();
  }

  /** The first `count` query ids ahead of `run` now have their columns. */
  appliedQueryIds(run: RunState, count: number): void {
    const ahead = this.queryIds.get(run);
    if (ahead === undefined) return;
    ahead.splice(0, count);
    if (ahead.length === 0) this.queryIds.delete(run);
  }

  appliedQuerySet(run: RunState, record: QuerySetRecord): void {
    const pending = this.querySets.get(run);
    const at = pending?.indexOf(record) ?? -1;
    if (pending !== undefined && at >= 0) pending.splice(at, 1);
    if (pending?.length === 0) this.querySets.delete(run);
  }

  /** The (run, rank) marker is `seq` in the run now; a later group's seq stays. */
  appliedSeq(runId: string, rank: number, seq: number): void {
    const key = seqKey(runId, rank);
    if (this.seqs.get(key) === seq) this.seqs.delete(key);
  }

  /** The ids of a batch are in the run now; `known` are its samples when it was prepared. */
  appliedSamples(run: RunState, ids: readonly string[], known: ReadonlyArray<SampleState | undefined> | undefined): void {
    const fresh = this.samples.get(run);
    if (fresh === undefined || fresh.size === 0) return;
    // Only ids new when prepared can be in `fresh`.
    ids.forEach((id, i) => {
      if (known?.[i] === undefined) fresh.delete(id);
    });
    if (fresh.size === 0) this.samples.delete(run);
  }

  /** Drops the projections that group `group` left last, found through its batch's ids. */
  appliedProjections(run: RunState, ids: readonly string[], group: number): void {
    const projected = this.projected.get(run);
    if (projected === undefined) return;
    const spare = this.spareProjections;
    for (const id of ids) {
      const e = projected.get(id);
      if (e?.group !== group) continue;
      projected.delete(id);
      // No one holds it now: the groups whose projections named it are all prepared.
      if (spare.length < SPARE_PROJECTIONS) {
        e.features = undefined;
        spare.push(e);
      }
    }
    if (projected.size === 0) this.projected.delete(run);
  }
}

/** Query set in force at `step` among the committed history and the ones ahead of it. */
export function querySetAt(run: RunState, pending: readonly QuerySetRecord[], step: number): QuerySetRecord | undefined {
  let best = run.querySetAt(step);
  for (const qs of pending) {
    if (qs.step > step) continue;
    if (best === undefined || qs.step > best.step || (qs.step === best.step && qs.version > best.version)) best = qs;
  }
  return best;
}
