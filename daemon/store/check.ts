/**
 * `motive check`: the checks the daemon makes on start-up (env-check.ts, the segment manifest),
 * made on a stopped store without refusing at the first problem: every problem is reported. With
 * `repair`, torn tails (bytes past what the store recorded written, which its log still holds) are
 * cut off and empty segments the store never recorded removed; nothing else is changed.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { open } from 'lmdb';
import { describeError } from '../shared/index.js';
import { checkEnvironment } from './env-check.js';
import { REMOVING, SegmentManifest } from './manifest.js';
import { MAX_SEGMENT_BYTES, RunSegments, runSegmentsDir, type SegmentProblem } from './segments.js';

export interface StoreCheck {
  /** Problems found; those with `repaired` were fixed (repair mode). */
  readonly problems: readonly SegmentProblem[];
  /** Problems outside the record segments (the main environment, the format), never repaired. */
  readonly fatal: readonly string[];
  /** Observations that need no action (a directory no run refers to). */
  readonly notes: readonly string[];
  readonly runs: number;
  readonly frames: number;
}

/** Checks the store in `dataDir` (the daemon stopped). */
export async function checkStore(dataDir: string, repair: boolean): Promise<StoreCheck> {
  const problems: SegmentProblem[] = [];
  const notes: string[] = [];
  try {
    checkEnvironment(dataDir);
  } catch (err) {
    return { problems, fatal: [describeError(err)], notes, runs: 0, frames: 0 };
  }
  if (!statSync(join(dataDir, 'data.mdb'), { throwIfNoEntry: false })) {
    return { problems, fatal: [`${dataDir}: no data.mdb (not a store)`], notes, runs: 0, frames: 0 };
  }
  const root = open({ path: dataDir, maxDbs: 16, noSubdir: false, readOnly: true });
  let runs = 0;
  let frames = 0;
  const fatal: string[] = [];
  try {
    const format = root.openDB<number, string>({ name: 'meta' }).get('format');
    if (format === undefined || format < 5 || format > 6) {
      fatal.push(`${dataDir}: store format ${String(format)}: this check reads formats 5 and 6 (the daemon moves 3 and 4 on start-up)`);
      return { problems, fatal, notes, runs, frames };
    }
    const manifest = new SegmentManifest(root);
    const recordsDir = join(dataDir, 'records');
    const dirs = new Set<string>();
    for (const runId of root.openDB<unknown, string>({ name: 'runs' }).getKeys()) {
      runs++;
      const dir = runSegmentsDir(recordsDir, runId);
      dirs.add(dir);
      let expected: Map<number, number> | undefined;
      if (format === 6) {
        // A deletion a crash interrupted is finished by the next start-up: not a problem.
        expected = manifest.entries(runId);
        for (const [seq, size] of expected) if (size === REMOVING) expected.delete(seq);
      }
      const segments = RunSegments.open(dir, runId, MAX_SEGMENT_BYTES, {
        check: { expected, mode: repair ? 'repair' : 'check', report: (p) => problems.push(p) },
      });
      try {
        for (const _ of segments.scan()) frames++;
      } finally {
        await segments.close();
      }
    }
    if (statSync(recordsDir, { throwIfNoEntry: false })) {
      for (const name of readdirSync(recordsDir)) {
        if (!dirs.has(join(recordsDir, name)))
          notes.push(`${join(recordsDir, name)}: no run refers to it (a deleted run's; creating a run of that id removes it)`);
      }
    }
  } finally {
    await root.close();
  }
  return { problems, fatal, notes, runs, frames };
}
