/**
 * IEEE 754 binary16 decoding: ingest's decode-and-normalise as a WebAssembly SIMD kernel
 * (float16-kernel.wat), everything else through a 64 Ki-entry lookup table (256 KiB, built on
 * first use). The daemon only reads fp16; trainers encode it (trainer-hooks).
 */
import { FLOAT16_KERNEL_WASM } from './float16-kernel.js';
import { normalizeRows } from './vectors.js';

let table: Float32Array | undefined;

/** Whether typed arrays on this machine are little-endian (the wire format is). */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function buildTable(): Float32Array {
  const out = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    let v: number;
    if (exp === 0) v = sign * frac * 2 ** -24;
    else if (exp === 31) v = frac === 0 ? sign * Infinity : NaN;
    else v = sign * (1 + frac / 1024) * 2 ** (exp - 15);
    out[h] = v;
  }
  return out;
}

/**
 * Decodes `count` little-endian binary16 values from `bytes` into `out` (as float32). Returns
 * false when any value is NaN or ±Inf (all exponent bits set), found in the same pass.
 */
export function decodeFloat16(bytes: Uint8Array, out: Float32Array, count: number): boolean {
  table ??= buildTable();
  const t = table;
  let special = 0;
  if (bytes.byteOffset % 2 === 0 && LITTLE_ENDIAN) {
    // Aligned (the usual case): read the halves directly, 1.3× faster than byte pairs.
    const halves = new Uint16Array(bytes.buffer, bytes.byteOffset, count);
    for (let i = 0; i < count; i++) {
      const h = halves[i] as number;
      out[i] = t[h] as number;
      special |= (h & 0x7c00) === 0x7c00 ? 1 : 0;
    }
    return special === 0;
  }
  for (let i = 0, b = 0; i < count; i++, b += 2) {
    const h = (bytes[b] as number) | ((bytes[b + 1] as number) << 8);
    out[i] = t[h] as number;
    special |= (h & 0x7c00) === 0x7c00 ? 1 : 0;
  }
  return special === 0;
}

/** Most halves decoded by the SIMD kernel per call (its memory holds 6 bytes per half); larger batches take the loop. */
const KERNEL_MAX_HALVES = 4 * 1024 * 1024;

interface Decoder {
  readonly memory: WebAssembly.Memory;
  readonly decodeRows: (src: number, dst: number, rows: number, k: number) => number;
}

let decoder: Decoder | undefined;

function kernelDecoder(): Decoder {
  if (decoder === undefined) {
    const memory = new WebAssembly.Memory({ initial: 0 });
    const module = new WebAssembly.Module(Buffer.from(FLOAT16_KERNEL_WASM, 'base64'));
    const exports = new WebAssembly.Instance(module, { env: { memory } }).exports;
    decoder = { memory, decodeRows: exports.decode_rows as Decoder['decodeRows'] };
  }
  return decoder;
}

/**
 * Decodes `rows × k` little-endian binary16 values from `bytes` into `out` and L2-normalises each
 * row of `k`: the same floats as {@link decodeFloat16} followed by `normalizeRows` (the same sums
 * in the same order). Runs the SIMD kernel of float16-kernel.wat (the halves copied into its
 * memory, the floats copied out); {@link decodeFloat16RowsLoop} beyond its size or on a
 * big-endian machine. Returns false when any value is NaN or ±Inf.
 */
export function decodeFloat16Rows(bytes: Uint8Array, out: Float32Array, rows: number, k: number): boolean {
  const count = rows * k;
  if (count > KERNEL_MAX_HALVES || !LITTLE_ENDIAN) return decodeFloat16RowsLoop(bytes, out, rows, k);
  const { memory, decodeRows } = kernelDecoder();
  const outAt = Math.ceil((2 * count) / 16) * 16;
  const need = outAt + 4 * count;
  if (memory.buffer.byteLength < need) memory.grow(Math.ceil((need - memory.buffer.byteLength) / 65536));
  new Uint8Array(memory.buffer, 0, 2 * count).set(bytes.subarray(0, 2 * count));
  const special = decodeRows(0, outAt, rows, k);
  out.set(new Float32Array(memory.buffer, outAt, count));
  return special === 0;
}

/**
 * {@link decodeFloat16Rows} as a JavaScript loop: each row decoded and L2-normalised in the same
 * pass, while the row is in cache. At k = 512 this took the daemon's main thread from 23–28 to
 * 15–19 µs per sketch in process (the kernel: see docs/performance.md).
 */
export function decodeFloat16RowsLoop(bytes: Uint8Array, out: Float32Array, rows: number, k: number): boolean {
  const count = rows * k;
  if (bytes.byteOffset % 2 !== 0 || !LITTLE_ENDIAN) {
    const ok = decodeFloat16(bytes, out, count);
    normalizeRows(out, rows, k);
    return ok;
  }
  table ??= buildTable();
  const t = table;
  const halves = new Uint16Array(bytes.buffer, bytes.byteOffset, count);
  /** The exponent bits of every half, plus one: see the return. */
  let special = 0;
  for (let off = 0; off < count; off += k) {
    const end = off + k;
    // As normalizeRows sums: four accumulators over the row's groups of four, the rest into s0.
    // Repeated here, not shared: decoding a row and then normalising it with a shared row function
    // cost the main thread 15.1–19.0 against 14.2–15.1 µs per sketch (three in-process pairs).
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    let i = off;
    for (; i + 3 < end; i += 4) {
      const h0 = halves[i] as number;
      const h1 = halves[i + 1] as number;
      const h2 = halves[i + 2] as number;
      const h3 = halves[i + 3] as number;
      const a = t[h0] as number;
      const b = t[h1] as number;
      const c = t[h2] as number;
      const e = t[h3] as number;
      out[i] = a;
      out[i + 1] = b;
      out[i + 2] = c;
      out[i + 3] = e;
      s0 += a * a;
      s1 += b * b;
      s2 += c * c;
      s3 += e * e;
      special |= ((h0 & 0x7c00) + 0x400) | ((h1 & 0x7c00) + 0x400) | ((h2 & 0x7c00) + 0x400) | ((h3 & 0x7c00) + 0x400);
    }
    for (; i < end; i++) {
      const h = halves[i] as number;
      const a = t[h] as number;
      out[i] = a;
      s0 += a * a;
      special |= (h & 0x7c00) + 0x400;
    }
    const ss = s0 + s1 + s2 + s3;
    if (ss === 0) continue;
    const inv = 1 / Math.sqrt(ss);
    for (let j = off; j < end; j++) out[j] = (out[j] as number) * inv;
  }
  // (h & 0x7c00) + 0x400 reaches 0x8000 only when every exponent bit is set (NaN or ±Inf).
  return (special & 0x8000) === 0;
}

/**
 * Decodes `count` little-endian values of `dtype` (as the wire carries sketches) from `bytes`
 * into `out`; with `normalizeK`, each row of that many values is also L2-normalised (exactly as
 * `normalizeRows` does). Returns false when any value is NaN or ±Inf.
 */
export function decodeSketchesInto(
  bytes: Uint8Array,
  dtype: 'float16' | 'float32',
  out: Float32Array,
  count: number,
  normalizeK?: number,
): boolean {
  if (dtype === 'float16') {
    if (normalizeK === undefined) return decodeFloat16(bytes, out, count);
    return decodeFloat16Rows(bytes, out, count / normalizeK, normalizeK);
  }
  new Uint8Array(out.buffer, out.byteOffset, count * 4).set(bytes.subarray(0, count * 4));
  for (let i = 0; i < count; i++) if (!Number.isFinite(out[i])) return false;
  if (normalizeK !== undefined) normalizeRows(out, count / normalizeK, normalizeK);
  return true;
}

/** {@link decodeSketchesInto} a new Float32Array, for sketches already checked when received. */
export function decodeSketches(bytes: Uint8Array, dtype: 'float16' | 'float32', count: number): Float32Array {
  const out = new Float32Array(count);
  decodeSketchesInto(bytes, dtype, out, count);
  return out;
}
