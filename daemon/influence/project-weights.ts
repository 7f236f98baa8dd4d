/**
 * Batch weights on the write path (`weights.batchUpdates`, docs/method.md): while a group is
 * prepared, each sample it touches is projected to its score and `seen` once the group is applied
 * (on top of the groups prepared before it), and the weighting service maps them to weights with
 * the statistics of the run's last recompute. The weights that move are logged in the group's own
 * transaction (write-group.ts).
 */
import type { RunState } from '../store/index.js';
import type { BatchWeigher } from './engine-types.js';
import type { Ahead, GroupWeights, Prepared, PreparedBatch, Projected } from './write-state.js';
import { appliesSamples } from './write-state.js';

/**
 * Projects every sample the group's batches touch to its state once the group is applied,
 * exactly as the apply will add to it, and, for runs whose batch weights apply, the weights that
 * move with it. Nothing without a weigher that gives batch weights.
 */
export function projectWeights(
  ahead: Ahead,
  weigher: BatchWeigher | undefined,
  items: readonly Prepared[],
  group: number,
): Map<RunState, GroupWeights> {
  const out = new Map<RunState, GroupWeights>();
  if (weigher?.batchUpdates !== true) return out;
  const touched = new Map<RunState, Map<string, Projected>>();
  for (const p of items) {
    if (!appliesSamples(p) || p.rejected) continue;
    let mine = touched.get(p.run);
    if (mine === undefined) touched.set(p.run, (mine = new Map<string, Projected>()));
    projectBatch(ahead, p, group, mine);
  }
  for (const [run, mine] of touched) {
    // A query set committed after the last recompute, ahead or in this group changes every
    // score: no batch weights until the recompute after it.
    if ((ahead.querySets.get(run)?.length ?? 0) > 0 || (ahead.queryIds.get(run)?.length ?? 0) > 0) continue;
    const moved = movedWeights(weigher, run, mine);
    if (moved !== undefined) out.set(run, moved);
  }
  return out;
}

/** Adds one batch to its samples' projections in `ahead.projected`, and notes them in `mine`. */
function projectBatch(ahead: Ahead, p: PreparedBatch, group: number, mine: Map<string, Projected>): void {
  const run = p.run;
  let projected = ahead.projected.get(run);
  if (projected === undefined) ahead.projected.set(run, (projected = new Map<string, Projected>()));
  const sub = p.item.sub;
  const ids = sub.sampleIds;
  const products = p.products;
  const m = products === undefined ? 0 : (p.querySet?.ids.length ?? 0);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i] as string;
    let e = projected.get(id);
    if (e === undefined) {
      const s = p.samples?.[i];
      const features = run.features.size === 0 ? undefined : run.features.get(id)?.slice();
      e = ahead.spareProjections.pop();
      if (e === undefined) e = { total: s?.total ?? 0, seen: s?.seen ?? 0, weight: s?.weight ?? 1, features, group };
      else {
        e.total = s?.total ?? 0;
        e.seen = s?.seen ?? 0;
        e.weight = s?.weight ?? 1;
        e.features = features;
        e.group = group;
      }
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

/** The run's samples whose weights move with the group (then projected at the new weight). */
function movedWeights(weigher: BatchWeigher, run: RunState, mine: ReadonlyMap<string, Projected>): GroupWeights | undefined {
  const queries = run.queryIds.length;
  const policy = weigher.batchPolicy(run, queries);
  if (policy === undefined || queries === 0) return undefined;
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
  return ids.length > 0 ? { ids, weights: Float32Array.from(moved), newly } : undefined;
}
