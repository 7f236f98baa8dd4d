/**
 * The background flusher (docs/store.md, "Ingest" and "Record segments"): it writes dirty
 * samples' records (written record + pending delta) in chunks to their run's segments, one append
 * and one sync per chunk, then trims the log behind them and compacts the segments. Ingest waits
 * on it ({@link Flusher.room}) while too many samples are dirty.
 */
import { MotiveError, trace } from '../shared/index.js';
import { crashPoint } from '../shared/crash-point.js';
import { HISTORY_TRAILER_BYTES, appendToTrailer } from './history.js';
import { embeddingOffset, sampleRecordBytes, writeSampleRecordAt, writeWeightBody } from './codec.js';
import type { CommitLog } from './commit-log.js';
import type { SegmentManifest } from './manifest.js';
import type { PendingSamples } from './pending.js';
import type { RunState, SampleState } from './run-state.js';
import {
  FRAME_RECORD,
  FRAME_WEIGHT,
  WEIGHT_BODY_BYTES,
  beginFrameAt,
  bodyOffset,
  frameBytes,
  sealFrameAt,
  type MovedFrame,
  type RunSegments,
  type ScannedFrame,
} from './segments.js';
import { storeError } from './store-errors.js';
import { settled, type Tables } from './tables.js';

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

/** The parts of the store the flusher reads and writes. */
export interface FlusherContext {
  readonly tables: Tables;
  readonly commitLog: CommitLog;
  readonly pending: PendingSamples;
  readonly runStates: ReadonlyMap<string, RunState>;
  /** Each open run's segments. */
  readonly segments: ReadonlyMap<RunState, RunSegments>;
  /** The run's segments, opened when missing. */
  readonly segmentsOf: (run: RunState) => RunSegments;
  readonly manifest: SegmentManifest;
  readonly dataDir: string;
}

/** The flusher's settings (StoreOptions, store.ts). */
export interface FlusherOptions {
  readonly maxDirtySamples?: number;
  readonly flushIntervalMs?: number;
  readonly flushChunkSamples?: number;
}

export class Flusher {
  private readonly tables: Tables;
  private readonly commitLog: CommitLog;
  private readonly pending: PendingSamples;
  private readonly runStates: ReadonlyMap<string, RunState>;
  private readonly segments: ReadonlyMap<RunState, RunSegments>;
  private readonly segmentsOf: (run: RunState) => RunSegments;
  private readonly manifest: SegmentManifest;
  private readonly dataDir: string;
  private readonly maxDirty: number;
  private readonly flushIntervalMs: number;
  private readonly flushChunk: number;
  /** Free flush-slice buffers by size (see {@link Flusher.takeArena}). */
  private readonly arenas = new Map<number, Arena[]>();
  /** The flush slice being built: its samples, id bytes and body bytes (reused). */
  private readonly sliceSamples: SampleState[] = [];
  private readonly sliceIdBytes = new Int32Array(FLUSH_SLICE);
  private readonly sliceBody = new Int32Array(FLUSH_SLICE);
  private flushTimer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private flushPaused = 0;
  private closed = false;
  private readonly counters = {
    cycles: 0,
    samplesFlushed: 0,
    bytesCompacted: 0,
    lastCycleMs: 0,
    lastError: undefined as string | undefined,
  };
  private roomWaiters: Array<{ resolve: () => void; reject: (err: unknown) => void }> = [];
  /** The last flush failure, while ingest is held back by it. */
  private flushFailure: MotiveError | undefined;

  constructor(ctx: FlusherContext, options: FlusherOptions) {
    this.tables = ctx.tables;
    this.commitLog = ctx.commitLog;
    this.pending = ctx.pending;
    this.runStates = ctx.runStates;
    this.segments = ctx.segments;
    this.segmentsOf = ctx.segmentsOf;
    this.manifest = ctx.manifest;
    this.dataDir = ctx.dataDir;
    this.maxDirty = options.maxDirtySamples ?? 65536;
    this.flushIntervalMs = options.flushIntervalMs ?? 1000;
    this.flushChunk = options.flushChunkSamples ?? 1024;
  }

  /** Stops a scheduled flush (the store is closing). */
  cancelTimer(): void {
    if (this.flushTimer !== undefined) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
  }

  /** No flush starts from now on; waiters for room are woken. */
  close(): void {
    this.closed = true;
    this.wakeRoomWaiters();
  }

  /** Starts a flush when enough samples are dirty, else schedules one. */
  afterApply(): void {
    if (this.closed) return;
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

  wakeRoomWaiters(): void {
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
          this.counters.lastError = `${this.flushFailure.code}: ${this.flushFailure.message}`;
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
  async flushCycle(): Promise<void> {
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
      this.counters.bytesCompacted += await segments.compact(
        MAX_GARBAGE_RATIO,
        (f) => this.isLive(run, f),
        (f, to) => {
          this.moved(run, f, to);
        },
      );
    }
    this.counters.cycles++;
    this.counters.lastCycleMs = performance.now() - started;
    this.counters.lastError = undefined;
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

  /** Builds the frames of `samples` into `chunk`, slice by slice (see {@link Flusher.buildChunk}). */
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
    this.counters.samplesFlushed += chunk.records.length + chunk.weights.length;
    this.wakeRoomWaiters();
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
    await this.commitLog.commit(
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
  async pause(): Promise<() => void> {
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
      const before = this.counters.samplesFlushed;
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
      if (this.counters.samplesFlushed === before && this.commitLog.entries === entriesBefore) break;
    }
  }

  /** Flusher and log state. */
  stats(): FlushStats {
    return { dirtySamples: this.pending.count, logEntries: this.commitLog.entries, ...this.counters };
  }
}
