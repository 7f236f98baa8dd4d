/** The query sets' transposed matrices Qᵀ [k × m], which every batch's products multiply by. */
import type { QuerySetRecord, RunState, Store } from '../store/index.js';
import { transpose } from './math.js';

/** Transposed query matrices cached (the sets used last, across runs). */
const TRANSPOSED_KEPT = 16;

export class QueryMatrices {
  private readonly store: Store;
  private readonly transposed = new Map<QuerySetRecord, Float32Array>();

  constructor(store: Store) {
    this.store = store;
  }

  /**
   * Qᵀ [k × m] of a query set, cached for the {@link TRANSPOSED_KEPT} sets used last. A set older
   * than the run's newest few has its sketches read back from the store.
   */
  get(run: RunState, qs: QuerySetRecord, k: number): Float32Array {
    let t = this.transposed.get(qs);
    if (t === undefined) {
      t = transpose(qs.sketches ?? this.store.querySketches(run.info.id, qs.version), qs.ids.length, k);
      if (this.transposed.size >= TRANSPOSED_KEPT) this.transposed.delete(this.transposed.keys().next().value as QuerySetRecord);
    } else this.transposed.delete(qs);
    // Re-inserted: the map's order is the order of last use.
    this.transposed.set(qs, t);
    return t;
  }
}
