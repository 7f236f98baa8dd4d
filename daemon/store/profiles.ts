/**
 * Clips' motion profiles and previews (docs/motion-profiling.md): keyed by clip id and file hash,
 * shared by every run whose sample ids name the clip. Writes go through the store's commit queue.
 */
import type { Database } from 'lmdb';
import { PreviewTable, type PreviewEntry, type PreviewRecord } from './previews.js';
import { runRange, settled, type ClipProfileRecord } from './tables.js';

/** Runs `write` in one durable transaction, serialised with the store's other commits. */
export type CommitWrites = (write: () => void) => Promise<void>;

export class ClipTables {
  private readonly profiles: Database<ClipProfileRecord, [string, string]>;
  private readonly previews: PreviewTable;
  private readonly commit: CommitWrites;

  constructor(profiles: Database<ClipProfileRecord, [string, string]>, previews: PreviewTable, commit: CommitWrites) {
    this.profiles = profiles;
    this.previews = previews;
    this.commit = commit;
  }

  /** Stores motion profiles in one transaction; a profile for an existing [clipId, hash] replaces it. */
  putProfiles(entries: ReadonlyArray<{ clipId: string; record: ClipProfileRecord }>): Promise<void> {
    return this.commit(() => {
      for (const e of entries) settled(this.profiles.put([e.clipId, e.record.hash], e.record));
    });
  }

  /** The clip's newest profile (by `profiledAtMs`), or undefined. */
  profile(clipId: string): ClipProfileRecord | undefined {
    let newest: ClipProfileRecord | undefined;
    for (const { value } of this.profiles.getRange(runRange(clipId))) {
      if (newest === undefined || value.profiledAtMs > newest.profiledAtMs) newest = value;
    }
    return newest;
  }

  /** Stores clip previews in one transaction. */
  putPreviews(entries: readonly PreviewEntry[]): Promise<void> {
    return this.commit(() => {
      for (const e of entries) settled(this.previews.put(e));
    });
  }

  /** The `kind` preview of the clip's newest profile (previews.ts), or undefined. */
  preview(clipId: string, kind: string): PreviewRecord | undefined {
    const p = this.profile(clipId);
    return p === undefined ? undefined : this.previews.get(clipId, p.hash, kind);
  }

  /** Whether every one of `kinds` is stored for the clip file with this hash. */
  hasPreviews(clipId: string, hash: string, kinds: readonly string[]): boolean {
    return this.previews.hasAll(clipId, hash, kinds);
  }

  /** Whether the clip has a profile computed from a file with this hash. */
  hasProfile(clipId: string, hash: string): boolean {
    return this.profiles.doesExist([clipId, hash]);
  }
}
