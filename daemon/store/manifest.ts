/**
 * The segment manifest (store format 6): for every run, which record segments exist and how many
 * of their bytes were written and synced when the store last depended on them — before a log
 * trim (after which the log no longer holds what they hold), a compaction's deletion and an
 * import. Start-up compares the files with it: a recorded segment missing or shorter than
 * recorded, a damaged frame inside the recorded bytes, or a file it never recorded refuse the
 * store; bad bytes past the recorded size are a torn tail, which the log covers, and are cut off.
 * See docs/store.md, "Damaged storage".
 */
import type { Database, RootDatabase } from 'lmdb';
import type { SegmentHooks } from './segments.js';
import { settleTurnBatch } from './turn-batch.js';

/** A write's own promise: its failure is the batch's, reported there, never an unhandled rejection. */
function settled(write: unknown): void {
  const p = write as { catch?: (f: () => undefined) => unknown } | null;
  if (p !== null && typeof p === 'object' && typeof p.catch === 'function') p.catch(() => undefined);
}

/** A recorded size of -1: compaction was deleting the segment (finished at the next start-up). */
export const REMOVING = -1;

export class SegmentManifest {
  private readonly root: RootDatabase;
  private readonly db: Database<number, [string, number]>;

  constructor(root: RootDatabase) {
    this.root = root;
    this.db = root.openDB<number, [string, number]>({ name: 'segments' });
  }

  /** The run's recorded segments: number → bytes written and synced (or {@link REMOVING}). */
  entries(runId: string): Map<number, number> {
    const out = new Map<number, number>();
    for (const { key, value } of this.db.getRange({ start: [runId], end: [`${runId}\u0000`] })) out.set(key[1], value);
    return out;
  }

  /** Whether any run has recorded segments (a store from before the manifest has none). */
  get empty(): boolean {
    for (const _ of this.db.getKeys({ limit: 1 })) return false;
    return true;
  }

  /** Records `sizes` for the run (and forgets `forget`), durably. */
  record(runId: string, sizes: ReadonlyMap<number, number>, forget: readonly number[] = []): Promise<void> {
    return this.recordAll(new Map([[runId, sizes]]), forget.length === 0 ? undefined : new Map([[runId, forget]]));
  }

  /** Records the sizes of several runs' segments (and forgets some) in one durable transaction. */
  async recordAll(sizes: ReadonlyMap<string, ReadonlyMap<number, number>>, forget?: ReadonlyMap<string, readonly number[]>): Promise<void> {
    let writes = 0;
    for (const m of sizes.values()) writes += m.size;
    for (const f of forget?.values() ?? []) writes += f.length;
    if (writes === 0) return;
    try {
      await this.root.batch(() => {
        for (const [runId, m] of sizes) for (const [seq, size] of m) settled(this.db.put([runId, seq], size));
        for (const [runId, f] of forget ?? []) for (const seq of f) settled(this.db.remove([runId, seq]));
      });
      await this.root.flushed;
    } catch (err) {
      settleTurnBatch(this.root);
      throw err;
    }
  }

  /** Forgets every segment of the run (inside the transaction that deletes it). */
  removeRun(runId: string): void {
    for (const key of this.db.getKeys({ start: [runId], end: [`${runId}\u0000`] })) settled(this.db.remove(key));
  }

  /** The hooks a run's {@link RunSegments} calls around creating and deleting a segment. */
  hooks(runId: string): SegmentHooks {
    return {
      started: (seq) => this.record(runId, new Map([[seq, 0]])),
      removing: (seq, sizes) => this.record(runId, new Map([...sizes, [seq, REMOVING]])),
      removed: (seq) => this.record(runId, new Map(), [seq]),
    };
  }
}
