/**
 * Per-sample features: a few model-free numbers per clip ("motion checks", each higher = more
 * suspicious) that the trainer sends with its batches (docs/wire.md). They describe the clip, not
 * the step, so a sample keeps the latest row sent for it. A run's feature names are fixed by the
 * first Hello that carries any.
 *
 * In memory a run holds its rows packed in one float32 array (one row per sample, in first-seen
 * order). On disk (docs/store.md) they live in two LMDB databases of the main environment, written
 * in the same transaction as the batch that carried them: `features` ([runId, sampleId] → float32
 * LE row) and `featureNames` (runId → names).
 */
import type { Database, RootDatabase } from 'lmdb';
import { MotiveError } from '../shared/index.js';

/** A run's per-sample feature rows in memory. */
export class SampleFeatures {
  /** The run's feature names (empty: the run carries no features). */
  names: readonly string[] = [];
  private readonly index = new Map<string, number>();
  private data = new Float32Array(0);

  /** Features per sample. */
  get width(): number {
    return this.names.length;
  }

  /** Samples that have features. */
  get size(): number {
    return this.index.size;
  }

  /** Sets the sample's row to `values[from … from + width)` (the latest row wins). */
  set(id: string, values: ArrayLike<number>, from = 0): void {
    const nf = this.width;
    let row = this.index.get(id);
    if (row === undefined) {
      row = this.index.size;
      if ((row + 1) * nf > this.data.length) {
        const grown = new Float32Array(Math.max(64 * nf, 2 * this.data.length));
        grown.set(this.data);
        this.data = grown;
      }
      this.index.set(id, row);
    }
    for (let i = 0; i < nf; i++) this.data[row * nf + i] = values[from + i] as number;
  }

  /** Sets the rows of a batch: `rows` is [ids.length × width] (a repeated id: its last row wins). */
  setRows(ids: readonly string[], rows: Float32Array): void {
    const nf = this.width;
    for (let i = 0; i < ids.length; i++) this.set(ids[i] as string, rows, i * nf);
  }

  /** The sample's row (a view, valid until the next `set`), or undefined. */
  get(id: string): Float32Array | undefined {
    const row = this.index.get(id);
    if (row === undefined) return undefined;
    const nf = this.width;
    return this.data.subarray(row * nf, row * nf + nf);
  }

  /** Every row packed [size × width], in first-seen order (a view, valid until the next `set`). */
  rows(): Float32Array {
    return this.data.subarray(0, this.index.size * this.width);
  }

  /** The sample's features by name, or undefined. */
  named(id: string): Record<string, number> | undefined {
    const row = this.get(id);
    if (row === undefined) return undefined;
    const out: Record<string, number> = {};
    this.names.forEach((name, i) => {
      out[name] = row[i] as number;
    });
    return out;
  }
}

/** The store's feature databases (see the file's comment). */
export class FeatureTables {
  private readonly rowsDb: Database<Buffer, [string, string]>;
  private readonly namesDb: Database<string[], string>;
  /** Each run's names as committed (ahead of memory while a commit awaits its apply). */
  private readonly persisted = new Map<string, readonly string[]>();

  constructor(root: RootDatabase) {
    this.rowsDb = root.openDB<Buffer, [string, string]>({ name: 'features', encoding: 'binary' });
    this.namesDb = root.openDB<string[], string>({ name: 'featureNames' });
  }

  /** Loads the run's names and rows into `features`. */
  load(runId: string, features: SampleFeatures): void {
    const names = this.namesDb.get(runId);
    if (names === undefined || names.length === 0) return;
    features.names = names;
    this.persisted.set(runId, names);
    for (const { key, value } of this.rowsDb.getRange({ start: [runId], end: [`${runId}\u0000`] })) {
      const row = new Float32Array(names.length);
      for (let i = 0; i < names.length; i++) row[i] = value.readFloatLE(4 * i);
      features.set(key[1], row);
    }
  }

  /** The run's committed names (empty: none yet). */
  namesOf(runId: string): readonly string[] {
    return this.persisted.get(runId) ?? [];
  }

  /**
   * Writes for a commit fixing the run's names; throws MOTIVE_INGEST_FEATURES_MISMATCH when the run
   * has other names already, returns no writes when it has these. `undo` reverts the bookkeeping
   * if the commit fails.
   */
  nameWrites(runId: string, names: readonly string[]): { writes: Array<() => unknown>; undo: () => void } {
    const prev = this.persisted.get(runId);
    if (prev !== undefined) {
      if (sameNames(prev, names)) return { writes: [], undo: () => undefined };
      throw new MotiveError(
        'MOTIVE_INGEST_FEATURES_MISMATCH',
        `run ${runId} has features [${prev.join(', ')}], Hello has [${names.join(', ')}]`,
      );
    }
    const copy = [...names];
    this.persisted.set(runId, copy);
    return { writes: [() => this.namesDb.put(runId, copy)], undo: () => this.persisted.delete(runId) };
  }

  /** Writes for a commit storing a batch's rows ([ids.length × nf] float32). */
  rowWrites(runId: string, ids: readonly string[], rows: Float32Array, nf: number): Array<() => unknown> {
    const writes: Array<() => unknown> = [];
    for (let i = 0; i < ids.length; i++) {
      const value = Buffer.alloc(4 * nf);
      for (let j = 0; j < nf; j++) value.writeFloatLE(rows[i * nf + j] as number, 4 * j);
      const key: [string, string] = [runId, ids[i] as string];
      writes.push(() => this.rowsDb.put(key, value));
    }
    return writes;
  }

  /** Writes for a commit removing everything of the run. */
  removeWrites(runId: string): Array<() => unknown> {
    const writes: Array<() => unknown> = [() => this.namesDb.remove(runId)];
    for (const key of this.rowsDb.getKeys({ start: [runId], end: [`${runId}\u0000`] })) writes.push(() => this.rowsDb.remove(key));
    return writes;
  }

  /** Forgets the run's bookkeeping (after its removal committed). */
  forget(runId: string): void {
    this.persisted.delete(runId);
  }
}

export function sameNames(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
