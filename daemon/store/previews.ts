/**
 * Clip previews (`motive profile`, daemon/motion/previews.ts) in the `previews` database of the
 * main environment (docs/store.md): key `[clipId, hash, kind]`, the hash being the sha256 of the
 * clip file the profile beside it was computed from, so a clip profiled again from a changed file
 * shows the new file's previews, never stale ones. Like profiles, they belong to clips, not runs.
 */
import type { Database, RootDatabase } from 'lmdb';

/** One stored preview. */
export interface PreviewRecord {
  /** Media type, e.g. `image/png`. */
  readonly type: string;
  readonly createdAtMs: number;
  readonly data: Uint8Array;
}

/** A preview to store. */
export interface PreviewEntry {
  readonly clipId: string;
  readonly hash: string;
  readonly kind: string;
  readonly record: PreviewRecord;
}

export class PreviewTable {
  private readonly db: Database<PreviewRecord, [string, string, string]>;

  constructor(root: RootDatabase) {
    this.db = root.openDB<PreviewRecord, [string, string, string]>({ name: 'previews' });
  }

  /** Queues the write (inside a store transaction). */
  put(e: PreviewEntry): Promise<boolean> {
    return this.db.put([e.clipId, e.hash, e.kind], e.record);
  }

  get(clipId: string, hash: string, kind: string): PreviewRecord | undefined {
    const r = this.db.get([clipId, hash, kind]);
    // msgpack hands binary back as a Buffer; callers get bytes either way.
    return r === undefined ? undefined : { ...r, data: r.data instanceof Uint8Array ? r.data : new Uint8Array(r.data) };
  }

  /** Whether every one of `kinds` is stored for the clip file. */
  hasAll(clipId: string, hash: string, kinds: readonly string[]): boolean {
    return kinds.every((k) => this.db.doesExist([clipId, hash, k]));
  }
}
