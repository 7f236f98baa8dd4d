/** Small numeric helpers shared by the engine and the views. Plain loops over typed arrays. */

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
