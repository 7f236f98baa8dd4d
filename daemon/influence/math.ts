/** Small numeric helpers shared by the engine and the views. Plain loops over typed arrays. */

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

/** [rows × cols] → [cols × rows]. */
export function transpose(x: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = x[i * cols + j] as number;
  return out;
}

/** True when every value is finite. */
export function allFinite(x: Float32Array): boolean {
  for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i])) return false;
  return true;
}
