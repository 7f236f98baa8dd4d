/** Row operations on packed float32 matrices, shared by ingest scoring and store recovery. */

/**
 * L2-normalises each of `n` rows of length `k` in place; zero rows stay zero. The sum of squares
 * runs in four float64 accumulators (independent additions the CPU can overlap: in the daemon's
 * ingest this took the main thread from 22–24 to 17–22 µs per sketch at k = 512). Ingest and
 * recovery both normalise through here, so a replayed batch gets the same floats.
 */
export function normalizeRows(x: Float32Array, n: number, k: number): void {
  for (let i = 0; i < n; i++) {
    const off = i * k;
    const end = off + k;
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    let d = off;
    for (; d + 3 < end; d += 4) {
      const a = x[d] as number;
      const b = x[d + 1] as number;
      const c = x[d + 2] as number;
      const e = x[d + 3] as number;
      s0 += a * a;
      s1 += b * b;
      s2 += c * c;
      s3 += e * e;
    }
    for (; d < end; d++) s0 += (x[d] as number) * (x[d] as number);
    const ss = s0 + s1 + s2 + s3;
    if (ss === 0) continue;
    const inv = 1 / Math.sqrt(ss);
    for (let j = off; j < end; j++) x[j] = (x[j] as number) * inv;
  }
}
