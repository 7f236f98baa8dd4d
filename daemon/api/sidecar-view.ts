/** The `sidecar` part of a run's detail (docs/api.md): its side-car jobs, when it has any. */
import type { Store } from '../store/index.js';

export interface SidecarView {
  /** Jobs not yet attributed (leased or not). */
  readonly backlog: number;
  /** Jobs under a live lease now. */
  readonly leased: number;
  readonly created: number;
  readonly attributed: number;
  /** Jobs the backlog bound dropped, never attributed. */
  readonly dropped: number;
  /** Worker batches committed. */
  readonly batches: number;
  /** Mean and largest (job step − snapshot step) over the attributed jobs. */
  readonly stalenessMean: number;
  readonly stalenessMax: number;
}

export function sidecarView(store: Store, runId: string): SidecarView | undefined {
  const s = store.jobs.stats(runId);
  if (s === undefined) return undefined;
  return {
    backlog: s.backlog,
    leased: s.leased,
    created: s.created,
    attributed: s.attributed,
    dropped: s.dropped,
    batches: s.batches,
    stalenessMean: s.attributed === 0 ? 0 : s.stalenessSum / s.attributed,
    stalenessMax: s.stalenessMax,
  };
}

/** `{ sidecar }` for a run with side-car jobs, else nothing. */
export function sidecarDetail(store: Store, runId: string): { sidecar?: SidecarView } {
  const v = sidecarView(store, runId);
  return v === undefined ? {} : { sidecar: v };
}
