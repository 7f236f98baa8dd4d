/**
 * Order statistics in O(n) (quickselect), for the weight policy's median / MAD and the vote
 * thresholds, which run over every sample of a run on the main thread.
 */

/** Reorders `a` so that a[k] is the k-th smallest, everything left of it ≤ it, right of it ≥ it. */
export function selectInPlace(a: Float64Array, k: number): void {
  let lo = 0;
  let hi = a.length - 1;
  while (hi > lo) {
    // Median of three as the pivot keeps sorted and reversed inputs linear.
    const mid = (lo + hi) >>> 1;
    const x = a[lo] as number;
    const y = a[mid] as number;
    const z = a[hi] as number;
    const pivot = x < y ? (y < z ? y : x < z ? z : x) : x < z ? x : y < z ? z : y;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while ((a[i] as number) < pivot) i++;
      while ((a[j] as number) > pivot) j--;
      if (i <= j) {
        const t = a[i] as number;
        a[i] = a[j] as number;
        a[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return;
  }
}

/**
 * Percentile with linear interpolation between order statistics (numpy's default). Reorders
 * `values` in place; NaN for an empty array.
 */
export function percentile(values: Float64Array, p: number): number {
  const n = values.length;
  if (n === 0) return NaN;
  const pos = (p / 100) * (n - 1);
  const lo = Math.floor(pos);
  selectInPlace(values, lo);
  const a = values[lo] as number;
  if (pos === lo) return a;
  // The next order statistic is the smallest value right of the selected one.
  let b = Infinity;
  for (let i = lo + 1; i < n; i++) if ((values[i] as number) < b) b = values[i] as number;
  return a + (b - a) * (pos - lo);
}

/** Median of `values` (reorders it in place). */
export function median(values: Float64Array): number {
  return percentile(values, 50);
}

/**
 * The majority vote with per-query percentile cuts (docs/method.md): τ_j is the `p`-th percentile of
 * column j over `rows`, and a row's votes count the j with `row[j] > τ_j`. Rows shorter than `m`
 * hold 0 in the missing columns (queries added after the sample was last seen).
 */
export function percentileVotes(
  rows: ReadonlyArray<ArrayLike<number>>,
  m: number,
  p: number,
): { thresholds: Float64Array; votes: Int32Array } {
  const thresholds = new Float64Array(m);
  const column = new Float64Array(rows.length);
  for (let j = 0; j < m; j++) {
    rows.forEach((r, i) => (column[i] = r[j] ?? 0));
    thresholds[j] = percentile(column, p);
  }
  const votes = new Int32Array(rows.length);
  rows.forEach((r, i) => {
    let v = 0;
    for (let j = 0; j < m; j++) if ((r[j] ?? 0) > (thresholds[j] as number)) v++;
    votes[i] = v;
  });
  return { thresholds, votes };
}
