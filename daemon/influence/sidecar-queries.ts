/**
 * The query set a side-car worker's batch is scored against when no set the daemon holds is at
 * or before its step (docs/method.md, "Side-car attribution"). Workers drain a backlog newest
 * first, so the sets are published at ever older snapshots and a job older than all of them
 * would otherwise add nothing to the sums; it takes the earliest set instead, the one nearest
 * its step. A trainer's batch keeps the in-process rule: before the first set, no score.
 */
import type { QuerySetRecord, RunState } from '../store/index.js';

/** The earliest query set among the run's history and the ones ahead of it (ties: the last version). */
export function earliestQuerySet(run: RunState, pending: readonly QuerySetRecord[]): QuerySetRecord | undefined {
  const first = run.querySets[0];
  let best = first === undefined ? undefined : run.querySetAt(first.step);
  for (const qs of pending) {
    if (best === undefined || qs.step < best.step || (qs.step === best.step && qs.version > best.version)) best = qs;
  }
  return best;
}
