/**
 * Start-up (docs/store.md, "Recovery" and "Damaged storage"): every run is loaded from its LMDB
 * rows and its record segments (checked against the segment manifest, a torn tail cut off), then
 * every log entry newer than a sample's record is applied again, exactly as ingest applied it.
 */
import { decodeSketches, normalizeRows } from '../shared/index.js';
import { applyBatch, applyWeights } from './apply-batch.js';
import { bytesToFloat32, decodeSample, embeddingView, RECORD_LSN_OFFSET, smallInt } from './codec.js';
import type { CommitLog } from './commit-log.js';
import type { FeatureTables } from './features.js';
import type { SidecarJobs } from './jobs.js';
import { REMOVING, type SegmentManifest } from './manifest.js';
import type { PendingSamples } from './pending.js';
import { RunState } from './run-state.js';
import {
  FRAME_RECORD,
  FRAME_WEIGHT,
  RunSegments,
  WEIGHT_BODY_BYTES,
  frameBytes,
  removeSegmentFile,
  runSegmentsDir,
  type SegmentProblem,
} from './segments.js';
import { runRange, type Tables } from './tables.js';

/** The parts of the store recovery fills. */
export interface RecoveryContext {
  readonly tables: Tables;
  readonly commitLog: CommitLog;
  readonly pending: PendingSamples;
  readonly runStates: Map<string, RunState>;
  readonly segments: Map<RunState, RunSegments>;
  readonly manifest: SegmentManifest;
  readonly featureTables: FeatureTables;
  readonly jobs: SidecarJobs;
  readonly recordsDir: string;
  readonly segmentBytes: number;
  /** Opened from a store from before the segment manifest (format < 6): its segments are checked as format 5 wrote them. */
  readonly legacySegments: boolean;
  readonly onRepair: (message: string, detail: Record<string, unknown>) => void;
}

export class Recovery {
  private readonly tables: Tables;
  private readonly commitLog: CommitLog;
  private readonly pending: PendingSamples;
  private readonly runStates: Map<string, RunState>;
  private readonly segments: Map<RunState, RunSegments>;
  private readonly manifest: SegmentManifest;
  private readonly featureTables: FeatureTables;
  private readonly jobs: SidecarJobs;
  private readonly recordsDir: string;
  private readonly segmentBytes: number;
  private readonly legacySegments: boolean;
  private readonly onRepair: (message: string, detail: Record<string, unknown>) => void;
  /** Per run, segments whose deletion a crash interrupted (finished while loading, forgotten by finishOpen). */
  private readonly unfinishedRemovals = new Map<string, number[]>();

  constructor(ctx: RecoveryContext) {
    this.tables = ctx.tables;
    this.commitLog = ctx.commitLog;
    this.pending = ctx.pending;
    this.runStates = ctx.runStates;
    this.segments = ctx.segments;
    this.manifest = ctx.manifest;
    this.featureTables = ctx.featureTables;
    this.jobs = ctx.jobs;
    this.recordsDir = ctx.recordsDir;
    this.segmentBytes = ctx.segmentBytes;
    this.legacySegments = ctx.legacySegments;
    this.onRepair = ctx.onRepair;
  }

  /**
   * After loading: a store from before the manifest records its segments as loaded (torn tails
   * cut off); segments whose deletion a crash interrupted are forgotten.
   */
  async finishOpen(): Promise<void> {
    const sizes = new Map<string, Map<number, number>>();
    if (this.legacySegments) for (const [run, segments] of this.segments) sizes.set(run.info.id, segments.sizes());
    await this.manifest.recordAll(sizes, this.unfinishedRemovals);
    this.unfinishedRemovals.clear();
  }

  /** Loads every run into memory and replays the log. */
  load(): void {
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
    this.replayLog();
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

  /**
   * Applies every logged change newer than the record it touches, through the same arithmetic as
   * live ingest (apply-batch.ts); the flusher is started by the store afterwards, not per entry.
   */
  private replayLog(): void {
    this.commitLog.entries = 0;
    for (const { key: lsn, value } of this.tables.log.getRange()) {
      this.commitLog.entries++;
      if (lsn > this.commitLog.lsn) this.commitLog.lsn = lsn;
      const run = this.runStates.get(value.runId);
      if (run === undefined) continue;
      if (value.kind === 'weights') {
        applyWeights(this.pending, run, value.ids, bytesToFloat32(value.weights), lsn);
        continue;
      }
      const n = value.ids.length;
      const k = run.info.dim;
      // Decoded and normalised exactly as ingest did (validate.ts, engine.ts): the same floats.
      const sketches = decodeSketches(value.sketches, value.dtype ?? run.info.dtype, n * k);
      if (run.info.scoreMode === 'cosine') normalizeRows(sketches, n, k);
      const querySet = value.qsVersion === 0 ? undefined : run.querySet(value.qsVersion);
      applyBatch(
        this.pending,
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
}
