/**
 * A group's preparation, on the write path (docs/architecture.md, "The influence engine"): the
 * exactly-once check, the query set in force at each batch's step, and the batches' products with
 * it, all as if every group prepared before were applied already (`Ahead`, write-state.ts).
 */
import { MotiveError, normalizeRows } from '../shared/index.js';
import type { AnswerPlan, QuerySetRecord, RunState, SampleState, Store } from '../store/index.js';
import type { MatMulKernel } from './matmul-kernel.js';
import { allFinite } from './math.js';
import { overflowReason } from './finite-check.js';
import { claimRows, releaseClaims } from './sidecar-rows.js';
import { earliestQuerySet } from './sidecar-queries.js';
import type { QueryMatrices } from './query-matrix.js';
import {
  appliesSamples,
  querySetAt,
  seqKey,
  unscored,
  type Ahead,
  type BatchItem,
  type Item,
  type Prepared,
  type PreparedBatch,
  type PreparedQueries,
  type QueriesItem,
} from './write-state.js';

export interface PrepareContext {
  readonly store: Store;
  readonly kernel: MatMulKernel;
  readonly ahead: Ahead;
  readonly queryMatrices: QueryMatrices;
  /** Most distinct samples per run; a batch that would add more is rejected. */
  readonly maxSamplesPerRun: number;
}

/** A group's items prepared, before its batch weights are projected. */
export interface PreparedItems {
  readonly items: Prepared[];
  /** Query ids new to each run in this group, in first-seen order: their columns follow the run's. */
  readonly newQueryIds: Map<RunState, string[]>;
  /** Each run's query ids once this group is applied (what its commit persists). */
  readonly queryIds: Map<RunState, string[]>;
}

/**
 * Dedup, query-set resolution and the products, as if every group ahead were applied. An item
 * refused here (unknown run, sample limit, overflow) is rejected and left out of the group.
 */
export async function prepareItems(ctx: PrepareContext, group: readonly Item[]): Promise<PreparedItems> {
  const newQueryIds = new Map<RunState, string[]>();
  const items: Prepared[] = [];
  const products: Array<Promise<Float32Array> | undefined> = [];
  /** Worker batches' claimed jobs, released again where the batch is rejected while prepared. */
  const claims = new Map<Item, AnswerPlan>();
  for (const item of group) {
    const run = ctx.store.run(item.sub.runId);
    if (run === undefined) {
      item.reject(new MotiveError('MOTIVE_INGEST_INTERNAL', `run ${item.sub.runId} is not registered`));
      continue;
    }
    const pendingQs = ctx.ahead.querySets.get(run) ?? [];
    if (item.kind === 'queries') {
      items.push(prepareQueries(ctx, item, run, pendingQs, newQueryIds));
      products.push(undefined);
      continue;
    }
    const staged = prepareBatch(ctx, item, run, pendingQs, claims);
    if (staged === undefined) continue;
    items.push(staged.prepared);
    products.push(staged.product);
  }
  const done = await Promise.all(products.map((p) => p ?? Promise.resolve(undefined)));
  items.forEach((p, i) => {
    if (appliesSamples(p)) checkProducts(p, done[i]);
  });
  releaseClaims(ctx.store, claims, items);
  const queryIds = new Map<RunState, string[]>();
  for (const p of items) if (!queryIds.has(p.run)) queryIds.set(p.run, [...p.run.queryIds, ...(ctx.ahead.queryIds.get(p.run) ?? [])]);
  return { items, newQueryIds, queryIds };
}

/** A query set: a version new to the run gets its record, with a column for each query id. */
function prepareQueries(
  ctx: PrepareContext,
  item: QueriesItem,
  run: RunState,
  pendingQs: QuerySetRecord[],
  newQueryIds: Map<RunState, string[]>,
): PreparedQueries {
  const dup = run.hasQueryVersion(item.sub.version) || pendingQs.some((q) => q.version === item.sub.version);
  if (dup) return { kind: 'queries', item, run, record: undefined };
  const m = item.sub.ids.length;
  const sketches = item.sub.sketches;
  if (run.info.scoreMode === 'cosine') normalizeRows(sketches, m, run.info.dim);
  let fresh = newQueryIds.get(run);
  if (fresh === undefined) newQueryIds.set(run, (fresh = []));
  let freshAhead = ctx.ahead.queryIds.get(run);
  if (freshAhead === undefined) ctx.ahead.queryIds.set(run, (freshAhead = []));
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
  const record: QuerySetRecord = {
    version: item.sub.version,
    step: item.sub.step,
    ids: item.sub.ids,
    groups: item.sub.groups,
    columns,
    sketches,
    receivedAtMs: Date.now(),
  };
  pendingQs.push(record);
  ctx.ahead.querySets.set(run, pendingQs);
  return { kind: 'queries', item, run, record };
}

/** A batch admitted: prepared already (a duplicate, a side-car report), or to be scored. */
type Admission =
  { readonly kind: 'prepared'; readonly prepared: PreparedBatch } | { readonly kind: 'score'; readonly answer: AnswerPlan | undefined };

/**
 * A batch: undefined when it is rejected, else its preparation and its products with the query
 * set in force, queued now and awaited with the group's (onnxruntime-node runs each product on a
 * later turn of this thread, with its intra-op threads, so a group's products run back to back).
 */
function prepareBatch(
  ctx: PrepareContext,
  item: BatchItem,
  run: RunState,
  pendingQs: readonly QuerySetRecord[],
  claims: Map<Item, AnswerPlan>,
): { prepared: PreparedBatch; product: Promise<Float32Array> | undefined } | undefined {
  const admitted = admit(ctx, item, run, claims);
  if (admitted === undefined) return undefined;
  if (admitted.kind === 'prepared') return { prepared: admitted.prepared, product: undefined };
  const sub = item.sub;
  if (sub.normalized === true && run.info.scoreMode !== 'cosine') {
    // The stream decoded for the run it attached to; a run replaced since scores otherwise.
    item.reject(new MotiveError('MOTIVE_INGEST_INTERNAL', `normalised sketches for run ${run.info.id}, which scores by dot product`));
    return undefined;
  }
  const samples = reserveSamples(ctx, item, run);
  if (samples === undefined) return undefined;
  if (admitted.answer === undefined) ctx.ahead.seqs.set(seqKey(sub.runId, sub.rank), sub.seq);
  const n = sub.sampleIds.length;
  const k = run.info.dim;
  if (run.info.scoreMode === 'cosine' && sub.normalized !== true) normalizeRows(sub.sketches, n, k);
  const qs = querySetAt(run, pendingQs, sub.step) ?? (admitted.answer === undefined ? undefined : earliestQuerySet(run, pendingQs));
  const product = qs === undefined ? undefined : ctx.kernel.multiply(sub.sketches, n, k, ctx.queryMatrices.get(run, qs, k), qs.ids.length);
  const prepared: PreparedBatch = {
    kind: 'batch',
    item,
    run,
    duplicate: false,
    samples,
    products: undefined,
    querySet: qs,
    rejected: false,
    answer: admitted.answer,
  };
  return { prepared, product };
}

/**
 * Exactly once: a batch at or below its (run, rank)'s last seq, committed or ahead, is a
 * duplicate; a worker batch is cut to the rows of jobs still open (sidecar-rows.ts); a side-car
 * report plans its jobs. Undefined: rejected.
 */
function admit(ctx: PrepareContext, item: BatchItem, run: RunState, claims: Map<Item, AnswerPlan>): Admission | undefined {
  const sub = item.sub;
  if (sub.jobIds !== undefined) {
    const claimed = claimRows(ctx.store, run, item);
    if (claimed === 'rejected') return undefined;
    if (claimed === undefined) return { kind: 'prepared', prepared: unscored(item, run, true) };
    claims.set(item, claimed);
    return { kind: 'score', answer: claimed };
  }
  const key = seqKey(sub.runId, sub.rank);
  const last = ctx.ahead.seqs.get(key) ?? run.commits.get(sub.rank) ?? 0;
  if (sub.seq <= last) return { kind: 'prepared', prepared: unscored(item, run, true) };
  if (sub.deferred === true) {
    ctx.ahead.seqs.set(key, sub.seq);
    const report = ctx.store.jobs.planReport(run.info.id, sub.step, sub.lr, sub.sampleIds);
    return { kind: 'prepared', prepared: { ...unscored(item, run, false), report } };
  }
  return { kind: 'score', answer: undefined };
}

/**
 * Each id's sample now (undefined: new to the run), with the new ones reserved in `ahead.samples`;
 * undefined when the batch would take the run past its sample limit (then it is rejected).
 */
function reserveSamples(ctx: PrepareContext, item: BatchItem, run: RunState): Array<SampleState | undefined> | undefined {
  const max = ctx.maxSamplesPerRun;
  let fresh = ctx.ahead.samples.get(run);
  if (fresh === undefined) ctx.ahead.samples.set(run, (fresh = new Set()));
  // One lookup per id: a sample known now stays in the run until the batch is applied (a
  // deleted run is replaced by a new RunState, never emptied).
  const ids = item.sub.sampleIds;
  const samples = new Array<SampleState | undefined>(ids.length);
  let added = 0;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i] as string;
    const sample = run.samples.get(id);
    samples[i] = sample;
    if (sample === undefined && !fresh.has(id)) added++;
  }
  if (added > 0 && run.samples.size + fresh.size + added > max) {
    // Duplicate ids within the batch may have been counted twice: count exactly.
    const distinct = new Set(ids.filter((id, i) => samples[i] === undefined && !fresh.has(id))).size;
    if (run.samples.size + fresh.size + distinct > max) {
      item.reject(new MotiveError('MOTIVE_INGEST_LIMIT_SAMPLES', `run ${run.info.id} is limited to ${max} samples`));
      return undefined;
    }
  }
  if (added > 0) for (let i = 0; i < ids.length; i++) if (samples[i] === undefined) fresh.add(ids[i] as string);
  return samples;
}

/** Takes a batch's products; rejects it where they, or the sums they add to, would not be finite. */
function checkProducts(p: PreparedBatch, products: Float32Array | undefined): void {
  p.products = products;
  // Under `dot`, finite sketches can still overflow float32 products: never store Inf.
  if (products !== undefined && !allFinite(products)) {
    p.rejected = true;
    p.item.reject(new MotiveError('MOTIVE_INGEST_BATCH_NONFINITE', 'products with the queries overflow float32'));
    return;
  }
  const overflow = overflowReason(p.run, p.item.sub.lr, p.item.sub.sketches, products, p.querySet?.columns, p.samples);
  if (overflow !== undefined) {
    p.rejected = true;
    p.item.reject(new MotiveError('MOTIVE_INGEST_BATCH_OVERFLOW', overflow));
  }
}
