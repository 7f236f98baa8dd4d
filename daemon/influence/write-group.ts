/**
 * A prepared group's durable transaction, on the write path (docs/store.md, "Durability"): every
 * batch appended to the log with its (run, rank) commit marker and features, the new query sets,
 * the batch weights after the batches (as recovery replays them: the weights name samples they
 * create), and each run's counters. Runs inside `Store.commit`; memory is changed only by the
 * apply after it (apply.ts).
 */
import type { RunState, SidecarJobs, StoreTx } from '../store/index.js';
import type { GroupLsns, PreparedBatch, PreparedGroup, Prepared } from './write-state.js';

/** What a group adds to a run's persisted counters. */
interface RunCounters {
  addBatches: number;
  addSketches: number;
  lastStep: number;
}

/** Writes the group's `live` items (its batches not rejected while prepared) in `tx`. */
export function writeGroup(tx: StoreTx, jobs: SidecarJobs, group: PreparedGroup, live: readonly Prepared[]): GroupLsns {
  const batches = new Map<PreparedBatch, number>();
  const counters = new Map<RunState, RunCounters>();
  for (const p of live) {
    const c = counters.get(p.run) ?? { addBatches: 0, addSketches: 0, lastStep: 0 };
    counters.set(p.run, c);
    if (p.kind === 'queries') {
      if (p.record !== undefined) tx.putQuerySet(p.run.info.id, p.record);
      continue;
    }
    const lsn = writeBatch(tx, jobs, p, c);
    if (lsn !== undefined) batches.set(p, lsn);
  }
  // After the batches, as recovery replays them: the weights name samples they create.
  const weights = new Map<RunState, { lsn: number; version: number }>();
  for (const [run, w] of group.weights) {
    const version = tx.weightsVersion(run) + 1;
    weights.set(run, { lsn: tx.appendWeights(run.info.id, w.ids, w.weights), version });
  }
  for (const [run, c] of counters) {
    const version = weights.get(run)?.version;
    tx.updateRun(run, {
      ...c,
      queryIds: group.queryIds.get(run) ?? run.queryIds,
      ...(version === undefined ? {} : { weightsVersion: version }),
    });
  }
  return { batches, weights };
}

/** One batch's entries; its log entry's lsn, or undefined for a duplicate or a side-car report. */
function writeBatch(tx: StoreTx, jobs: SidecarJobs, p: PreparedBatch, c: RunCounters): number | undefined {
  if (p.duplicate) return undefined;
  const sub = p.item.sub;
  if (p.report !== undefined) {
    tx.putCommit(sub.runId, sub.rank, sub.seq);
    for (const w of jobs.reportWrites(p.report)) tx.write(w);
    return undefined;
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
  if (sub.features !== undefined) tx.putFeatures(sub.runId, sub.sampleIds, sub.features, sub.features.length / sub.sampleIds.length);
  if (p.answer !== undefined) for (const w of jobs.answerWrites(p.answer)) tx.write(w);
  else tx.putCommit(sub.runId, sub.rank, sub.seq);
  c.addBatches++;
  c.addSketches += sub.sampleIds.length;
  if (sub.step > c.lastStep) c.lastStep = sub.step;
  return lsn;
}
