/**
 * Binary value encodings of the store. All little-endian. See docs/store.md for the layout.
 */
import type { SampleState } from './run-state.js';

/** Version tag of the sample record layout. */
const SAMPLE_RECORD_V1 = 1;
const SAMPLE_HEADER_BYTES = 32;

/**
 * Sample record: u32 layout(=1) | u32 nq | f64 seen | f64 lastStep | f32 weight | u32 reserved |
 * f64 × nq per-query sums.
 */
export function encodeSample(s: SampleState): Buffer {
  const nq = s.sums.length;
  const buf = Buffer.allocUnsafe(SAMPLE_HEADER_BYTES + 8 * nq);
  buf.writeUInt32LE(SAMPLE_RECORD_V1, 0);
  buf.writeUInt32LE(nq, 4);
  buf.writeDoubleLE(s.seen, 8);
  buf.writeDoubleLE(s.lastStep, 16);
  buf.writeFloatLE(s.weight, 24);
  buf.writeUInt32LE(0, 28);
  for (let j = 0; j < nq; j++) buf.writeDoubleLE(s.sums[j] as number, SAMPLE_HEADER_BYTES + 8 * j);
  return buf;
}

export function decodeSample(id: string, buf: Uint8Array): SampleState {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const layout = b.readUInt32LE(0);
  if (layout !== SAMPLE_RECORD_V1) throw new Error(`unknown sample record layout ${layout}`);
  const nq = b.readUInt32LE(4);
  const sums = new Float64Array(nq);
  for (let j = 0; j < nq; j++) sums[j] = b.readDoubleLE(SAMPLE_HEADER_BYTES + 8 * j);
  return { id, seen: b.readDoubleLE(8), lastStep: b.readDoubleLE(16), weight: b.readFloatLE(24), sums };
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
