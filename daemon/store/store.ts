/**
 * The embedded store: one LMDB environment under `dataDir`, the only module that imports lmdb.
 *
 * Key layout (docs/store.md):
 *   meta        'format'              → store format version (number)
 *   runs        runId                 → { info, queryIds, weightsVersion, batches, sketches, lastStep }
 *   commits     [runId, rank]         → last committed batch seq (number)
 *   queries     [runId, version]      → { version, step, ids, groups, receivedAtMs, sketches: bytes }
 *   samples     [runId, sampleId]     → binary sample record: seen, lastStep, weight, S_j sums and
 *                                       the influence embedding G(z) (float32[k]) in one value
 *
 * Every mutation happens in {@link Store.commit}: one LMDB transaction, awaited until durable.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { open, type Database, type Key, type RootDatabase } from 'lmdb';
import { MotiveError, describeError } from '../shared/index.js';
import { RunState, type QuerySetRecord, type RunInfo, type SampleState } from './run-state.js';
import {
  bytesToFloat32,
  copyEmbedding,
  decodeSample,
  embeddingOffset,
  embeddingView,
  float32Bytes,
  newSampleRecord,
  recordShape,
  writeSampleHeader,
} from './codec.js';

/** Bumped whenever the on-disk layout changes incompatibly. */
export const STORE_FORMAT_VERSION = 2;

export interface StoreOptions {
  readonly dataDir: string;
  readonly mapSizeBytes: number;
  /** Fault injection: delay before each commit in ms (default 0). */
  readonly commitDelayMs?: number;
}

interface RunRecord {
  info: RunInfo;
  queryIds: string[];
  weightsVersion: number;
  batches: number;
  sketches: number;
  lastStep: number;
}

interface QueryRecord {
  version: number;
  step: number;
  ids: string[];
  groups: string[];
  receivedAtMs: number;
  sketches: Uint8Array;
}

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

/** Writes allowed inside {@link Store.commit}. Each also updates nothing in memory by itself. */
export interface StoreTx {
  putRun(run: RunState): void;
  putCommit(runId: string, rank: number, seq: number): void;
  putQuerySet(runId: string, qs: QuerySetRecord): void;
  /**
   * Writes a sample's record. With `record` (from {@link StoreTx.openRecord}) the caller has
   * filled its G(z); without, the stored G(z) is kept and only counters, weight and sums change.
   */
  putSample(runId: string, sample: SampleState, record?: Buffer): void;
  /**
   * A fresh record buffer for `sample` whose G(z) view holds the stored G(z) as of this
   * transaction (zeros for a new sample), for the caller to add to and pass to putSample.
   */
  openRecord(runId: string, sample: SampleState, k: number): { buf: Buffer; g: Float32Array };
  deleteRun(runId: string): void;
}

/**
 * Writes inside a transaction return their own promises, which reject when the commit fails; the
 * commit's own promise reports that failure, so these must not become unhandled rejections (Node
 * would exit, e.g. on a full disk).
 */
function settled(write: unknown): void {
  const p = write as { then?: unknown; catch?: (f: () => undefined) => unknown } | null;
  if (p !== null && typeof p === 'object' && typeof p.catch === 'function') p.catch(() => undefined);
}

/** Every key [runId, …] of a table: [runId] sorts before them all, [runId + NUL] after. */
function runRange(runId: string): { start: [string]; end: [string] } {
  return { start: [runId], end: [`${runId}\u0000`] };
}

export class Store {
  private readonly root: RootDatabase;
  private readonly runsDb: Database<RunRecord, string>;
  private readonly commitsDb: Database<number, [string, number]>;
  private readonly queriesDb: Database<QueryRecord, [string, number]>;
  private readonly samplesDb: Database<Buffer, [string, string]>;
  private readonly metaDb: Database<number, string>;
  private readonly profilesDb: Database<ClipProfileRecord, [string, string]>;
  private readonly runStates = new Map<string, RunState>();
  private tail: Promise<void> = Promise.resolve();
  readonly dataDir: string;
  private readonly commitDelayMs: number;

  private constructor(root: RootDatabase, dataDir: string, commitDelayMs: number) {
    this.root = root;
    this.dataDir = dataDir;
    this.commitDelayMs = commitDelayMs;
    this.runsDb = root.openDB<RunRecord, string>({ name: 'runs' });
    this.commitsDb = root.openDB<number, [string, number]>({ name: 'commits' });
    this.queriesDb = root.openDB<QueryRecord, [string, number]>({ name: 'queries' });
    this.samplesDb = root.openDB<Buffer, [string, string]>({ name: 'samples', encoding: 'binary' });
    this.metaDb = root.openDB<number, string>({ name: 'meta' });
    this.profilesDb = root.openDB<ClipProfileRecord, [string, string]>({ name: 'profiles' });
  }

  /** Opens (creating when missing) the store and loads every run into memory. */
  static async open(options: StoreOptions): Promise<Store> {
    let root: RootDatabase;
    try {
      mkdirSync(options.dataDir, { recursive: true });
      // noSubdir: false, else lmdb-js takes a directory whose name has an extension for a file.
      root = open({ path: options.dataDir, mapSize: options.mapSizeBytes, maxDbs: 16, noSubdir: false });
    } catch (err) {
      throw new MotiveError('MOTIVE_STORE_OPEN', `${options.dataDir}: ${(err as Error).message}`, { cause: err });
    }
    const store = new Store(root, options.dataDir, options.commitDelayMs ?? 0);
    const format = store.metaDb.get('format');
    if (format === undefined) {
      await store.metaDb.put('format', STORE_FORMAT_VERSION);
      await root.flushed;
    } else if (format !== STORE_FORMAT_VERSION) {
      await root.close();
      throw new MotiveError(
        'MOTIVE_STORE_FORMAT',
        `${options.dataDir} holds format ${String(format)}, this daemon reads format ${STORE_FORMAT_VERSION}`,
      );
    }
    store.loadAll();
    return store;
  }

  private loadAll(): void {
    for (const { key, value } of this.runsDb.getRange()) {
      const run = new RunState(value.info);
      for (const id of value.queryIds) run.queryColumn(id);
      run.weightsVersion = value.weightsVersion;
      run.batches = value.batches;
      run.sketches = value.sketches;
      run.lastStep = value.lastStep;
      for (const { key: k, value: seq } of this.commitsDb.getRange(runRange(key))) run.commits.set(k[1], seq);
      for (const { value: q } of this.queriesDb.getRange(runRange(key))) {
        const columns = Int32Array.from(q.ids, (id) => run.queryColumn(id));
        run.addQuerySet({
          version: q.version,
          step: q.step,
          ids: q.ids,
          groups: q.groups,
          columns,
          sketches: bytesToFloat32(q.sketches),
          receivedAtMs: q.receivedAtMs,
        });
      }
      for (const { key: k, value: buf } of this.samplesDb.getRange(runRange(key))) {
        run.samples.set(k[1], decodeSample(k[1], buf));
        run.mirror.set(k[1], embeddingView(buf));
      }
      this.runStates.set(key, run);
    }
  }

  run(runId: string): RunState | undefined {
    return this.runStates.get(runId);
  }

  runs(): RunState[] {
    return [...this.runStates.values()];
  }

  /** Registers a run in memory; persist it with `tx.putRun` in the same commit. */
  createRun(info: RunInfo): RunState {
    const run = new RunState(info);
    this.runStates.set(info.id, run);
    return run;
  }

  /**
   * Runs `mutate` inside one LMDB write transaction and resolves once the transaction is
   * committed and flushed to disk. Commits are serialised in call order. When the commit
   * fails, in-memory state is reloaded from disk, so memory never runs ahead of the store.
   */
  commit(mutate: (tx: StoreTx) => void): Promise<void> {
    const result = this.tail.then(() => this.commitNow(mutate));
    this.tail = result.catch(() => undefined);
    return result;
  }

  private async commitNow(mutate: (tx: StoreTx) => void): Promise<void> {
    if (this.commitDelayMs > 0) await new Promise((r) => setTimeout(r, this.commitDelayMs));
    const tx: StoreTx = {
      putRun: (run) => {
        const record: RunRecord = {
          info: run.info,
          queryIds: run.queryIds,
          weightsVersion: run.weightsVersion,
          batches: run.batches,
          sketches: run.sketches,
          lastStep: run.lastStep,
        };
        settled(this.runsDb.put(run.info.id, record));
      },
      putCommit: (runId, rank, seq) => settled(this.commitsDb.put([runId, rank], seq)),
      putQuerySet: (runId, qs) => {
        const record: QueryRecord = {
          version: qs.version,
          step: qs.step,
          ids: [...qs.ids],
          groups: [...qs.groups],
          receivedAtMs: qs.receivedAtMs,
          sketches: float32Bytes(qs.sketches),
        };
        settled(this.queriesDb.put([runId, qs.version], record));
      },
      putSample: (runId, sample, record) => {
        if (record !== undefined) {
          const shape = recordShape(record);
          let value = record;
          if (shape.nq === sample.sums.length) writeSampleHeader(record, sample, shape.k);
          else {
            // Queries were added after openRecord: lay the record out again around the same G(z).
            const grown = newSampleRecord(sample, shape.k);
            copyEmbedding(record, grown.g);
            value = grown.buf;
          }
          settled(this.samplesDb.put([runId, sample.id], value));
          const run = this.runStates.get(runId);
          if (run !== undefined) run.mirror.set(sample.id, embeddingView(value));
          return;
        }
        const k = this.runStates.get(runId)?.info.dim ?? 0;
        const fresh = newSampleRecord(sample, k);
        this.readEmbeddingInto(runId, sample.id, fresh.g);
        settled(this.samplesDb.put([runId, sample.id], fresh.buf));
      },
      openRecord: (runId, sample, k) => {
        const fresh = newSampleRecord(sample, k);
        this.readEmbeddingInto(runId, sample.id, fresh.g);
        return fresh;
      },
      deleteRun: (runId) => {
        settled(this.runsDb.remove(runId));
        const dbs = [this.commitsDb, this.queriesDb, this.samplesDb] as unknown as Database<unknown, Key[]>[];
        for (const db of dbs) for (const key of db.getKeys(runRange(runId))) settled(db.remove(key));
      },
    };
    try {
      await this.root.transaction(() => {
        mutate(tx);
      });
      await this.root.flushed;
    } catch (err) {
      settled((err as { commitError?: unknown }).commitError);
      this.runStates.clear();
      this.loadAll();
      const message = (err as Error).message;
      // lmdb-js puts the system error (ENOSPC, EIO, ...) in a promise beside the error.
      const commitError = (err as { commitError?: unknown }).commitError;
      let cause = '';
      if (commitError instanceof Promise)
        cause = describeError(
          await commitError.then(
            () => '',
            (e: unknown) => e,
          ),
        );
      const detail = `${message} ${cause}`;
      if (/MDB_MAP_FULL|ENOSPC|EFBIG|No space|too large/i.test(detail)) throw new MotiveError('MOTIVE_STORE_FULL', message, { cause: err });
      throw new MotiveError('MOTIVE_STORE_COMMIT', message, { cause: err });
    }
  }

  private readEmbeddingInto(runId: string, sampleId: string, out: Float32Array): boolean {
    // getBinaryFast's buffer is only valid until the next read: copy out at once.
    const buf = this.samplesDb.getBinaryFast([runId, sampleId]);
    if (buf === undefined) {
      out.fill(0);
      return false;
    }
    copyEmbedding(buf, out);
    return true;
  }

  /** Copies G(z) of one sample into `out`; undefined when the sample is not stored. */
  readEmbedding(runId: string, sampleId: string, out: Float32Array): Float32Array | undefined {
    return this.readEmbeddingInto(runId, sampleId, out) ? out : undefined;
  }

  /** G(z) of one sample (a copy), or undefined. */
  embedding(runId: string, sampleId: string, dim: number): Float32Array | undefined {
    const out = new Float32Array(dim);
    return this.readEmbeddingInto(runId, sampleId, out) ? out : undefined;
  }

  /**
   * Streams a run's embeddings in chunks: `onChunk(ids, rows)` gets up to `chunkSamples` ids and
   * their G(z) rows packed [n × dim]. The rows buffer is reused between calls.
   */
  *embeddingChunks(runId: string, dim: number, chunkSamples: number): Generator<{ ids: string[]; rows: Float32Array }> {
    const rows = new Float32Array(chunkSamples * dim);
    const bytes = new Uint8Array(rows.buffer);
    let ids: string[] = [];
    for (const { key, value } of this.samplesDb.getRange(runRange(runId))) {
      const start = embeddingOffset(recordShape(value).nq);
      bytes.set(value.subarray(start, start + dim * 4), ids.length * dim * 4);
      ids.push(key[1]);
      if (ids.length === chunkSamples) {
        yield { ids, rows };
        ids = [];
      }
    }
    if (ids.length > 0) yield { ids, rows: rows.subarray(0, ids.length * dim) };
  }

  /** Deletes a run and everything stored under it, durably. */
  async deleteRun(runId: string): Promise<boolean> {
    if (!this.runStates.has(runId)) return false;
    await this.commit((tx) => {
      tx.deleteRun(runId);
      this.runStates.delete(runId);
    });
    return true;
  }

  /**
   * Writes a consistent, compacted copy of the whole store into `dir` (created; must not hold a
   * store already) while the daemon keeps running. Start a daemon on that directory to restore.
   */
  async backup(dir: string): Promise<void> {
    mkdirSync(dir, { recursive: true });
    if (existsSync(join(dir, 'data.mdb'))) throw new Error(`${dir} already holds a store`);
    await this.root.backup(dir, true);
  }

  /**
   * Stores motion profiles in one transaction, serialised with {@link Store.commit}; resolves
   * once durable. A profile for an existing [clipId, hash] replaces it.
   */
  putProfiles(entries: ReadonlyArray<{ clipId: string; record: ClipProfileRecord }>): Promise<void> {
    const result = this.tail.then(async () => {
      await this.root.transaction(() => {
        for (const e of entries) settled(this.profilesDb.put([e.clipId, e.record.hash], e.record));
      });
      await this.root.flushed;
    });
    this.tail = result.catch(() => undefined);
    return result;
  }

  /** The clip's newest profile (by `profiledAtMs`), or undefined. */
  profile(clipId: string): ClipProfileRecord | undefined {
    let newest: ClipProfileRecord | undefined;
    for (const { value } of this.profilesDb.getRange(runRange(clipId))) {
      if (newest === undefined || value.profiledAtMs > newest.profiledAtMs) newest = value;
    }
    return newest;
  }

  /** Whether the clip has a profile computed from a file with this hash. */
  hasProfile(clipId: string, hash: string): boolean {
    return this.profilesDb.doesExist([clipId, hash]);
  }

  /** Bytes the store occupies (LMDB's own accounting). */
  sizeBytes(): number {
    const stats = this.root.getStats() as { pageSize?: number; lastPageNumber?: number };
    return (stats.pageSize ?? 4096) * ((stats.lastPageNumber ?? 0) + 1);
  }

  async close(): Promise<void> {
    await this.tail;
    await this.root.close();
  }
}
