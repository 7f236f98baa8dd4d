import { decodeFloat16 } from '../shared/index.js';
import type { SketchDType } from '../store/index.js';

/** Bytes per value of a sketch dtype. */
export function dtypeBytes(dtype: SketchDType): number {
  return dtype === 'float16' ? 2 : 4;
}

/**
 * Decodes `count` little-endian values of `dtype` into a new aligned Float32Array, or undefined
 * when any value is NaN or ±Inf.
 */
export function decodeFiniteSketches(bytes: Uint8Array, dtype: SketchDType, count: number): Float32Array | undefined {
  const out = new Float32Array(count);
  if (dtype === 'float16') return decodeFloat16(bytes, out, count) ? out : undefined;
  new Uint8Array(out.buffer).set(bytes.subarray(0, count * 4));
  for (let i = 0; i < count; i++) if (!Number.isFinite(out[i])) return undefined;
  return out;
}
