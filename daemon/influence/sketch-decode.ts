import { decodeSketchesInto } from '../shared/index.js';
import type { SketchDType } from '../store/index.js';

/** Bytes per value of a sketch dtype. */
export function dtypeBytes(dtype: SketchDType): number {
  return dtype === 'float16' ? 2 : 4;
}

/**
 * Decoded batches' buffers, reused: a batch of 256 × 512 float32 is 512 KiB outside the JS heap,
 * and allocating one per batch made V8 start a full garbage collection about every second at
 * 10,000 sketches/s (it counts external memory towards its heap limit).
 */
export class SketchBuffers {
  private readonly free = new Map<number, Float32Array[]>();
  /** Buffers this pool made: only those come back (a caller's own array is never recycled). */
  private readonly own = new WeakSet<Float32Array>();
  /** Buffers waiting in `free` (a second give of the same buffer is ignored). */
  private readonly idle = new WeakSet<Float32Array>();
  private bytes = 0;
  /**
   * Most bytes kept for reuse: 32 decoded batches of 256 × 512 floats, about what a trainer keeps
   * in flight. (64 MiB before; held whether or not ingest needed it again.)
   */
  private readonly maxBytes = 16 << 20;

  /** A buffer of `count` values, not zeroed. */
  take(count: number): Float32Array {
    const list = this.free.get(count);
    const reused = list?.pop();
    if (reused === undefined) {
      const made = new Float32Array(count);
      this.own.add(made);
      return made;
    }
    this.bytes -= reused.byteLength;
    this.idle.delete(reused);
    return reused;
  }

  /** Returns a buffer from {@link SketchBuffers.take} once nothing reads it any more. */
  give(buf: Float32Array): void {
    if (!this.own.has(buf) || this.idle.has(buf) || this.bytes + buf.byteLength > this.maxBytes) return;
    let list = this.free.get(buf.length);
    if (list === undefined) this.free.set(buf.length, (list = []));
    list.push(buf);
    this.idle.add(buf);
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
