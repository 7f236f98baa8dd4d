/** Percentile with linear interpolation between order statistics (numpy's default); sorts `values` in place. */
export function percentile(values: Float64Array, p: number): number {
  if (values.length === 0) return NaN;
  values.sort();
  const pos = (p / 100) * (values.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  const a = values[lo] as number;
  const b = values[hi] as number;
  return a + (b - a) * (pos - lo);
}

/** Median of `values` (sorts it in place). */
export function median(values: Float64Array): number {
  return percentile(values, 50);
}
