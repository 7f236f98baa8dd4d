/** Row operations on packed float32 matrices, shared by ingest scoring and store recovery. */

/** L2-normalises each of `n` rows of length `k` in place; zero rows stay zero. */
export function normalizeRows(x: Float32Array, n: number, k: number): void {
  for (let i = 0; i < n; i++) {
    const off = i * k;
    let ss = 0;
    for (let d = 0; d < k; d++) {
      const v = x[off + d] as number;
      ss += v * v;
    }
    if (ss === 0) continue;
    const inv = 1 / Math.sqrt(ss);
    for (let d = 0; d < k; d++) x[off + d] = (x[off + d] as number) * inv;
  }
}
