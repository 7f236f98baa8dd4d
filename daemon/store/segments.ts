/**
 * A run's written sample records and weight entries, appended to segment files
 * (`records/<run key>/<seq>.seg`) written front to back and never rewritten. A sample's newest
 * frame supersedes its older ones; the store keeps where each sample's newest frames lie, and
 * {@link RunSegments.compact} copies the live frames of mostly dead segments to the active one and
 * deletes them. See docs/store.md for the frame layout: the format is in segment-frames.ts, the
 * files' naming, durable creation and removal and the damage reports in segment-files.ts (both
 * re-exported here).
 */
import { closeSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readSync, rmSync, statSync } from 'node:fs';
import { open as openFile, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { crashPoint } from '../shared/crash-point.js';
import { crc32 } from 'node:zlib';
import {
  FRAME_HEADER_BYTES,
  FRAME_SEGMENT,
  MAX_SEGMENT_BYTES,
  SEGMENT_SPAN,
  bodyOffset,
  frameBytes,
  segmentHeader,
  segmentOf,
  type MovedFrame,
  type ScannedFrame,
} from './segment-frames.js';
import {
  corruptError,
  listSegments,
  removeRunDir,
  segmentPath,
  syncDir,
  syncDirAsync,
  type SegmentCheck,
  type SegmentHooks,
  type SegmentProblem,
} from './segment-files.js';

export {
  FRAME_HEADER_BYTES,
  FRAME_RECORD,
  FRAME_SEGMENT,
  FRAME_WEIGHT,
  MAX_ID_BYTES,
  MAX_SEGMENT_BYTES,
  WEIGHT_BODY_BYTES,
  beginFrame,
  beginFrameAt,
  bodyOffset,
  frameBytes,
  sealFrame,
  sealFrameAt,
  segmentOf,
  type MovedFrame,
  type ScannedFrame,
} from './segment-frames.js';
export {
  corruptError,
  listSegments,
  removeDeletedRuns,
  removeRunDir,
  removeSegmentFile,
  runSegmentsDir,
  segmentPath,
  type SegmentCheck,
  type SegmentHooks,
  type SegmentProblem,
} from './segment-files.js';

/** Bytes read per call while scanning a segment. */
const SCAN_BLOCK_BYTES = 8 << 20;

interface Segment {
  readonly seq: number;
  readonly path: string;
  readonly fd: number;
  /** Bytes known written and synced (the end of the last good frame). */
  size: number;
  /** Bytes of its frames that are still some sample's newest. */
  live: number;
  /** Written to by this process (else opened read-only from an earlier one). */
  readonly handle: FileHandle | undefined;
}

export class RunSegments {
  readonly dir: string;
  private readonly runId: string;
  private readonly segmentBytes: number;
  private readonly segments = new Map<number, Segment>();
  /** The segment appends go to; undefined until the first append, or after a failed one that could not be cut off. */
  private active: Segment | undefined;
  private nextSeq = 1;
  private closed = false;
  private appending: Promise<void> = Promise.resolve();
  private compacting = false;
  private readonly hooks: SegmentHooks | undefined;
  /** Checks the first scan still has to make (undefined once made: later scans refuse any bad frame). */
  private check: SegmentCheck | undefined;

  private constructor(dir: string, runId: string, segmentBytes: number, hooks: SegmentHooks | undefined) {
    this.dir = dir;
    this.runId = runId;
    this.segmentBytes = segmentBytes;
    this.hooks = hooks;
  }

  /**
   * Opens (creating when missing) a run's segment directory. Existing segments are only read and
   * compacted: appends always go to a new segment, so a frame torn by a crash is at the end of
   * its segment. With `check`, the files are compared with the store's manifest now and every
   * frame on the first {@link RunSegments.scan} (see {@link SegmentCheck}).
   */
  static open(dir: string, runId: string, segmentBytes: number, options: { check?: SegmentCheck; hooks?: SegmentHooks } = {}): RunSegments {
    if (segmentBytes > MAX_SEGMENT_BYTES) throw new RangeError(`segment size ${segmentBytes} exceeds ${MAX_SEGMENT_BYTES}`);
    const check = options.check;
    const created = !statSync(dir, { throwIfNoEntry: false });
    if (created && check?.mode === 'check') {
      const segments = new RunSegments(dir, runId, segmentBytes, options.hooks);
      segments.checkFiles([], check);
      return segments;
    }
    mkdirSync(dir, { recursive: true });
    if (created) syncDir(join(dir, '..'));
    const segments = new RunSegments(dir, runId, segmentBytes, options.hooks);
    let seqs = listSegments(dir);
    if (check !== undefined) seqs = segments.checkFiles(seqs, check);
    for (const seq of seqs) {
      const path = segments.pathOf(seq);
      segments.segments.set(seq, { seq, path, fd: openSync(path, 'r'), size: statSync(path).size, live: 0, handle: undefined });
    }
    for (const seq of [...seqs, ...(check?.expected?.keys() ?? [])]) if (seq >= segments.nextSeq) segments.nextSeq = seq + 1;
    segments.check = check;
    return segments;
  }

  /** Compares the files with the manifest; returns the segments to read. */
  private checkFiles(seqs: number[], check: SegmentCheck): number[] {
    const problem = (p: Omit<SegmentProblem, 'repaired'>, repaired = false): void => {
      const full = { ...p, repaired };
      if (check.mode === 'open' && !repaired) throw corruptError(full);
      check.report(full);
    };
    const expected = check.expected;
    if (expected === undefined) return seqs;
    const kept: number[] = [];
    for (const seq of seqs) {
      const path = this.pathOf(seq);
      const size = statSync(path).size;
      const recorded = expected.get(seq);
      if (recorded === undefined) {
        // Created by a crash before the store recorded it: nothing in it was counted on.
        if (size === 0 && check.mode !== 'check') {
          rmSync(path, { force: true });
          problem({ kind: 'unlisted', file: path, offset: 0, detail: 'an empty segment the store never recorded, removed' }, true);
        } else
          problem({
            kind: 'unlisted',
            file: path,
            offset: 0,
            detail: `${size} bytes the store never recorded (another run's or a leftover)`,
          });
        continue;
      }
      if (size < recorded)
        problem({ kind: 'cut', file: path, offset: size, detail: `${size} bytes, the store recorded ${recorded} written` });
      kept.push(seq);
    }
    for (const [seq, recorded] of expected) {
      if (recorded >= 0 && !seqs.includes(seq))
        problem({ kind: 'missing', file: this.pathOf(seq), offset: 0, detail: `absent, the store recorded ${recorded} bytes written` });
    }
    return kept;
  }

  private pathOf(seq: number): string {
    return segmentPath(this.dir, seq);
  }

  /** Each segment's size written and synced. */
  sizes(): Map<number, number> {
    return new Map([...this.segments.values()].map((s) => [s.seq, s.size]));
  }

  /** Bytes of all segments. */
  get bytes(): number {
    let total = 0;
    for (const s of this.segments.values()) total += s.size;
    return total;
  }

  /** Bytes of frames still some sample's newest. */
  get liveBytes(): number {
    let total = 0;
    for (const s of this.segments.values()) total += s.live;
    return total;
  }

  get segmentCount(): number {
    return this.segments.size;
  }

  /**
   * Every frame of every segment, oldest segment first. The first scan after opening makes the
   * checks of {@link SegmentCheck}; any later one refuses a bad frame (MOTIVE_STORE_CORRUPT), as
   * every segment was read whole by then.
   */
  *scan(): Generator<ScannedFrame> {
    const check = this.check;
    for (const segment of [...this.segments.values()]) yield* this.scanSegment(segment, check);
    this.check = undefined;
  }

  private *scanSegment(segment: Segment, check: SegmentCheck | undefined): Generator<ScannedFrame> {
    let buf = Buffer.allocUnsafeSlow(SCAN_BLOCK_BYTES);
    /** File offset of buf[0], bytes valid in buf, file offset of the next frame. */
    let base = 0;
    let filled = 0;
    let pos = 0;
    const end = segment.size;
    const fill = (): void => {
      base = pos;
      filled = readSync(segment.fd, buf, 0, Math.min(buf.length, end - pos), pos);
    };
    /** Why the frame at `pos` is unreadable, and whether it ends the file (nothing after it). */
    let bad: string | undefined;
    let last = false;
    while (pos < end) {
      if (end - pos < FRAME_HEADER_BYTES) {
        [bad, last] = [`${end - pos} bytes, less than a frame header`, true];
        break;
      }
      if (pos + FRAME_HEADER_BYTES > base + filled) fill();
      if (pos + FRAME_HEADER_BYTES > base + filled) {
        [bad, last] = ['short read', true];
        break;
      }
      const len = buf.readUInt32LE(pos - base);
      if (len < FRAME_HEADER_BYTES || len % 8 !== 0) {
        bad = `frame length ${len}`;
        break;
      }
      if (pos + len > end) {
        [bad, last] = [`a frame of ${len} bytes cut short by the end of the file at ${end}`, true];
        break;
      }
      if (pos + len > base + filled) {
        if (len > buf.length) buf = Buffer.allocUnsafeSlow(len);
        fill();
        if (len > filled) {
          [bad, last] = ['short read', true];
          break;
        }
      }
      const frame = buf.subarray(pos - base, pos - base + len);
      const idBytes = frame.readUInt16LE(10);
      const bodyBytes = frame.readUInt32LE(12);
      if (frameBytes(idBytes, bodyBytes) !== len) {
        bad = 'frame header fields disagree with its length';
        break;
      }
      if (frame.readUInt32LE(4) !== crc32(frame.subarray(8))) {
        [bad, last] = ['checksum mismatch', pos + len === end];
        break;
      }
      const kind = frame.readUInt8(8);
      const id = frame.toString('utf8', FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + idBytes);
      const body = bodyOffset(idBytes);
      if (kind === FRAME_SEGMENT) {
        const seq = frame.readUInt32LE(body);
        if (pos !== 0 || id !== this.runId || seq !== segment.seq) {
          const where = pos !== 0 ? 'a segment header inside the segment' : `the header of segment ${seq} of run "${id}"`;
          this.refuse(segment, check, {
            kind: 'foreign',
            offset: pos,
            detail: `${where}, expected segment ${segment.seq} of run "${this.runId}"`,
          });
          return;
        }
        pos += len;
        continue;
      }
      yield { kind, id, body: frame.subarray(body, body + bodyBytes), loc: segment.seq * SEGMENT_SPAN + pos + body, frame };
      pos += len;
    }
    if (bad !== undefined) this.badFrame(segment, check, pos, bad, last || this.zerosFrom(segment, pos));
  }

  /** Whether every byte of `segment` from `pos` on is zero (a write the file system extended the file for but never wrote). */
  private zerosFrom(segment: Segment, pos: number): boolean {
    const buf = Buffer.allocUnsafeSlow(Math.min(SCAN_BLOCK_BYTES, Math.max(segment.size - pos, 1)));
    for (let at = pos; at < segment.size;) {
      const n = readSync(segment.fd, buf, 0, Math.min(buf.length, segment.size - at), at);
      if (n === 0) return false;
      for (let i = 0; i < n; i++) if (buf[i] !== 0) return false;
      at += n;
    }
    return true;
  }

  /**
   * A frame at `pos` that cannot be read. A torn tail — at or past the size the store recorded
   * written (or, for a segment from before the manifest, the last thing in its file) — held only
   * what the log still holds: it is cut off and reported. Anything else refuses the store.
   */
  private badFrame(segment: Segment, check: SegmentCheck | undefined, pos: number, detail: string, last: boolean): void {
    const recorded = check?.expected?.get(segment.seq);
    const torn = check !== undefined && (recorded !== undefined ? pos >= recorded : last);
    if (!torn) {
      this.refuse(segment, check, { kind: 'corrupt', offset: pos, detail });
      return;
    }
    const repair = check.mode !== 'check';
    const p: SegmentProblem = {
      kind: 'torn',
      file: segment.path,
      offset: pos,
      detail: `${segment.size - pos} bytes after the last whole frame (${detail})${repair ? ', cut off' : ''}`,
      repaired: repair,
    };
    if (repair) {
      const fd = openSync(segment.path, 'r+');
      try {
        ftruncateSync(fd, pos);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      segment.size = pos;
    }
    check.report(p);
  }

  /** A problem that refuses the store: thrown, or in check and repair modes reported (the rest of the segment unread). */
  private refuse(segment: Segment, check: SegmentCheck | undefined, p: Omit<SegmentProblem, 'repaired' | 'file'>): void {
    const full = { ...p, file: segment.path, repaired: false };
    if (check === undefined || check.mode === 'open') throw corruptError(full);
    check.report(full);
  }

  /** Counts a frame (`bytes` long, its body at `loc`) as some sample's newest. */
  retain(loc: number, bytes: number): void {
    const segment = this.segments.get(segmentOf(loc));
    if (segment !== undefined) segment.live += bytes;
  }

  /** A frame superseded by a newer one: its bytes are garbage for compaction. */
  release(loc: number, bytes: number): void {
    const segment = this.segments.get(segmentOf(loc));
    if (segment !== undefined) segment.live -= bytes;
  }

  /** Reads `out.length` bytes from `skip` bytes into the body at `loc`. */
  read(loc: number, skip: number, out: Uint8Array): void {
    const segment = this.segments.get(segmentOf(loc));
    if (segment === undefined) throw new Error(`${this.dir}: no segment ${segmentOf(loc)}`);
    const offset = (loc % SEGMENT_SPAN) + skip;
    const n = readSync(segment.fd, out, 0, out.length, offset);
    if (n !== out.length) throw new Error(`${segment.path}: short read at ${offset}`);
  }

  /**
   * Appends `buffers` (whole frames) to the active segment, starting a new one when it is full,
   * and syncs it. Resolves with the location of the first byte appended, to which a frame's
   * offset in `buffers` plus its body offset is added. A failed write is cut off the segment
   * again (or, if that fails too, ends it), so no good frame ever follows a bad one in a segment.
   * `ready`, if given, is awaited when the append's turn comes, right before it writes.
   */
  append(buffers: readonly Buffer[], ready?: () => Promise<void>): Promise<number> {
    // One append at a time: each writes at the end the one before it left.
    const next = this.appending.then(async () => {
      if (ready !== undefined) await ready();
      return this.appendNow(buffers);
    });
    this.appending = next.then(
      () => undefined,
      () => undefined,
    );
    return next;
  }

  private async appendNow(buffers: readonly Buffer[]): Promise<number> {
    if (this.closed) throw new Error(`${this.dir}: closed`);
    let total = 0;
    for (const b of buffers) total += b.length;
    let segment = this.active;
    if (segment === undefined || segment.size >= this.segmentBytes) segment = await this.startSegment();
    const handle = segment.handle as FileHandle;
    const start = segment.size;
    // A segment's first append begins with its header (cut off with it if the append fails).
    const header = start === 0 ? segmentHeader(this.runId, segment.seq) : undefined;
    if (header !== undefined) total += header.length;
    try {
      let written = 0;
      let pending = [...(header === undefined ? [] : [header]), ...buffers.filter((b) => b.length > 0)];
      while (written < total) {
        const { bytesWritten } = await handle.writev(pending, start + written);
        if (bytesWritten === 0) throw new Error(`${segment.path}: no bytes written (ENOSPC?)`);
        written += bytesWritten;
        pending = remainder(pending, bytesWritten);
      }
      await handle.datasync();
    } catch (err) {
      // Cut off what part of it was written, so that appends can go on in this segment (a full
      // disk keeps failing here, as it should); if even that fails, the next append starts a new
      // segment, as no good frame may follow a bad one in a segment.
      try {
        await handle.truncate(start);
      } catch {
        if (this.active === segment) this.active = undefined;
      }
      throw err;
    }
    segment.size = start + total;
    return segment.seq * SEGMENT_SPAN + start + (header?.length ?? 0);
  }

  private async startSegment(): Promise<Segment> {
    const seq = this.nextSeq++;
    const path = this.pathOf(seq);
    const handle = await openFile(path, 'wx+');
    // Its entry durable before any record in it is counted on.
    await syncDirAsync(this.dir);
    const segment: Segment = { seq, path, fd: handle.fd, size: 0, live: 0, handle };
    this.segments.set(seq, segment);
    this.active = segment;
    // Recorded before anything is written to it: a segment the store never recorded is empty.
    await this.hooks?.started(seq);
    return segment;
  }

  /**
   * Compacts while the segments hold more than `maxGarbageRatio` times their live bytes (and at
   * least two segments' worth): the segment with the least live data first, its live frames
   * (`isLive`) copied to the active segment, synced, then `moved` for each, then the segment
   * deleted. Yields to the event loop between steps. Returns the bytes reclaimed.
   */
  async compact(
    maxGarbageRatio: number,
    isLive: (f: ScannedFrame) => boolean,
    moved: (f: MovedFrame, to: number) => void,
  ): Promise<number> {
    if (this.compacting) return 0;
    this.compacting = true;
    try {
      return await this.compactNow(maxGarbageRatio, isLive, moved);
    } finally {
      this.compacting = false;
    }
  }

  private async compactNow(
    maxGarbageRatio: number,
    isLive: (f: ScannedFrame) => boolean,
    moved: (f: MovedFrame, to: number) => void,
  ): Promise<number> {
    let reclaimed = 0;
    for (;;) {
      const total = this.bytes;
      const live = this.liveBytes;
      if (total < 2 * this.segmentBytes || total <= maxGarbageRatio * live) return reclaimed;
      let victim: Segment | undefined;
      for (const s of this.segments.values()) {
        if (s === this.active) continue;
        if (victim === undefined || s.live / Math.max(s.size, 1) < victim.live / Math.max(victim.size, 1)) victim = s;
      }
      if (victim === undefined) return reclaimed;
      const kept: Array<MovedFrame & { bytes: number; at: number }> = [];
      const copies: Buffer[] = [];
      let offset = 0;
      let n = 0;
      // Read whole or not at all: a bad frame throws (MOTIVE_STORE_CORRUPT) and nothing is deleted.
      for (const f of this.scanSegment(victim, undefined)) {
        if (++n % 1024 === 0) await new Promise((resolve) => setImmediate(resolve));
        if (!isLive(f)) continue;
        // The scan reuses its buffer: each live frame is copied out.
        copies.push(Buffer.from(f.frame));
        kept.push({ kind: f.kind, id: f.id, loc: f.loc, bytes: f.frame.length, at: offset + f.body.byteOffset - f.frame.byteOffset });
        offset += f.frame.length;
      }
      if (copies.length > 0) {
        const to = await this.append(copies);
        crashPoint('compact');
        for (const f of kept) {
          this.retain(to + f.at, f.bytes);
          this.release(f.loc, f.bytes);
          moved(f, to + f.at);
        }
      }
      await this.removeSegment(victim);
      reclaimed += victim.size - offset;
    }
  }

  private async removeSegment(segment: Segment): Promise<void> {
    const others = this.sizes();
    others.delete(segment.seq);
    await this.hooks?.removing(segment.seq, others);
    crashPoint('compact-remove');
    this.segments.delete(segment.seq);
    if (segment.handle !== undefined) await segment.handle.close();
    else closeSync(segment.fd);
    // Unlinking 64 MiB and syncing the directory off the main thread (a removal not yet durable
    // at a crash leaves the old frames, which recovery skips as older than their samples' newest).
    await rm(segment.path, { force: true });
    await syncDirAsync(this.dir);
    await this.hooks?.removed(segment.seq);
  }

  /** Copies every segment, up to its written size, into `dir` (a backup; the writer is paused); resolves with the bytes copied. */
  async copyTo(dir: string): Promise<number> {
    mkdirSync(dir, { recursive: true });
    let bytes = 0;
    for (const segment of this.segments.values()) {
      bytes += segment.size;
      const out = await openFile(join(dir, segment.path.slice(this.dir.length + 1)), 'wx');
      try {
        const buf = Buffer.allocUnsafeSlow(SCAN_BLOCK_BYTES);
        for (let at = 0; at < segment.size;) {
          const n = readSync(segment.fd, buf, 0, Math.min(buf.length, segment.size - at), at);
          if (n === 0) throw new Error(`${segment.path}: short read at ${at}`);
          await out.write(buf, 0, n, at);
          at += n;
        }
        await out.datasync();
      } finally {
        await out.close();
      }
    }
    syncDir(dir);
    return bytes;
  }

  /** Closes every file. */
  async close(): Promise<void> {
    this.closed = true;
    for (const segment of this.segments.values()) {
      if (segment.handle !== undefined) await segment.handle.close();
      else closeSync(segment.fd);
    }
    this.segments.clear();
    this.active = undefined;
  }

  /** Closes and removes the run's directory: renamed first, so a crash leaves none of it behind. */
  async remove(): Promise<void> {
    await this.close();
    if (statSync(this.dir, { throwIfNoEntry: false })) removeRunDir(this.dir);
  }
}

/** `buffers` without their first `bytes` bytes. */
function remainder(buffers: readonly Buffer[], bytes: number): Buffer[] {
  const out: Buffer[] = [];
  let skip = bytes;
  for (const b of buffers) {
    if (skip >= b.length) skip -= b.length;
    else {
      out.push(skip > 0 ? b.subarray(skip) : b);
      skip = 0;
    }
  }
  return out;
}
