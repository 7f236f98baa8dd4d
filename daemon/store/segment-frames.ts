/**
 * The frame format of the record segments (docs/store.md, "Record segments"): a frame's header,
 * id and body, its checksum, a segment's first frame, and the locations that address a frame's
 * body across a run's segments. segments.ts writes and reads the files.
 */
import { crc32 } from 'node:zlib';

/** Frame header: u32 frame bytes | u32 crc32 of bytes [8, frame bytes) | u8 kind | u8 0 | u16 id bytes | u32 body bytes. */
export const FRAME_HEADER_BYTES = 16;
export const FRAME_RECORD = 1;
export const FRAME_WEIGHT = 2;
/**
 * A segment's first frame (store format 6): the run id as its id, the segment number as its body
 * (u32, then 4 bytes of zeros), so a segment of another run, or renamed, is recognised.
 */
export const FRAME_SEGMENT = 3;
export const SEGMENT_BODY_BYTES = 8;
/** A weight entry's body: f64 lsn (the last log entry it reflects), f32 weight, 4 bytes of padding. */
export const WEIGHT_BODY_BYTES = 16;
/** Longest sample id a frame holds (its u16 length field). */
export const MAX_ID_BYTES = 0xffff;
/** Largest segment size a location can address (an offset is kept below 2^32). */
export const MAX_SEGMENT_BYTES = 2 ** 30;

/** A location packs (segment number, byte offset of a frame's body) into one safe integer. */
export const SEGMENT_SPAN = 2 ** 32;

export function pad8(n: number): number {
  return (n + 7) & ~7;
}

/** Bytes of a frame holding an id of `idBytes` UTF-8 bytes and a body of `bodyBytes`. */
export function frameBytes(idBytes: number, bodyBytes: number): number {
  return FRAME_HEADER_BYTES + pad8(idBytes) + pad8(bodyBytes);
}

/** Offset of a frame's body from its start. */
export function bodyOffset(idBytes: number): number {
  return FRAME_HEADER_BYTES + pad8(idBytes);
}

/**
 * Writes a frame's header and id into `frame` (exactly {@link frameBytes} long, 8-byte aligned);
 * the caller writes the body at {@link bodyOffset} and then calls {@link sealFrame}.
 */
export function beginFrame(frame: Buffer, kind: number, id: string, idBytes: number, bodyBytes: number): void {
  beginFrameAt(frame, 0, frame.length, kind, id, idBytes, bodyBytes);
}

/** {@link beginFrame} for the frame of `bytes` at `at` in `buf` (8-byte aligned): no view made. */
export function beginFrameAt(buf: Buffer, at: number, bytes: number, kind: number, id: string, idBytes: number, bodyBytes: number): void {
  if (idBytes > MAX_ID_BYTES) throw new RangeError(`sample id of ${idBytes} bytes: a record frame holds at most ${MAX_ID_BYTES}`);
  buf.writeUInt32LE(bytes, at);
  buf.writeUInt8(kind, at + 8);
  buf.writeUInt8(0, at + 9);
  buf.writeUInt16LE(idBytes, at + 10);
  buf.writeUInt32LE(bodyBytes, at + 12);
  buf.write(id, at + FRAME_HEADER_BYTES, idBytes, 'utf8');
  // The padding after the id and after the body is zeros (frames are built in reused buffers).
  buf.fill(0, at + FRAME_HEADER_BYTES + idBytes, at + bodyOffset(idBytes));
  buf.fill(0, at + bodyOffset(idBytes) + bodyBytes, at + bytes);
}

/** Sets the frame's checksum, once its body is written. */
export function sealFrame(frame: Buffer): void {
  sealFrameAt(frame, frame, 0, frame.length);
}

/** {@link sealFrame} for the frame of `bytes` at `at` in `buf`; `view` is a Uint8Array of the same memory. */
export function sealFrameAt(buf: Buffer, view: Uint8Array, at: number, bytes: number): void {
  buf.writeUInt32LE(crc32(view.subarray(at + 8, at + bytes)), at + 4);
}

/** The segment number of a location. */
export function segmentOf(loc: number): number {
  return Math.floor(loc / SEGMENT_SPAN);
}

/** One frame met while scanning: `body` is a view valid until the scan reads on. */
export interface ScannedFrame {
  readonly kind: number;
  readonly id: string;
  readonly body: Buffer;
  /** Location of the body. */
  readonly loc: number;
  /** The whole frame, a view valid until the scan reads on. */
  readonly frame: Buffer;
}

/** A frame compaction moved: its kind, id and old body location. */
export interface MovedFrame {
  readonly kind: number;
  readonly id: string;
  readonly loc: number;
}

/** A segment's first frame: the run id and the segment number. */
export function segmentHeader(runId: string, seq: number): Buffer {
  const idBytes = Buffer.byteLength(runId);
  const frame = Buffer.alloc(frameBytes(idBytes, SEGMENT_BODY_BYTES));
  beginFrame(frame, FRAME_SEGMENT, runId, idBytes, SEGMENT_BODY_BYTES);
  frame.writeUInt32LE(seq, bodyOffset(idBytes));
  sealFrame(frame);
  return frame;
}
