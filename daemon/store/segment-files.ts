/**
 * The record segments' files (docs/store.md, "Record segments"): where a run's segments live, how
 * they are listed, created and removed durably, and what a damaged one is reported as. segments.ts
 * holds a run's open segments.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { open as openFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { MotiveError } from '../shared/index.js';

const SEGMENT_SUFFIX = '.seg';
/** A run's directory is renamed to this before it is removed, so a crash never leaves part of it. */
const DELETED_SUFFIX = '.deleted';

/** What is wrong with a run's segments: found while opening or on the first scan. */
export interface SegmentProblem {
  /**
   * torn: bytes at the end of a segment written after the store last recorded its size (so the
   * log still holds what they held), cut off; corrupt: a frame that is damaged where the store
   * recorded it written; cut: a segment shorter than recorded; missing: a recorded segment
   * absent; foreign: a segment of another run or number; unlisted: a file the store never
   * recorded (empty ones are a crash's leftover and removed).
   */
  readonly kind: 'torn' | 'corrupt' | 'cut' | 'missing' | 'foreign' | 'unlisted';
  readonly file: string;
  readonly offset: number;
  readonly detail: string;
  /** Cut off or removed (a torn tail or an empty unlisted segment, in open or repair mode). */
  readonly repaired: boolean;
}

/** How {@link RunSegments.open} checks the segments it finds. */
export interface SegmentCheck {
  /**
   * Bytes the store recorded written and synced per segment number (its manifest). Undefined for
   * a store from before the manifest (format 5): then a bad frame is only a torn tail where it is
   * the last thing in its segment.
   */
  readonly expected: ReadonlyMap<number, number> | undefined;
  /**
   * open: torn tails and empty unlisted segments repaired (and reported), anything else throws
   * MOTIVE_STORE_CORRUPT; check: everything reported, nothing changed; repair: as check, with
   * torn tails and empty unlisted segments repaired.
   */
  readonly mode: 'open' | 'check' | 'repair';
  readonly report: (p: SegmentProblem) => void;
}

/** The error a damaged segment stops start-up with. */
export function corruptError(p: SegmentProblem): MotiveError {
  return new MotiveError(
    'MOTIVE_STORE_CORRUPT',
    `${p.file}: ${p.kind} at offset ${p.offset}: ${p.detail}; nothing was changed (\`motive check --data-dir DIR\` lists every problem; docs/store.md, "Damaged storage")`,
  );
}

/** Path of segment `seq` in `dir`. */
export function segmentPath(dir: string, seq: number): string {
  return join(dir, `${String(seq).padStart(10, '0')}${SEGMENT_SUFFIX}`);
}

/** Segment numbers of the files in `dir` (none when it does not exist). */
export function listSegments(dir: string): number[] {
  if (!statSync(dir, { throwIfNoEntry: false })) return [];
  return readdirSync(dir)
    .filter((name) => name.endsWith(SEGMENT_SUFFIX))
    .map((name) => Number.parseInt(name, 10))
    .filter((seq) => Number.isSafeInteger(seq) && seq > 0)
    .sort((a, b) => a - b);
}

/** Store-side bookkeeping of a run's segments (the manifest), called around their creation and removal. */
export interface SegmentHooks {
  /** A segment was created (empty, its entry synced); resolves once the store recorded it. */
  started(seq: number): Promise<void>;
  /** Compaction is about to delete `seq`: resolves once recorded, with every other segment's synced size. */
  removing(seq: number, sizes: ReadonlyMap<number, number>): Promise<void>;
  /** `seq` is deleted. */
  removed(seq: number): Promise<void>;
}

/** Directory of a run's segments under `recordsDir`: a fixed-length name, whatever the run id. */
export function runSegmentsDir(recordsDir: string, runId: string): string {
  return join(recordsDir, createHash('sha256').update(runId).digest('hex').slice(0, 32));
}

/** fsync of a directory, so that the entries just created or removed in it are durable. */
export function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * The same on libuv's thread pool: for the segments a running store starts and removes, whose
 * directory syncs ran on the main thread and held it (and every Ack waiting on it) while the
 * file system committed its journal, behind whatever the flusher had just written.
 */
export async function syncDirAsync(dir: string): Promise<void> {
  const handle = await openFile(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Removes segment `seq` of `dir`, durably (its directory synced). */
export function removeSegmentFile(dir: string, seq: number): void {
  rmSync(segmentPath(dir, seq), { force: true });
  if (statSync(dir, { throwIfNoEntry: false })) syncDir(dir);
}

/** Removes a run's directory: renamed first, so a crash leaves none of it behind. */
export function removeRunDir(dir: string): void {
  const gone = `${dir}${DELETED_SUFFIX}`;
  rmSync(gone, { recursive: true, force: true });
  renameSync(dir, gone);
  syncDir(join(dir, '..'));
  rmSync(gone, { recursive: true, force: true });
}

/** Removes what a crash left of deleted runs' directories. */
export function removeDeletedRuns(recordsDir: string): void {
  mkdirSync(recordsDir, { recursive: true });
  for (const name of readdirSync(recordsDir)) {
    if (name.endsWith(DELETED_SUFFIX)) rmSync(join(recordsDir, name), { recursive: true, force: true });
  }
}
