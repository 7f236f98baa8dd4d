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
import { MotiveError, decodeSketches, normalizeRows, trace } from '../shared/index.js';
import { Tables, openMain, runRange, settled, type ClipProfileRecord } from './tables.js';
import { storeError } from './store-errors.js';
import { CommitLog, type StoreTx } from './commit-log.js';
import { PendingSamples } from './pending.js';
import { applyBatch, applyWeights, type BatchEffect } from './apply-batch.js';
import { ClipTables } from './profiles.js';
import { STORE_FORMAT_VERSION, checkFormat, hasSamplesEnv, moveSampleRecords, removeSamplesEnv } from './migration.js';
import { crashPoint } from '../shared/crash-point.js';
import { RunState, type RunInfo, type SampleState } from './run-state.js';
import { HISTORY_TRAILER_BYTES, appendToTrailer, mergeHistory, type HistoryPoint } from './history.js';
import {
  bytesToFloat32,
  decodeSample,
  embeddingOffset,
  embeddingView,
  RECORD_LSN_OFFSET,
  recordShape,
  sampleRecordBytes,
  smallInt,
  writeSampleRecord,
  writeSampleRecordAt,
  writeWeightBody,
} from './codec.js';
import { pendingScores, type PendingScores } from './pending-scores.js';
import { FeatureTables, sameNames } from './features.js';
import { PreviewTable, type PreviewEntry, type PreviewRecord } from './previews.js';
import { SidecarJobs } from './jobs.js';
import { REMOVING, SegmentManifest } from './manifest.js';
import {
  FRAME_RECORD,
  FRAME_WEIGHT,
  RunSegments,
  WEIGHT_BODY_BYTES,
  beginFrame,
  beginFrameAt,
  bodyOffset,
  frameBytes,
  listSegments,
  removeDeletedRuns,
  removeRunDir,
  removeSegmentFile,
  runSegmentsDir,
  sealFrame,
  sealFrameAt,
  type MovedFrame,
  type ScannedFrame,
  type SegmentProblem,
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

/** What the flusher is doing, for metrics and `motive status`. */
export interface FlushStats {
  /** Samples whose newest state is only in the log and in memory. */
  readonly dirtySamples: number;
  /** Log entries not yet trimmed. */
  readonly logEntries: number;
  readonly cycles: number;
  readonly samplesFlushed: number;
  /** Bytes of superseded records reclaimed by compaction. */
  readonly bytesCompacted: number;
  readonly lastCycleMs: number;
  readonly lastError: string | undefined;
}

/**
 * Records the flusher builds per event-loop turn: under 1 ms of main thread, so an Ack waiting
 * behind a slice waits at most that long (a slice of 256 held the Ack path behind ~3 ms turns and
 * doubled Ack latency at 10,000 sketches/s; 32 is no better than 64). docs/performance.md.
 */
const FLUSH_SLICE = 64;

/**
 * Free flush-slice buffers kept per size: a chunk of the default 1024 records uses 16, and two
 * chunks are in flight at a time (one written while the next is built), 8 MiB at k = 512. Larger
 * chunks (`store.flushChunkSamples`) allocate the rest per chunk.
 */
const ARENAS_KEPT = 32;

/**
 * Compaction starts when a run's segments hold more than this many times their live bytes (each
 * record rewritten about once on average: a bounded write amplification, half the disk wasted).
 */
const MAX_GARBAGE_RATIO = 2;

/** A flushed frame: its sample, where its body lies in the chunk, its frame's size. */
interface FlushedFrame {
  readonly sample: SampleState;
  /** Offset of the frame's body from the chunk's first byte. */
  readonly pos: number;
  readonly bytes: number;
  readonly idBytes: number;
  readonly flushedBefore: number;
}

/** A flush chunk's frames, built and not yet known written. */
interface FlushChunk {
  readonly run: RunState;
  /** Record frames; `buf` is the record (the frame's body). */
  readonly records: Array<FlushedFrame & { buf: Uint8Array }>;
  /** Samples whose weight alone changed since their record: a weight entry each (lsn, weight). */
  readonly weights: FlushedFrame[];
  /** The frames, back to back, as appended. */
  readonly frames: Buffer[];
  /** The slices' buffers, given back once the records are written. */
  readonly arenas: Arena[];
  /** performance.now() when its build began (the trace's flush-write span), 0 without a trace. */
  readonly builtFrom: number;
}

/** A flush slice's buffer with views of its memory, reused from cycle to cycle. */
interface Arena {
  readonly buf: Buffer;
  readonly bytes: Uint8Array;
  readonly f64: Float64Array;
  readonly f32: Float32Array;
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
  /** Opened from a store from before the segment manifest (format < 6): its segments are checked as format 5 wrote them. */
  private readonly legacySegments: boolean;
  private readonly onRepair: (message: string, detail: Record<string, unknown>) => void;
  private readonly runStates = new Map<string, RunState>();
  /** The commit queue and the log's bookkeeping (commit-log.ts). */
  private readonly commitLog: CommitLog;
  readonly dataDir: string;
  private readonly maxDirty: number;
  private readonly flushIntervalMs: number;
  private readonly flushChunk: number;

  /** Dirty samples, their pending changes and their written records' bases (pending.ts). */
  private readonly pending: PendingSamples;
  /** Free flush-slice buffers by size (see {@link Store.takeArena}). */
  private readonly arenas = new Map<number, Arena[]>();
  /** The flush slice being built: its samples, id bytes and body bytes (reused). */
  private readonly sliceSamples: SampleState[] = [];
  private readonly sliceIdBytes = new Int32Array(FLUSH_SLICE);
  private readonly sliceBody = new Int32Array(FLUSH_SLICE);
  /** Per run, segments whose deletion a crash interrupted (finished while loading, forgotten by finishOpen). */
  private readonly unfinishedRemovals = new Map<string, number[]>();
  /** True while the log is replayed at start-up. */
  private replaying = false;
  private flushTimer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private flushPaused = 0;
  private closed = false;
  private stats = { cycles: 0, samplesFlushed: 0, bytesCompacted: 0, lastCycleMs: 0, lastError: undefined as string | undefined };
  private roomWaiters: Array<{ resolve: () => void; reject: (err: unknown) => void }> = [];
  /** The last flush failure, while ingest is held back by it. */
  private flushFailure: MotiveError | undefined;

  private constructor(tables: Tables, dataDir: string, options: StoreOptions, legacySegments: boolean) {
    const root = tables.root;
    this.root = root;
    this.tables = tables;
    this.manifest = new SegmentManifest(root);
    this.legacySegments = legacySegments;
    this.onRepair = options.onRepair ?? (() => undefined);
    this.dataDir = dataDir;
    this.recordsDir = join(dataDir, 'records');
    this.segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    this.maxDirty = options.maxDirtySamples ?? 65536;
    this.flushIntervalMs = options.flushIntervalMs ?? 1000;
    this.flushChunk = options.flushChunkSamples ?? 1024;
    this.featureTables = new FeatureTables(root);
    this.pending = new PendingSamples((run) => this.segmentsOf(run));
    this.commitLog = new CommitLog(tables, this.featureTables, this.runStates, { ...options, dataDir });
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
    const store = new Store(tables, options.dataDir, options, format !== undefined && format < STORE_FORMAT_VERSION);
    try {
      store.loadAll();
      await store.finishOpen();
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
   * After loading: a store from before the manifest records its segments as loaded (torn tails
   * cut off); segments whose deletion a crash interrupted are forgotten.
   */
  private async finishOpen(): Promise<void> {
    const sizes = new Map<string, Map<number, number>>();
    if (this.legacySegments) for (const [run, segments] of this.segments) sizes.set(run.info.id, segments.sizes());
    await this.manifest.recordAll(sizes, this.unfinishedRemovals);
    this.unfinishedRemovals.clear();
  }

  private loadAll(): void {
    let maxLsn = 0;
    for (const { key, value } of this.tables.runs.getRange()) {
      const run = new RunState(value.info);
      for (const id of value.queryIds) run.queryColumn(id);
      run.weightsVersion = value.weightsVersion;
      run.batches = value.batches;
      run.sketches = value.sketches;
      run.lastStep = value.lastStep;
      this.commitLog.persistedRuns.set(key, value);
      this.featureTables.load(key, run.features);
      this.jobs.load(key);
      for (const { key: k, value: seq } of this.tables.commits.getRange(runRange(key))) run.commits.set(k[1], seq);
      for (const { value: q } of this.tables.queries.getRange(runRange(key))) {
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
      const lsn = this.loadSegments(run);
      if (lsn > maxLsn) maxLsn = lsn;
      this.runStates.set(key, run);
    }
    this.commitLog.lsn = maxLsn;
    this.commitLog.appliedLsn = maxLsn;
    this.replaying = true;
    try {
      this.replayLog();
    } finally {
      this.replaying = false;
    }
    // Mirror rows hold the records' G(z); scans add the replayed changes (pendingScores).
    // What the log held is now dirty in memory: write it out soon, not at the next ingest.
    if (this.pending.count > 0) this.afterApply();
  }

  /**
   * Loads a run's samples from its segments: each sample's newest record (the larger lsn; of
   * equal ones the later, as a compaction's copy is), then its newest weight entry where that is
   * newer than the record. Returns the largest lsn met.
   */
  private loadSegments(run: RunState): number {
    const id = run.info.id;
    const dir = runSegmentsDir(this.recordsDir, id);
    const expected = this.legacySegments ? undefined : this.manifest.entries(id);
    const removals: number[] = [];
    for (const [seq, size] of expected ?? []) {
      if (size !== REMOVING) continue;
      // Compaction had copied its live frames and synced them before it began deleting it.
      removeSegmentFile(dir, seq);
      removals.push(seq);
      expected?.delete(seq);
    }
    this.unfinishedRemovals.set(id, removals);
    const report = (p: SegmentProblem): void =>
      this.onRepair(`store repaired: ${p.kind} ${p.file} at offset ${p.offset}: ${p.detail}`, { ...p });
    const segments = RunSegments.open(dir, id, this.segmentBytes, {
      check: { expected, mode: 'open', report },
      hooks: this.manifest.hooks(id),
    });
    this.segments.set(run, segments);
    let maxLsn = 0;
    const weights = new Map<string, { lsn: number; weight: number; loc: number }>();
    for (const f of segments.scan()) {
      if (f.kind === FRAME_RECORD) {
        const known = run.samples.get(f.id);
        if (known !== undefined && f.body.readDoubleLE(RECORD_LSN_OFFSET) < known.flushedLsn) continue;
        // An older version's sums are reused: segments hold several versions of a sample.
        const { sample, lsn } = decodeSample(run, f.id, f.body, known);
        sample.at = f.loc;
        sample.atBytes = f.body.length;
        run.putSample(sample, known);
        run.mirror.set(run.mirrorSlot(sample), embeddingView(f.body));
        if (lsn > maxLsn) maxLsn = lsn;
      } else if (f.kind === FRAME_WEIGHT) {
        const lsn = smallInt(f.body.readDoubleLE(0));
        const prev = weights.get(f.id);
        if (prev === undefined || lsn >= prev.lsn) weights.set(f.id, { lsn, weight: f.body.readFloatLE(8), loc: f.loc });
      }
    }
    // A weight entry newer than its sample's record holds the sample's weight (and every
    // change up to its lsn: only weights changed since the record).
    for (const [id, w] of weights) {
      const sample = run.samples.get(id);
      if (sample === undefined || w.lsn <= sample.flushedLsn) continue;
      sample.weight = w.weight;
      sample.lsn = sample.flushedLsn = w.lsn;
      sample.weightAt = w.loc;
      if (w.lsn > maxLsn) maxLsn = w.lsn;
    }
    for (const sample of run.samples.values()) {
      const idBytes = Buffer.byteLength(sample.id);
      if (sample.at >= 0) segments.retain(sample.at, frameBytes(idBytes, sample.atBytes));
      if (sample.weightAt >= 0) segments.retain(sample.weightAt, frameBytes(idBytes, WEIGHT_BODY_BYTES));
    }
    return maxLsn;
  }

  /** Applies every logged change newer than the record it touches (crash recovery). */
  private replayLog(): void {
    this.commitLog.entries = 0;
    for (const { key: lsn, value } of this.tables.log.getRange()) {
      this.commitLog.entries++;
      if (lsn > this.commitLog.lsn) this.commitLog.lsn = lsn;
      const run = this.runStates.get(value.runId);
      if (run === undefined) continue;
      if (value.kind === 'weights') {
        this.applyWeights(run, value.ids, bytesToFloat32(value.weights), lsn);
        continue;
      }
      const n = value.ids.length;
      const k = run.info.dim;
      // Decoded and normalised exactly as ingest did (validate.ts, engine.ts): the same floats.
      const sketches = decodeSketches(value.sketches, value.dtype ?? run.info.dtype, n * k);
      if (run.info.scoreMode === 'cosine') normalizeRows(sketches, n, k);
      const querySet = value.qsVersion === 0 ? undefined : run.querySet(value.qsVersion);
      this.applyBatch(
        run,
        {
          sampleIds: value.ids,
          step: value.step,
          lr: value.lr,
          sketches,
          querySet,
          products: querySet === undefined ? undefined : bytesToFloat32(value.products),
        },
        lsn,
      );
    }
    this.commitLog.appliedLsn = this.commitLog.lsn;
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
    this.afterApply();
  }

  private afterApply(): void {
    if (this.closed || this.replaying) return;
    if (this.pending.count >= this.maxDirty / 2) this.startFlush();
    else if (this.flushTimer === undefined && this.flushing === undefined) {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = undefined;
        this.startFlush();
      }, this.flushIntervalMs);
      this.flushTimer.unref();
    }
  }

  /**
   * Resolves once fewer than `maxDirtySamples` samples are dirty: ingest awaits it before each
   * group, so memory stays bounded when the flusher falls behind.
   */
  room(): Promise<void> {
    if (this.pending.count < this.maxDirty) return Promise.resolve();
    // The flusher cannot make room (e.g. the disk is full): fail instead of waiting forever.
    if (this.flushFailure !== undefined && this.flushing === undefined) return Promise.reject(this.flushFailure);
    this.startFlush();
    return new Promise((resolve, reject) => this.roomWaiters.push({ resolve, reject }));
  }

  private wakeRoomWaiters(): void {
    const failure = this.pending.count >= this.maxDirty && !this.closed ? this.flushFailure : undefined;
    if (this.pending.count >= this.maxDirty && !this.closed && failure === undefined) return;
    const waiters = this.roomWaiters;
    this.roomWaiters = [];
    for (const w of waiters) {
      if (failure === undefined) w.resolve();
      else w.reject(failure);
    }
  }

  private startFlush(): void {
    if (this.flushing !== undefined || this.flushPaused > 0 || this.closed) return;
    if (this.flushTimer !== undefined) {
      clearTimeout(this.flushTimer);
      this.flushTimer = undefined;
    }
    const cycle = this.flushCycle()
      .then(
        () => {
          this.flushFailure = undefined;
        },
        async (err: unknown) => {
          this.flushFailure = await storeError(err, this.dataDir);
          this.stats.lastError = `${this.flushFailure.code}: ${this.flushFailure.message}`;
        },
      )
      .finally(() => {
        this.flushing = undefined;
        this.wakeRoomWaiters();
        if (this.pending.count > 0 && !this.closed && this.flushPaused === 0) this.afterApply();
      });
    this.flushing = cycle;
  }

  /**
   * One flush cycle: writes every sample dirty now (run by run, in chunks of one append each) as
   * base record + pending delta, then trims the log up to the last entry applied when the cycle
   * began and compacts the runs' segments. Samples touched again meanwhile stay dirty, with the
   * log entries they need.
   */
  private async flushCycle(): Promise<void> {
    const started = performance.now();
    const upTo = this.commitLog.appliedPrefix();
    /** The chunk being written, if any. */
    let writing: Promise<void> | undefined;
    for (const [run, set] of [...this.pending.dirty]) {
      if (this.runStates.get(run.info.id) !== run) {
        // Deleted while a group of it was committing: nothing of it is written any more.
        this.pending.count -= set.size;
        this.pending.dirty.delete(run);
        this.pending.deltas.delete(run);
        continue;
      }
      // In dirty order: appended, records need no sorting.
      const samples = [...set];
      for (let at = 0; at < samples.length; at += this.flushChunk) {
        if (this.runStates.get(run.info.id) !== run) break;
        // The next chunk is built while the one before it is written (its append and sync on
        // libuv's thread pool): built one after the other, a chunk's build waited for the
        // previous write and the writer for the build.
        const chunk = await this.buildChunk(run, samples.slice(at, at + this.flushChunk));
        if (writing !== undefined) {
          try {
            await writing;
          } catch (err) {
            if (chunk !== undefined) this.unflushed(chunk);
            throw err;
          } finally {
            writing = undefined;
          }
        }
        if (chunk !== undefined) {
          writing = this.writeChunk(chunk);
          // Awaited before the next chunk is handed over or the cycle ends; handled here so that
          // a failure while the next chunk is built is not an unhandled rejection meanwhile.
          writing.catch(() => undefined);
        }
      }
    }
    if (writing !== undefined) await writing;
    await this.trimLog(upTo);
    for (const [run, segments] of this.segments) {
      if (this.runStates.get(run.info.id) !== run) continue;
      this.stats.bytesCompacted += await segments.compact(
        MAX_GARBAGE_RATIO,
        (f) => this.isLive(run, f),
        (f, to) => {
          this.moved(run, f, to);
        },
      );
    }
    this.stats.cycles++;
    this.stats.lastCycleMs = performance.now() - started;
    this.stats.lastError = undefined;
  }

  /**
   * Builds the frames of one chunk of a run's dirty samples (base record + pending delta, or a
   * weight entry; the samples are then clean, their records their base in `inflight`). Frames are
   * built in slices, yielding to the event loop between slices, so a flush never holds the main
   * thread (and the Acks it sends) for long. Undefined when none of them is dirty any more.
   */
  private async buildChunk(run: RunState, samples: readonly SampleState[]): Promise<FlushChunk | undefined> {
    const chunk: FlushChunk = { run, records: [], weights: [], frames: [], arenas: [], builtFrom: trace.on ? performance.now() : 0 };
    try {
      await this.buildFrames(samples, chunk);
    } catch (err) {
      // A record that could not be read back (an I/O error): what was built is dirty again, and
      // the sample it failed on was never taken.
      this.unflushed(chunk);
      throw err;
    }
    return chunk.records.length === 0 && chunk.weights.length === 0 ? undefined : chunk;
  }

  /** Builds the frames of `samples` into `chunk`, slice by slice (see {@link Store.buildChunk}). */
  private async buildFrames(samples: readonly SampleState[], chunk: FlushChunk): Promise<void> {
    const run = chunk.run;
    const k = run.info.dim;
    const pool = this.pending.poolOf(run);
    const set = this.pending.setOf(run);
    const { records, weights, frames, arenas } = chunk;
    let chunkBytes = 0;
    for (let at = 0; at < samples.length; at += FLUSH_SLICE) {
      if (at > 0) await new Promise((resolve) => setImmediate(resolve));
      const sliceStart = trace.on ? performance.now() : 0;
      // Allocation-light: the slice in reused arrays, frames written at offsets of the arena
      // through its views (a view per record was most of what the flusher left to the GC).
      const sliceSamples = this.sliceSamples;
      const { sliceIdBytes, sliceBody } = this;
      let n = 0;
      let sliceBytes = 0;
      const end = Math.min(samples.length, at + FLUSH_SLICE);
      for (let i = at; i < end; i++) {
        const sample = samples[i] as SampleState;
        if (!set.has(sample)) continue;
        const idBytes = Buffer.byteLength(sample.id);
        // No batch since its record was written (no pending delta, no unwritten record as its
        // base): only its weight changed, and a weight entry says so instead of the whole record.
        const body = sample.delta < 0 && !this.pending.inflight.has(sample) ? 0 : sampleRecordBytes(sample.nq, k);
        sliceSamples[n] = sample;
        sliceIdBytes[n] = idBytes;
        sliceBody[n] = body;
        n++;
        sliceBytes += frameBytes(idBytes, body === 0 ? WEIGHT_BODY_BYTES : body);
      }
      if (n === 0) continue;
      // One arena per slice, its frames back to back; each frame 8-byte aligned, and so are the
      // record's f64 / f32 views.
      const arena = this.takeArena(sliceBytes);
      arenas.push(arena);
      frames.push(arena.buf.subarray(0, sliceBytes));
      const abuf = arena.buf;
      let offset = 0;
      for (let i = 0; i < n; i++) {
        const sample = sliceSamples[i] as SampleState;
        const idBytes = sliceIdBytes[i] as number;
        const body = sliceBody[i] as number;
        const bytes = frameBytes(idBytes, body === 0 ? WEIGHT_BODY_BYTES : body);
        const start = offset + bodyOffset(idBytes);
        const flushedBefore = sample.flushedLsn;
        const pos = chunkBytes + start;
        if (body === 0) {
          beginFrameAt(abuf, offset, bytes, FRAME_WEIGHT, sample.id, idBytes, WEIGHT_BODY_BYTES);
          writeWeightBody(abuf, start, sample.lsn, sample.weight);
          weights.push({ sample, pos, bytes, idBytes, flushedBefore });
        } else {
          beginFrameAt(abuf, offset, bytes, FRAME_RECORD, sample.id, idBytes, body);
          writeSampleRecordAt(abuf, arena.f64, start, run, sample, k, sample.lsn);
          // Base plus pending change, and its int8 mirror row, folded in the delta pool's memory
          // by its SIMD kernels (the same floats as addTo and the mirror's own set).
          const row = sample.delta;
          this.pending.baseEmbedding(run, sample, pool.scratch(row), pool.scratchBytes(row));
          // The written points first (this may read, and fail, before the unwritten are taken).
          const trailerAt = start + embeddingOffset(sample.nq) + 4 * k;
          this.pending.copyWrittenHistory(run, sample, arena.bytes.subarray(trailerAt, trailerAt + HISTORY_TRAILER_BYTES));
          appendToTrailer(abuf, trailerAt, this.pending.history.take(sample), sample.seen);
          const scale = pool.fold(row) / 127;
          sample.delta = -1;
          arena.f32.set(pool.scratch(row), (start + embeddingOffset(sample.nq)) >> 2);
          run.mirror.setQuantized(run.mirrorSlot(sample), scale, scale === 0 ? undefined : pool.quantize(row, 1 / scale));
          const buf = arena.bytes.subarray(start, start + body);
          this.pending.inflight.set(sample, buf);
          records.push({ sample, pos, bytes, idBytes, flushedBefore, buf });
        }
        sealFrameAt(abuf, arena.bytes, offset, bytes);
        offset += bytes;
        sample.flushedLsn = sample.lsn;
        set.delete(sample);
        this.pending.count--;
      }
      chunkBytes += sliceBytes;
      if (trace.on) trace.event('flush', sliceStart, performance.now(), n);
    }
  }

  /**
   * Appends a built chunk to its run's active segment as one write (and one sync), handed over
   * once all its frames are built, then points its samples at their new frames; the frames they
   * supersede become garbage for compaction.
   */
  private async writeChunk(chunk: FlushChunk): Promise<void> {
    const segments = this.segmentsOf(chunk.run);
    let base: number;
    try {
      // Written once the log commits queued by then are done: the log's next commit, and the
      // Acks behind it, then meet less of the chunk's write and sync on the disk.
      base = await segments.append(chunk.frames, () => this.commitLog.tail);
      crashPoint('flush');
      if (trace.on) trace.event('flush-write', chunk.builtFrom, performance.now(), chunk.records.length + chunk.weights.length);
    } catch (err) {
      this.unflushed(chunk);
      throw err;
    }
    for (const r of chunk.records) {
      const s = r.sample;
      if (s.at >= 0) segments.release(s.at, frameBytes(r.idBytes, s.atBytes));
      // The record holds the weight too: an older weight entry is superseded.
      if (s.weightAt >= 0) segments.release(s.weightAt, frameBytes(r.idBytes, WEIGHT_BODY_BYTES));
      s.at = base + r.pos;
      s.atBytes = r.buf.length;
      s.weightAt = -1;
      segments.retain(s.at, r.bytes);
      if (this.pending.inflight.get(s) === r.buf) this.pending.inflight.delete(s);
    }
    for (const w of chunk.weights) {
      const s = w.sample;
      if (s.weightAt >= 0) segments.release(s.weightAt, w.bytes);
      s.weightAt = base + w.pos;
      segments.retain(s.weightAt, w.bytes);
    }
    // Durable, and no longer any sample's base: nothing refers to these frames any more.
    for (const arena of chunk.arenas) this.giveArena(arena);
    this.stats.samplesFlushed += chunk.records.length + chunk.weights.length;
    this.wakeRoomWaiters();
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

  /** Whether a frame compaction met is still its sample's newest. */
  private isLive(run: RunState, f: ScannedFrame): boolean {
    const s = run.samples.get(f.id);
    if (s === undefined) return false;
    return f.kind === FRAME_RECORD ? s.at === f.loc : f.kind === FRAME_WEIGHT && s.weightAt === f.loc;
  }

  /** Points a sample at the copy compaction made of its frame. */
  private moved(run: RunState, f: MovedFrame, to: number): void {
    const s = run.samples.get(f.id);
    if (s === undefined) return;
    if (f.kind === FRAME_RECORD && s.at === f.loc) s.at = to;
    else if (f.kind === FRAME_WEIGHT && s.weightAt === f.loc) s.weightAt = to;
  }

  /**
   * A chunk not known written: each record stays the sample's base (in `inflight`) and the
   * sample dirty again, so the next cycle writes it again; nothing the log still holds is trimmed
   * meanwhile.
   */
  private unflushed(chunk: FlushChunk): void {
    const set = this.pending.setOf(chunk.run);
    for (const r of [...chunk.records, ...chunk.weights]) {
      r.sample.flushedLsn = r.flushedBefore;
      this.pending.touch(set, r.sample, r.sample.lsn);
    }
  }

  /**
   * A buffer of at least `bytes` for one flush slice's records, reused when one is free: a
   * slice is about 140 KiB outside the JS heap, and a new one per slice made V8 collect garbage
   * more often (it counts external memory towards its heap limit).
   */
  private takeArena(bytes: number): Arena {
    const size = 2 ** Math.ceil(Math.log2(Math.max(bytes, 4096)));
    const list = this.arenas.get(size);
    const reused = list?.pop();
    if (reused !== undefined) return reused;
    const buf = Buffer.allocUnsafeSlow(size);
    return {
      buf,
      bytes: new Uint8Array(buf.buffer, buf.byteOffset, size),
      f64: new Float64Array(buf.buffer, buf.byteOffset, size / 8),
      f32: new Float32Array(buf.buffer, buf.byteOffset, size / 4),
    };
  }

  private giveArena(arena: Arena): void {
    let list = this.arenas.get(arena.buf.byteLength);
    if (list === undefined) this.arenas.set(arena.buf.byteLength, (list = []));
    if (list.length < ARENAS_KEPT) list.push(arena);
  }

  /**
   * Removes log entries ≤ `upTo`. Safe after a cycle that began at `upTo`: every sample dirty then
   * was written with a state at least that new, and samples dirtied later only hold newer entries.
   */
  private async trimLog(upTo: number): Promise<void> {
    if (upTo <= 0) return;
    const keys = [...this.tables.log.getKeys({ end: upTo + 1 })];
    if (keys.length === 0) return;
    // What the trimmed entries held is from now on only in the segments: their sizes recorded first.
    const sizes = new Map<string, Map<number, number>>();
    for (const [run, segments] of this.segments) if (this.runStates.get(run.info.id) === run) sizes.set(run.info.id, segments.sizes());
    await this.manifest.recordAll(sizes);
    crashPoint('trim');
    await this.commitWith(
      () => undefined,
      () => {
        for (const key of keys) settled(this.tables.log.remove(key));
      },
    );
    this.commitLog.entries -= keys.length;
  }

  /**
   * Pauses the flusher and waits for a running cycle to end; the returned function resumes it.
   * Deleting a run, writing imported samples and taking a backup need the segments to hold still.
   */
  private async pauseFlusher(): Promise<() => void> {
    this.flushPaused++;
    if (this.flushTimer !== undefined) {
      clearTimeout(this.flushTimer);
      this.flushTimer = undefined;
    }
    while (this.flushing !== undefined) await this.flushing;
    return () => {
      this.flushPaused--;
      if (this.flushPaused === 0 && this.pending.count > 0 && !this.closed) this.afterApply();
    };
  }

  /** Writes every dirty sample and trims the log; resolves once both are durable. */
  async flush(): Promise<void> {
    for (;;) {
      while (this.flushing !== undefined) await this.flushing;
      if (this.pending.count === 0 && this.commitLog.entries === 0) break;
      const before = this.stats.samplesFlushed;
      const entriesBefore = this.commitLog.entries;
      // Registered as the running cycle, so that no background cycle starts beside it: two
      // cycles could write a sample's older record after its newer one.
      const cycle = this.flushCycle();
      this.flushing = cycle.then(
        () => undefined,
        () => undefined,
      );
      try {
        await cycle;
      } finally {
        this.flushing = undefined;
        this.wakeRoomWaiters();
      }
      if (this.stats.samplesFlushed === before && this.commitLog.entries === entriesBefore) break;
    }
  }

  /** Durable transactions {@link Store.commit} has made since the store was opened. */
  get commits(): number {
    return this.commitLog.count;
  }

  /** Flusher and log state. */
  flushStats(): FlushStats {
    return { dirtySamples: this.pending.count, logEntries: this.commitLog.entries, ...this.stats };
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
    const resume = await this.pauseFlusher();
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
    const resume = await this.pauseFlusher();
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
      this.wakeRoomWaiters();
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
    const resume = await this.pauseFlusher();
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
    if (this.flushTimer !== undefined) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    try {
      await this.flush();
    } finally {
      this.closed = true;
      this.wakeRoomWaiters();
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
