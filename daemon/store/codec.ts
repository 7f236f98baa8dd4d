/**
 * Binary value encodings of the store. All little-endian. See docs/store.md for the layout.
 */
import { HISTORY_TRAILER_BYTES } from './history.js';
import type { RunState, SampleState } from './run-state.js';

/** Version tag of the sample record layout written: 4, with the score history after G(z). */
const SAMPLE_RECORD_V4 = 4;
/** The layout before the score history (read, never written). */
const SAMPLE_RECORD_V3 = 3;
/** Header bytes; a multiple of 8 so the f64 sums and the f32 embedding that follow are aligned. */
export const SAMPLE_HEADER_BYTES = 48;
/** Offset of the record's f64 `lsn`. */
export const RECORD_LSN_OFFSET = 32;

/**
 * Sample record (the body of a record frame in a run's segments, written by the flusher):
 * u32 layout(=4) | u32 nq | f64 seen | f64 lastStep | f32 weight | u32 k | f64 lsn | f64 total |
 * f64 × nq sums | f32 × k G(z) | history trailer (history.ts). `lsn` is the last log entry folded
 * into the record (recovery replays later ones); `total` is Σ_j S_j as accumulated. Layout 3
 * records (no trailer) are read as holding no history.
 */
export function sampleRecordBytes(nq: number, k: number): number {
  return SAMPLE_HEADER_BYTES + 8 * nq + 4 * k + HISTORY_TRAILER_BYTES;
}

/**
 * The sum count of a record of `bytes` bytes holding `k` floats of G(z), and where its history
 * trailer starts (-1: a layout 3 record, none), from its length alone: past the header and
 * G(z), a layout 3 record holds a multiple of 8 bytes, a layout 4 one 4 more (history.ts).
 */
export function recordLayout(bytes: number, k: number): { nq: number; historyAt: number } {
  const rest = bytes - SAMPLE_HEADER_BYTES - 4 * k;
  const history = rest % 8 === 4;
  const nq = (rest - (history ? HISTORY_TRAILER_BYTES : 0)) / 8;
  if (!Number.isInteger(nq) || nq < 0) throw new Error(`a sample record of ${bytes} bytes does not hold k = ${k}`);
  return { nq, historyAt: history ? embeddingOffset(nq) + 4 * k : -1 };
}

/** Byte offset of G(z) inside a record holding `nq` sums. */
export function embeddingOffset(nq: number): number {
  return SAMPLE_HEADER_BYTES + 8 * nq;
}

/**
 * Lays out the record of `s` in `buf` (at least {@link sampleRecordBytes} long, 8-byte aligned):
 * header and sums written, G(z) left as it was. Returns a view of the G(z) region.
 */
export function writeSampleRecord(buf: Buffer, run: RunState, s: SampleState, k: number, lsn: number): Float32Array {
  const nq = s.nq;
  writeSampleRecordAt(buf, new Float64Array(buf.buffer, buf.byteOffset + SAMPLE_HEADER_BYTES, nq), 0, run, s, k, lsn);
  return new Float32Array(buf.buffer, buf.byteOffset + embeddingOffset(nq), k);
}

/**
 * {@link writeSampleRecord} into `buf` at byte `at` (8-byte aligned), with `f64` a Float64Array
 * over the same memory: header and sums written, no view made. G(z) goes at
 * `at + embeddingOffset(nq)`.
 */
export function writeSampleRecordAt(
  buf: Buffer,
  f64: Float64Array,
  at: number,
  run: RunState,
  s: SampleState,
  k: number,
  lsn: number,
): void {
  const nq = s.nq;
  buf.writeUInt32LE(SAMPLE_RECORD_V4, at);
  buf.writeUInt32LE(nq, at + 4);
  buf.writeDoubleLE(s.seen, at + 8);
  buf.writeDoubleLE(s.lastStep, at + 16);
  buf.writeFloatLE(s.weight, at + 24);
  buf.writeUInt32LE(k, at + 28);
  buf.writeDoubleLE(lsn, at + 32);
  buf.writeDoubleLE(s.total, at + 40);
  // An empty history; the flusher writes the sample's points over it.
  buf.fill(0, at + embeddingOffset(nq) + 4 * k, at + sampleRecordBytes(nq, k));
  if (nq === 0) return;
  const slab = run.sumsSlab(s.sumsAt);
  const from = run.sumsOffset(s.sumsAt);
  const to = (buf.byteOffset - f64.byteOffset + at + SAMPLE_HEADER_BYTES) / 8;
  for (let j = 0; j < nq; j++) f64[to + j] = slab[from + j] as number;
}

/** The record's sum count and G(z) length, after checking its layout tag. */
export function recordShape(buf: Uint8Array): { nq: number; k: number } {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const layout = b.readUInt32LE(0);
  if (layout !== SAMPLE_RECORD_V3 && layout !== SAMPLE_RECORD_V4) throw new Error(`unknown sample record layout ${layout}`);
  const shape = { nq: b.readUInt32LE(4), k: b.readUInt32LE(28) };
  const expected = sampleRecordBytes(shape.nq, shape.k) - (layout === SAMPLE_RECORD_V3 ? HISTORY_TRAILER_BYTES : 0);
  // `length`, not `byteLength`: lmdb-js's getBinaryFast buffer is a view of a larger reused buffer
  // whose `length` is the value's size.
  if (buf.length !== expected)
    throw new Error(`sample record of ${buf.length} bytes, expected ${expected} for ${shape.nq} sums and k = ${shape.k}`);
  return shape;
}

/**
 * The sample state of a record, its sums written into `run`'s slabs (into `reuse`'s row when that
 * holds as many), and the last log entry folded into it.
 */
export function decodeSample(run: RunState, id: string, buf: Uint8Array, reuse?: SampleState): { sample: SampleState; lsn: number } {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const { nq } = recordShape(b);
  const sumsAt = reuse?.nq === nq ? reuse.sumsAt : run.sumsRow(nq);
  if (nq > 0) {
    const slab = run.sumsSlab(sumsAt);
    const from = run.sumsOffset(sumsAt);
    for (let j = 0; j < nq; j++) slab[from + j] = b.readDoubleLE(SAMPLE_HEADER_BYTES + 8 * j);
  }
  const lsn = smallInt(b.readDoubleLE(32));
  return {
    sample: {
      id,
      seen: smallInt(b.readDoubleLE(8)),
      lastStep: smallInt(b.readDoubleLE(16)),
      weight: b.readFloatLE(24),
      sumsAt,
      nq,
      total: b.readDoubleLE(40),
      lsn,
      flushedLsn: lsn,
      delta: -1,
      at: -1,
      atBytes: 0,
      weightAt: -1,
      mirrorSlot: -1,
      historyPending: undefined,
    },
    lsn,
  };
}

/**
 * `x` as the small integer V8 keeps unboxed in an object's field, where it is one. A float64 read
 * from a buffer is a heap number even when integral; stored in a sample's field it makes V8 keep
 * that field boxed, 16 bytes more, in every sample (seen, lastStep, lsn and flushedLsn: 61 MiB at
 * a million samples).
 */
export function smallInt(x: number): number {
  return (x | 0) === x ? x | 0 : x;
}

/** Copies the G(z) bytes of a stored record into `out` (float32[k]). */
export function copyEmbedding(buf: Uint8Array, out: Float32Array): void {
  const { nq, k } = recordShape(buf);
  const start = embeddingOffset(nq);
  new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(buf.subarray(start, start + 4 * Math.min(k, out.length)));
}

/** G(z) of a record as a Float32Array (a view when aligned, else a copy). Read it at once. */
export function embeddingView(buf: Uint8Array): Float32Array {
  const { nq, k } = recordShape(buf);
  const start = buf.byteOffset + embeddingOffset(nq);
  if (start % 4 === 0) return new Float32Array(buf.buffer, start, k);
  const out = new Float32Array(k);
  copyEmbedding(buf, out);
  return out;
}

/** A float32 array's bytes, without copying. */
export function float32Bytes(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** Copies little-endian float32 bytes into a fresh, aligned Float32Array. */
export function bytesToFloat32(bytes: Uint8Array): Float32Array {
  const out = new Float32Array(bytes.byteLength / 4);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

/** A weight entry's body (segments.ts, 16 bytes): f64 lsn, f32 weight, zero padding. */
export function writeWeightBody(buf: Buffer, at: number, lsn: number, weight: number): void {
  buf.writeDoubleLE(lsn, at);
  buf.writeFloatLE(weight, at + 8);
  buf.writeUInt32LE(0, at + 12);
}
