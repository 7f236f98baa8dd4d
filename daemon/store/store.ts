/**
 * The embedded store, the only module that imports lmdb. Under `dataDir`:
 *
 *   dataDir/                LMDB: meta, runs, commits, queries, profiles, previews and the write-ahead `log`
 *   dataDir/records/<run>/  append-only record segments: one frame per written sample record
 *                           (counters, S_j sums and G(z), float32[k]) or weight entry (segments.ts)
 *
 * Ingest appends each batch to the log (one sequential value per batch) in a small durable
 * transaction and acknowledges it; the batch's effect on its samples is then applied in memory,
 * where touched samples stay *dirty* (their pending G(z) change held in memory) until a background
 * flusher appends them in large chunks to their run's segments, trims the log behind them and
 * compacts the segments. The log and the segments are separate files written from separate
 * threads, so a flush never delays an Ack. On start-up the log entries newer than a sample's record
 * are replayed (docs/store.md).
 */
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { Database, Key, RootDatabase } from 'lmdb';
import { MotiveError } from '../shared/index.js';
import { Tables, openMain, runRange, settled, type ClipProfileRecord } from './tables.js';
import { CommitLog, type StoreTx } from './commit-log.js';
import { PendingSamples } from './pending.js';
import { Flusher, type FlushStats } from './flusher.js';
import { Recovery } from './recovery.js';
import { applyBatch, applyWeights, type BatchEffect } from './apply-batch.js';
import { ClipTables } from './profiles.js';
import { STORE_FORMAT_VERSION, checkFormat, hasSamplesEnv, moveSampleRecords, removeSamplesEnv } from './migration.js';
import { RunState, type RunInfo, type SampleState } from './run-state.js';
import { mergeHistory, type HistoryPoint } from './history.js';
import { bytesToFloat32, embeddingOffset, recordShape, sampleRecordBytes, writeSampleRecord } from './codec.js';
import { pendingScores, type PendingScores } from './pending-scores.js';
import { FeatureTables, sameNames } from './features.js';
import { PreviewTable, type PreviewEntry, type PreviewRecord } from './previews.js';
import { SidecarJobs } from './jobs.js';
import { SegmentManifest } from './manifest.js';
import {
  FRAME_RECORD,
  RunSegments,
  WEIGHT_BODY_BYTES,
  beginFrame,
  bodyOffset,
  frameBytes,
  listSegments,
  removeDeletedRuns,
  removeRunDir,
  runSegmentsDir,
  sealFrame,
} from './segments.js';

export interface StoreOptions {
  readonly dataDir: string;
  readonly mapSizeBytes: number;
  /** Fault injection: delay before each commit in ms (default 0). */
  readonly commitDelayMs?: number;
  /** Most dirty samples held in memory before ingest waits for the flusher (default 65,536). */
  readonly maxDirtySamples?: number;
  /** A flush starts this long after the first sample turns dirty, or at half of maxDirtySamples (default 1000). */
  readonly flushIntervalMs?: number;
  /** Records per flush write (one append and sync) (default 1024). */
  readonly flushChunkSamples?: number;
  /** A run's record segments are this large before the next is started (default 64 MiB, at most 1 GiB). */
  readonly segmentBytes?: number;
  /**
   * Commit the main environment's transactions synchronously on the calling thread (default
   * false: lmdb-js's write thread). Either way a commit resolves only once it is on disk.
   */
  readonly syncCommits?: boolean;
  /** Hears each repair made while opening (a torn tail cut off, a leftover removed), to log it. */
  readonly onRepair?: (message: string, detail: Record<string, unknown>) => void;
}

/** Default size of a record segment. */
const DEFAULT_SEGMENT_BYTES = 64 << 20;

export class Store {
  private readonly root: RootDatabase;
  private readonly tables: Tables;
  /** Each run's written records and weight entries (segments.ts), under `dataDir/records`. */
  private readonly segments = new Map<RunState, RunSegments>();
  private readonly recordsDir: string;
  private readonly segmentBytes: number;
  /** Per-sample features and each run's feature names (features.ts). */
  private readonly featureTables: FeatureTables;
  /** Clips' motion profiles and previews (profiles.ts). */
  private readonly clips: ClipTables;
  /** Side-car attribution jobs (jobs.ts). */
  readonly jobs: SidecarJobs;
  private readonly manifest: SegmentManifest;
  private readonly onRepair: (message: string, detail: Record<string, unknown>) => void;
  private readonly runStates = new Map<string, RunState>();
  /** The commit queue and the log's bookkeeping (commit-log.ts). */
  private readonly commitLog: CommitLog;
  readonly dataDir: string;
  /** Writes dirty samples to their segments in the background, and holds ingest back (flusher.ts). */
  private readonly flusher: Flusher;

  /** Dirty samples, their pending changes and their written records' bases (pending.ts). */
  private readonly pending: PendingSamples;
  private constructor(tables: Tables, dataDir: string, options: StoreOptions) {
    const root = tables.root;
    this.root = root;
    this.tables = tables;
    this.manifest = new SegmentManifest(root);
    this.onRepair = options.onRepair ?? (() => undefined);
    this.dataDir = dataDir;
    this.recordsDir = join(dataDir, 'records');
    this.segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    this.featureTables = new FeatureTables(root);
    this.commitLog = new CommitLog(tables, this.featureTables, this.runStates, { ...options, dataDir });
    this.pending = new PendingSamples((run) => this.segmentsOf(run));
    this.flusher = new Flusher(
      {
        tables,
        commitLog: this.commitLog,
        pending: this.pending,
        runStates: this.runStates,
        segments: this.segments,
        segmentsOf: (run) => this.segmentsOf(run),
        manifest: this.manifest,
        dataDir,
      },
      options,
    );
    this.clips = new ClipTables(this.tables.profiles, new PreviewTable(root), (write) => this.commit(write));
    this.jobs = new SidecarJobs(root);
  }

  /** Opens (creating when missing) the store, loads every run into memory and replays the log. */
  static async open(options: StoreOptions): Promise<Store> {
    const root = openMain(options.dataDir, options.mapSizeBytes);
    const tables = new Tables(root);
    const format = tables.meta.get('format');
    try {
      checkFormat(format, options.dataDir);
    } catch (err) {
      await root.close();
      throw err;
    }
    const recordsDir = join(options.dataDir, 'records');
    const segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    try {
      if (hasSamplesEnv(format)) {
        const runIds = [...tables.runs.getKeys()];
        await moveSampleRecords(options.dataDir, runIds, options.mapSizeBytes, segmentBytes);
      }
      removeDeletedRuns(recordsDir);
    } catch (err) {
      await root.close();
      throw new MotiveError('MOTIVE_STORE_OPEN', `${options.dataDir}: ${(err as Error).message}`, { cause: err });
    }
    const store = new Store(tables, options.dataDir, options);
    try {
      await store.recover(format !== undefined && format < STORE_FORMAT_VERSION);
      if (format !== STORE_FORMAT_VERSION) {
        await tables.meta.put('format', STORE_FORMAT_VERSION);
        await root.flushed;
      }
      // The samples environment of a format 3 or 4 store, once its records are in segments.
      removeSamplesEnv(options.dataDir);
    } catch (err) {
      await store.closeFiles();
      throw err instanceof MotiveError
        ? err
        : new MotiveError('MOTIVE_STORE_OPEN', `${options.dataDir}: ${(err as Error).message}`, { cause: err });
    }
    return store;
  }

  /**
   * Loads every run, replays the log (recovery.ts) and starts writing out what the log held; then
   * records the segments as loaded.
   */
  private async recover(legacySegments: boolean): Promise<void> {
    const recovery = new Recovery({
      tables: this.tables,
      commitLog: this.commitLog,
      pending: this.pending,
      runStates: this.runStates,
      segments: this.segments,
      manifest: this.manifest,
      featureTables: this.featureTables,
      jobs: this.jobs,
      recordsDir: this.recordsDir,
      segmentBytes: this.segmentBytes,
      legacySegments,
      onRepair: this.onRepair,
    });
    recovery.load();
    // Mirror rows hold the records' G(z); scans add the replayed changes (pendingScores).
    // What the log held is now dirty in memory: write it out soon, not at the next ingest.
    if (this.pending.count > 0) this.flusher.afterApply();
    await recovery.finishOpen();
  }

  run(runId: string): RunState | undefined {
    return this.runStates.get(runId);
  }

  runs(): RunState[] {
    return [...this.runStates.values()];
  }

  /**
   * Creates a run, durably, and registers it in memory. A segment directory left under its name
   * (a run of the same id deleted while a write of it was in flight) is removed first, never
   * adopted.
   */
  async createRun(info: RunInfo): Promise<RunState> {
    const run = new RunState(info);
    const dir = runSegmentsDir(this.recordsDir, info.id);
    if (existsSync(dir)) {
      this.onRepair(`removed the segment directory a deleted run "${info.id}" left behind`, { dir, segments: listSegments(dir).length });
      removeRunDir(dir);
    }
    await this.commit((tx) => tx.putRun(run));
    // A new, empty directory: nothing to check; every scan refuses a bad frame.
    this.segments.set(run, RunSegments.open(dir, info.id, this.segmentBytes, { hooks: this.manifest.hooks(info.id) }));
    this.runStates.set(info.id, run);
    return run;
  }

  /**
   * Fixes the run's feature names, durably (a no-op when it has these already); fails with
   * MOTIVE_INGEST_FEATURES_MISMATCH when it has others. Checked in commit order, so of two Hellos
   * racing with different names exactly one wins.
   */
  async setFeatureNames(run: RunState, names: readonly string[]): Promise<void> {
    const held = this.featureTables.namesOf(run.info.id);
    if (held.length > 0 && sameNames(held, names)) return;
    let undo = (): void => undefined;
    try {
      await this.commit(() => {
        const change = this.featureTables.nameWrites(run.info.id, names);
        undo = change.undo;
        for (const w of change.writes) settled(w());
      });
    } catch (err) {
      undo();
      throw err;
    }
    if (this.runStates.get(run.info.id) === run && run.features.width === 0) run.features.names = [...names];
  }

  /**
   * Runs `mutate` and writes what it wrote in one LMDB write transaction of the main environment
   * (nothing if it throws), and resolves with its result once the transaction is committed and
   * flushed to disk. Commits are serialised in call order. `mutate` only writes; callers change
   * memory after the promise resolves, so memory never runs ahead of the disk.
   */
  commit<T>(mutate: (tx: StoreTx) => T): Promise<T> {
    return this.commitWith(mutate);
  }

  /** {@link Store.commit} with `direct`, the store's own writes outside StoreTx, in the same transaction. */
  private commitWith<T>(mutate: (tx: StoreTx) => T, direct?: () => void): Promise<T> {
    return this.commitLog.commit(mutate, direct);
  }

  /**
   * Applies a committed batch (logged as `lsn`) to its samples in memory (apply-batch.ts). Called
   * once per batch in log order, live after the commit and again by recovery.
   */
  applyBatch(run: RunState, b: BatchEffect, lsn: number): void {
    applyBatch(this.pending, run, b, lsn);
    this.applied(lsn);
  }

  /** Applies a committed weight change (logged as `lsn`) in memory. */
  applyWeights(run: RunState, ids: readonly string[], weights: Float32Array, lsn: number): void {
    applyWeights(this.pending, run, ids, weights, lsn);
    this.applied(lsn);
  }

  private applied(lsn: number): void {
    this.commitLog.applied(lsn);
    this.flusher.afterApply();
  }

  /**
   * Resolves once fewer than `maxDirtySamples` samples are dirty: ingest awaits it before each
   * group, so memory stays bounded when the flusher falls behind.
   */
  room(): Promise<void> {
    return this.flusher.room();
  }

  /** Writes every dirty sample and trims the log; resolves once both are durable. */
  flush(): Promise<void> {
    return this.flusher.flush();
  }

  /** Flusher and log state. */
  flushStats(): FlushStats {
    return this.flusher.stats();
  }

  private segmentsOf(run: RunState): RunSegments {
    let segments = this.segments.get(run);
    if (segments === undefined) {
      segments = RunSegments.open(runSegmentsDir(this.recordsDir, run.info.id), run.info.id, this.segmentBytes, {
        hooks: this.manifest.hooks(run.info.id),
      });
      this.segments.set(run, segments);
    }
    return segments;
  }

  /** Durable transactions {@link Store.commit} has made since the store was opened. */
  get commits(): number {
    return this.commitLog.count;
  }

  /** A sample's score history (docs/store.md, "Score history"), oldest first; undefined when unknown. */
  sampleHistory(runId: string, sampleId: string): HistoryPoint[] | undefined {
    const run = this.runStates.get(runId);
    const sample = run?.samples.get(sampleId);
    if (run === undefined || sample === undefined) return undefined;
    return mergeHistory(this.pending.writtenHistory(run, sample), this.pending.history.peek(sample), sample.seen);
  }

  /**
   * `q` against the G(z) changes of the run's samples not folded into their records yet: the
   * int8 mirror holds the records' G(z), and a scan adds these (pending-scores.ts).
   */
  pendingScores(run: RunState, q: Float32Array): PendingScores {
    return pendingScores(run, this.pending.deltas.get(run), this.pending.dirty.get(run), q);
  }

  /**
   * The sketches of a committed query set (read back from the store: in memory only the run's
   * newest sets keep theirs, run-state.ts).
   */
  querySketches(runId: string, version: number): Float32Array {
    const q = this.tables.queries.get([runId, version]);
    if (q === undefined) throw new MotiveError('MOTIVE_INGEST_INTERNAL', `run ${runId} has no stored query set v${version}`);
    return bytesToFloat32(q.sketches);
  }

  /** Copies G(z) of one sample into `out`; undefined when the run has no such sample. */
  readEmbedding(runId: string, sampleId: string, out: Float32Array): Float32Array | undefined {
    const run = this.runStates.get(runId);
    const sample = run?.samples.get(sampleId);
    if (run === undefined || sample === undefined) return undefined;
    this.pending.currentEmbedding(run, sample, out);
    return out;
  }

  /** G(z) of one sample (a copy), or undefined. */
  embedding(runId: string, sampleId: string, dim: number): Float32Array | undefined {
    return this.readEmbedding(runId, sampleId, new Float32Array(dim));
  }

  /**
   * Streams a run's current embeddings in chunks of up to `chunkSamples` ids and their G(z) rows
   * packed [n × dim]: the run's segments front to back (rows of changed samples computed from
   * memory), then the samples not written yet. The rows buffer is reused between chunks. Iterate
   * it without awaiting in between: a compaction may delete a segment meanwhile.
   */
  *embeddingChunks(runId: string, dim: number, chunkSamples: number): Generator<{ ids: string[]; rows: Float32Array }> {
    const run = this.runStates.get(runId);
    if (run === undefined) return;
    const rows = new Float32Array(chunkSamples * dim);
    const bytes = new Uint8Array(rows.buffer);
    const changed = new Set<SampleState>(this.pending.dirty.get(run));
    for (const s of this.pending.inflight.keys()) if (run.samples.get(s.id) === s) changed.add(s);
    const g = new Float32Array(run.info.dim);
    let ids: string[] = [];
    const put = (sample: SampleState): void => {
      this.pending.currentEmbedding(run, sample, g);
      rows.set(g.subarray(0, dim), ids.length * dim);
      ids.push(sample.id);
    };
    for (const f of this.segmentsOf(run).scan()) {
      if (f.kind !== FRAME_RECORD) continue;
      const sample = run.samples.get(f.id);
      // Only each sample's newest record; older versions are garbage left for compaction.
      if (sample?.at !== f.loc) continue;
      if (changed.delete(sample)) put(sample);
      else {
        const start = embeddingOffset(recordShape(f.body).nq);
        bytes.set(f.body.subarray(start, start + dim * 4), ids.length * dim * 4);
        ids.push(f.id);
      }
      if (ids.length === chunkSamples) {
        yield { ids, rows };
        ids = [];
      }
    }
    for (const sample of changed) {
      put(sample);
      if (ids.length === chunkSamples) {
        yield { ids, rows };
        ids = [];
      }
    }
    if (ids.length > 0) yield { ids, rows: rows.subarray(0, ids.length * dim) };
  }

  /**
   * Writes sample records straight into the run's segments, durably, bypassing the log (imports
   * and fixtures): the samples' current counters, sums and weight, with `g` as G(z) (default:
   * the current G(z)). The run must be committed already.
   */
  async writeSamples(runId: string, entries: ReadonlyArray<{ sample: SampleState; g?: Float32Array }>): Promise<void> {
    const run = this.runStates.get(runId);
    if (run === undefined) throw new MotiveError('MOTIVE_INGEST_INTERNAL', `run ${runId} is not registered`);
    const resume = await this.flusher.pause();
    try {
      const k = run.info.dim;
      const set = this.pending.setOf(run);
      const pool = this.pending.poolOf(run);
      const segments = this.segmentsOf(run);
      const sizes = entries.map(({ sample }) => {
        const idBytes = Buffer.byteLength(sample.id);
        return { idBytes, body: sampleRecordBytes(sample.nq, k) };
      });
      const out = Buffer.allocUnsafeSlow(sizes.reduce((t, x) => t + frameBytes(x.idBytes, x.body), 0));
      let offset = 0;
      const placed = entries.map(({ sample, g }, i) => {
        const { idBytes, body } = sizes[i] as { idBytes: number; body: number };
        const bytes = frameBytes(idBytes, body);
        const frame = out.subarray(offset, offset + bytes);
        const start = bodyOffset(idBytes);
        const pos = offset + start;
        offset += bytes;
        // Imports set the sums; the total follows them.
        sample.total = run.sumsOf(sample).reduce((t, x) => t + x, 0);
        beginFrame(frame, FRAME_RECORD, sample.id, idBytes, body);
        const record = frame.subarray(start, start + body);
        const recordG = writeSampleRecord(record, run, sample, k, this.commitLog.appliedLsn);
        if (g !== undefined) recordG.set(g.subarray(0, k));
        else this.pending.currentEmbedding(run, sample, recordG);
        sealFrame(frame);
        return { sample, pos, bytes, idBytes, body, g: recordG };
      });
      const base = await segments.append([out]);
      // Bypassing the log: only the segment holds these, from now on at the size recorded.
      await this.manifest.record(runId, segments.sizes());
      for (const { sample, pos, bytes, idBytes, body, g } of placed) {
        const known = run.samples.get(sample.id);
        if (known !== undefined) {
          if (known.at >= 0) segments.release(known.at, frameBytes(idBytes, known.atBytes));
          if (known.weightAt >= 0) segments.release(known.weightAt, frameBytes(idBytes, WEIGHT_BODY_BYTES));
          this.pending.inflight.delete(known);
        }
        run.putSample(sample, known);
        run.mirror.set(run.mirrorSlot(sample), g);
        sample.at = base + pos;
        sample.atBytes = body;
        sample.weightAt = -1;
        segments.retain(sample.at, bytes);
        sample.lsn = sample.flushedLsn = this.commitLog.appliedLsn;
        if (sample.delta >= 0) pool.release(sample.delta);
        sample.delta = -1;
        this.pending.inflight.delete(sample);
        if (set.delete(sample)) this.pending.count--;
      }
    } finally {
      resume();
    }
  }

  /** Deletes a run and everything stored under it, durably. */
  async deleteRun(runId: string): Promise<boolean> {
    const run = this.runStates.get(runId);
    if (run === undefined) return false;
    const resume = await this.flusher.pause();
    try {
      // The run's records last: a crash in between leaves a directory no run refers to, which
      // creating a run of the same id removes (never a run whose recorded segments are missing).
      const segments = this.segmentsOf(run);
      const logKeys: number[] = [];
      for (const { key, value } of this.tables.log.getRange()) if (value.runId === runId) logKeys.push(key);
      const featureWrites = [...this.featureTables.removeWrites(runId), ...this.jobs.removeWrites(runId)];
      const dbs = [this.tables.commits, this.tables.queries] as unknown as Database<unknown, Key[]>[];
      const keys = dbs.map((db) => [...db.getKeys(runRange(runId))]);
      await this.commitWith(
        () => undefined,
        () => {
          this.manifest.removeRun(runId);
          settled(this.tables.runs.remove(runId));
          dbs.forEach((db, i) => {
            for (const key of keys[i] ?? []) settled(db.remove(key));
          });
          for (const key of logKeys) settled(this.tables.log.remove(key));
          for (const w of featureWrites) settled(w());
        },
      );
      this.featureTables.forget(runId);
      this.jobs.forget(runId);
      await segments.remove();
      this.segments.delete(run);
      this.commitLog.persistedRuns.delete(runId);
      this.commitLog.entries -= logKeys.length;
      this.runStates.delete(runId);
      this.pending.dropRun(run);
      this.flusher.wakeRoomWaiters();
      return true;
    } finally {
      resume();
    }
  }

  /**
   * Writes a consistent, compacted copy of the whole store into `dir` (created; must not hold a
   * store already) while the daemon keeps running. Start a daemon on that directory to restore.
   * Resolves with the bytes written.
   */
  async backup(dir: string): Promise<number> {
    mkdirSync(dir, { recursive: true });
    if (existsSync(join(dir, 'data.mdb')) || existsSync(join(dir, 'records'))) throw new Error(`${dir} already holds a store`);
    const resume = await this.flusher.pause();
    try {
      // Records first, then the main environment: with the flusher paused the log is not trimmed
      // in between, so the copy's log holds every change newer than the copy's sample records.
      let bytes = 0;
      for (const [run, segments] of this.segments) {
        if (this.runStates.get(run.info.id) !== run) continue;
        bytes += await segments.copyTo(join(dir, 'records', basename(segments.dir)));
      }
      await this.root.backup(dir, true);
      return bytes + statSync(join(dir, 'data.mdb')).size;
    } finally {
      resume();
    }
  }

  /**
   * Stores motion profiles in one transaction, serialised with {@link Store.commit}; resolves
   * once durable. A profile for an existing [clipId, hash] replaces it.
   */
  putProfiles(entries: ReadonlyArray<{ clipId: string; record: ClipProfileRecord }>): Promise<void> {
    return this.clips.putProfiles(entries);
  }

  /** The clip's newest profile (by `profiledAtMs`), or undefined. */
  profile(clipId: string): ClipProfileRecord | undefined {
    return this.clips.profile(clipId);
  }

  /** Stores clip previews in one transaction, serialised with {@link Store.commit}; resolves once durable. */
  putPreviews(entries: readonly PreviewEntry[]): Promise<void> {
    return this.clips.putPreviews(entries);
  }

  /** The `kind` preview of the clip's newest profile (previews.ts), or undefined. */
  preview(clipId: string, kind: string): PreviewRecord | undefined {
    return this.clips.preview(clipId, kind);
  }

  /** Whether every one of `kinds` is stored for the clip file with this hash. */
  hasPreviews(clipId: string, hash: string, kinds: readonly string[]): boolean {
    return this.clips.hasPreviews(clipId, hash, kinds);
  }

  /** Whether the clip has a profile computed from a file with this hash. */
  hasProfile(clipId: string, hash: string): boolean {
    return this.clips.hasProfile(clipId, hash);
  }

  /** Bytes the store occupies (the main environment by LMDB's own accounting, and the record segments). */
  sizeBytes(): number {
    const stats = this.root.getStats() as { pageSize?: number; lastPageNumber?: number };
    let total = (stats.pageSize ?? 4096) * ((stats.lastPageNumber ?? 0) + 1);
    for (const segments of this.segments.values()) total += segments.bytes;
    return total;
  }

  /** Writes every dirty sample, trims the log and closes both environments. */
  async close(): Promise<void> {
    await this.commitLog.tail;
    this.flusher.cancelTimer();
    try {
      await this.flusher.flush();
    } finally {
      this.flusher.close();
      await this.commitLog.tail;
      await this.closeFiles();
    }
  }

  /** Closes the main environment and every segment file. */
  private async closeFiles(): Promise<void> {
    for (const segments of this.segments.values()) await segments.close();
    this.segments.clear();
    await this.root.close();
  }
}
