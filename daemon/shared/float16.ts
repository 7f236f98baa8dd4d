/**
 * IEEE 754 binary16 decoding through a 64 Ki-entry lookup table (256 KiB, built on first use).
 * The daemon only reads fp16; trainers encode it (trainer-hooks).
 */
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

/**
 * Decodes `count` little-endian values of `dtype` (as the wire carries sketches) from `bytes`
 * into `out`. Returns false when any value is NaN or ±Inf.
 */
export function decodeSketchesInto(bytes: Uint8Array, dtype: 'float16' | 'float32', out: Float32Array, count: number): boolean {
  if (dtype === 'float16') return decodeFloat16(bytes, out, count);
  new Uint8Array(out.buffer, out.byteOffset, count * 4).set(bytes.subarray(0, count * 4));
  for (let i = 0; i < count; i++) if (!Number.isFinite(out[i])) return false;
  return true;
}

/** {@link decodeSketchesInto} a new Float32Array, for sketches already checked when received. */
export function decodeSketches(bytes: Uint8Array, dtype: 'float16' | 'float32', count: number): Float32Array {
  const out = new Float32Array(count);
  decodeSketchesInto(bytes, dtype, out, count);
  return out;
}
