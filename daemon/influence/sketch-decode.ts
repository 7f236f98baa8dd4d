import { decodeSketchesInto } from '../shared/index.js';
import type { SketchDType } from '../store/index.js';

/** Bytes per value of a sketch dtype. */
export function dtypeBytes(dtype: SketchDType): number {
  return dtype === 'float16' ? 2 : 4;
}

/** Free buffers of one kind by length, and which of them this pool made. */
class Shelf<T extends Float32Array | Buffer> {
  readonly free = new Map<number, T[]>();
  /** Buffers the pool made: only those come back (a caller's own array is never recycled). */
  readonly own = new WeakSet<T>();
  /** Buffers waiting in `free` (a second give of the same buffer is ignored). */
  readonly idle = new WeakSet<T>();
}

/**
 * Batches' buffers, reused: the decoded sketches (a batch of 256 × 512 float32 is 512 KiB outside
 * the JS heap; allocating one per batch made V8 start a full garbage collection about every
 * second at 10,000 sketches/s, as it counts external memory towards its heap limit) and a copy of
 * the sketch bytes as received, for the store's log (see {@link SketchBuffers.copyBytes}).
 */
export class SketchBuffers {
  private readonly floats = new Shelf<Float32Array>();
  private readonly wire = new Shelf<Buffer>();
  private bytes = 0;
  /**
   * Most bytes kept for reuse, both kinds together: 32 decoded batches of 256 × 512 floats, about
   * what a trainer keeps in flight. (64 MiB before; held whether or not ingest needed it again.)
   */
  private readonly maxBytes = 16 << 20;

  /** A buffer of `count` values, not zeroed. */
  take(count: number): Float32Array {
    return this.takeFrom(this.floats, count) ?? this.made(this.floats, new Float32Array(count));
  }

  /** Returns a buffer from {@link SketchBuffers.take} once nothing reads it any more. */
  give(buf: Float32Array): void {
    this.giveTo(this.floats, buf);
  }

  /**
   * A copy of a message's sketch bytes in a reused buffer. The bytes as decoded from the message
   * are a view of the whole message's buffer, which the view would keep alive until its batch is
   * applied: long enough, under load, for V8 to move it to the old generation, where it waits
   * for a full collection. Ingesting into 1M samples at 20,000–30,000 sketches/s, the copy took
   * the daemon's peak memory down by about 110–170 MiB.
   */
  copyBytes(bytes: Uint8Array): Buffer {
    const out = this.takeFrom(this.wire, bytes.length) ?? this.made(this.wire, Buffer.allocUnsafeSlow(bytes.length));
    out.set(bytes);
    return out;
  }

  /** Returns a buffer from {@link SketchBuffers.copyBytes} once nothing reads it any more. */
  giveBytes(buf: Uint8Array): void {
    this.giveTo(this.wire, buf as Buffer);
  }

  private made<T extends Float32Array | Buffer>(shelf: Shelf<T>, buf: T): T {
    shelf.own.add(buf);
    return buf;
  }

  private takeFrom<T extends Float32Array | Buffer>(shelf: Shelf<T>, length: number): T | undefined {
    const reused = shelf.free.get(length)?.pop();
    if (reused === undefined) return undefined;
    this.bytes -= reused.byteLength;
    shelf.idle.delete(reused);
    return reused;
  }

  private giveTo<T extends Float32Array | Buffer>(shelf: Shelf<T>, buf: T): void {
    if (!shelf.own.has(buf) || shelf.idle.has(buf) || this.bytes + buf.byteLength > this.maxBytes) return;
    let list = shelf.free.get(buf.length);
    if (list === undefined) shelf.free.set(buf.length, (list = []));
    list.push(buf);
    shelf.idle.add(buf);
    this.bytes += buf.byteLength;
  }
}

/**
 * Decodes `count` little-endian values of `dtype` into an aligned Float32Array, taken from
 * `buffers` when given (new otherwise), or undefined when any value is NaN or ±Inf. With
 * `normalizeK`, every row of that many values is L2-normalised in the same pass (cosine runs).
 */
export function decodeFiniteSketches(
  bytes: Uint8Array,
  dtype: SketchDType,
  count: number,
  buffers?: SketchBuffers,
  normalizeK?: number,
): Float32Array | undefined {
  const out = buffers === undefined ? new Float32Array(count) : buffers.take(count);
  if (decodeSketchesInto(bytes, dtype, out, count, normalizeK)) return out;
  buffers?.give(out);
  return undefined;
}
