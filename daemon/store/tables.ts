/**
 * The main LMDB environment's schema (docs/store.md, "dataDir/"): the tables the store keeps
 * there, their key and value types, and opening the environment safely. The features, previews,
 * side-car jobs and segment manifest tables have their own files (features.ts, previews.ts,
 * jobs.ts, manifest.ts).
 */
import { accessSync, constants, existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { MotiveError } from '../shared/index.js';
import { checkEnvironment } from './env-check.js';
import type { RunInfo, SketchDType } from './run-state.js';

/** A run's row in `runs`. */
export interface RunRecord {
  info: RunInfo;
  queryIds: string[];
  weightsVersion: number;
  batches: number;
  sketches: number;
  lastStep: number;
}

/** A query set's row in `queries`. */
export interface QueryRecord {
  version: number;
  step: number;
  ids: string[];
  groups: string[];
  receivedAtMs: number;
  sketches: Uint8Array;
}

/** A log entry: a committed batch, or a weight change (docs/store.md). */
export type LogRecord =
  | {
      kind: 'batch';
      runId: string;
      step: number;
      lr: number;
      /** Version of the query set the products were taken with; 0 before the first. */
      qsVersion: number;
      ids: string[];
      /** float32 LE [n × m] products with that query set (empty when qsVersion is 0). */
      products: Uint8Array;
      /** The sketches as they came off the wire, [n × k] of `dtype`. */
      sketches: Uint8Array;
      /** The sending rank's dtype; absent in entries a format 5 store logged (then the run's). */
      dtype?: SketchDType;
    }
  | { kind: 'weights'; runId: string; ids: string[]; weights: Uint8Array };

/**
 * A clip's motion profile (daemon/motion), keyed by [clipId, hash] in the `profiles` database.
 * Profiles belong to clips, not runs: every run whose sample ids name the clip shows them.
 */
export interface ClipProfileRecord {
  /** sha256 of the clip file the profile was computed from, hex. */
  readonly hash: string;
  readonly profiledAtMs: number;
  /** Descriptors and provenance (numbers, booleans, strings), as docs/motion-profiling.md lists them. */
  readonly fields: Readonly<Record<string, number | boolean | string>>;
}

/** The main environment and the tables the store itself reads and writes. */
export class Tables {
  readonly root: RootDatabase;
  readonly runs: Database<RunRecord, string>;
  readonly commits: Database<number, [string, number]>;
  readonly queries: Database<QueryRecord, [string, number]>;
  readonly log: Database<LogRecord, number>;
  readonly meta: Database<number, string>;
  readonly profiles: Database<ClipProfileRecord, [string, string]>;

  constructor(root: RootDatabase) {
    this.root = root;
    this.runs = root.openDB<RunRecord, string>({ name: 'runs' });
    this.commits = root.openDB<number, [string, number]>({ name: 'commits' });
    this.queries = root.openDB<QueryRecord, [string, number]>({ name: 'queries' });
    this.log = root.openDB<LogRecord, number>({ name: 'log' });
    this.meta = root.openDB<number, string>({ name: 'meta' });
    this.profiles = root.openDB<ClipProfileRecord, [string, string]>({ name: 'profiles' });
  }
}

/**
 * Writes inside a transaction return their own promises, which reject when the commit fails; the
 * commit's own promise reports that failure, so these must not become unhandled rejections (Node
 * would exit, e.g. on a full disk).
 */
export function settled(write: unknown): void {
  const p = write as { then?: unknown; catch?: (f: () => undefined) => unknown } | null;
  if (p !== null && typeof p === 'object' && typeof p.catch === 'function') p.catch(() => undefined);
}

/** Every key [runId, …] of a table: [runId] sorts before them all, [runId + NUL] after. */
export function runRange(runId: string): { start: [string]; end: [string] } {
  return { start: [runId], end: [`${runId}\u0000`] };
}

/**
 * MOTIVE_STORE_READONLY unless the data directory (or, before it exists, the nearest existing
 * directory above it) and its files can be written: a read-only mount (EROFS, reported to root
 * too) or missing permissions, found before anything is opened.
 */
function checkWritable(dataDir: string): void {
  let dir = resolve(dataDir);
  while (!existsSync(dir) && dirname(dir) !== dir) dir = dirname(dir);
  for (const path of [dir, join(dataDir, 'data.mdb'), join(dataDir, 'lock.mdb'), join(dataDir, 'records')]) {
    if (!existsSync(path)) continue;
    try {
      accessSync(path, constants.W_OK);
    } catch (err) {
      throw new MotiveError(
        'MOTIVE_STORE_READONLY',
        `${path}: ${(err as Error).message}; the store needs its data directory writable (store.dataDir / MOTIVE_DATA_DIR)`,
        { cause: err },
      );
    }
  }
}

/**
 * Opens the main environment after checking its file (env-check.ts) and that the directory is
 * writable: MOTIVE_STORE_CORRUPT, MOTIVE_STORE_READONLY or MOTIVE_STORE_OPEN otherwise.
 */
export function openMain(dataDir: string, mapSize: number): RootDatabase {
  checkWritable(dataDir);
  try {
    return openEnv(dataDir, mapSize);
  } catch (err) {
    if (err instanceof MotiveError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EROFS' || code === 'EACCES' || code === 'EPERM') {
      throw new MotiveError('MOTIVE_STORE_READONLY', `${dataDir}: ${(err as Error).message}; the store needs a writable data directory`, {
        cause: err,
      });
    }
    throw new MotiveError('MOTIVE_STORE_OPEN', `${dataDir}: ${(err as Error).message}`, { cause: err });
  }
}

/** Opens an LMDB environment (the main one, or a format 3/4 store's samples environment). */
export function openEnv(path: string, mapSize: number): RootDatabase {
  mkdirSync(path, { recursive: true });
  checkEnvironment(path);
  // noSubdir: false, else lmdb-js takes a directory whose name has an extension for a file.
  return open({ path, mapSize, maxDbs: 16, noSubdir: false });
}
