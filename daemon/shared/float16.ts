/**
 * IEEE 754 binary16 decoding through a 64 Ki-entry lookup table (256 KiB, built on first use).
 */
let table: Float32Array | undefined;

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
  for (let i = 0, b = 0; i < count; i++, b += 2) {
    const h = (bytes[b] as number) | ((bytes[b + 1] as number) << 8);
    out[i] = t[h] as number;
    special |= (h & 0x7c00) === 0x7c00 ? 1 : 0;
  }
  return special === 0;
}

/** Rounds a float32 value to binary16 bits (round to nearest even). Used by clients and tests. */
export function encodeFloat16(value: number): number {
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  f32[0] = value;
  const x = u32[0] as number;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  e = half >>> 10;
  return sign | half;
}
