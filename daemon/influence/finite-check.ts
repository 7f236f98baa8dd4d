/**
 * The last check before a batch commits: everything it adds stays finite. A batch adds lr·x to
 * each of its samples' G(z) (float32) and lr·⟨x, q_j⟩ to each S_j(z) and to their total (float64).
 * Each such value must be at most {@link MAX_CONTRIBUTION} in magnitude, so that even 2^32
 * batches of one sample keep G(z) within float32 range, and the sums it makes must be finite.
 * A batch that breaks this is refused alone (`MOTIVE_INGEST_BATCH_OVERFLOW`), before anything of
 * it is written (docs/wire.md).
 */
import type { RunState, SampleState } from '../store/index.js';

/** Largest magnitude of one value a batch adds to a sample's G(z) or S_j(z): 2^96 = float32 max / 2^32. */
export const MAX_CONTRIBUTION = 2 ** 96;

/**
 * Why the batch would make some accumulated value overflow, or undefined when it would not.
 * `products` is [n × m] (m = `columns.length`) with the query set in force, `samples` each id's
 * sample as prepared (undefined: new).
 */
export function overflowReason(
  run: RunState,
  lr: number,
  sketches: Float32Array,
  products: Float32Array | undefined,
  columns: Int32Array | undefined,
  samples: ReadonlyArray<SampleState | undefined> | undefined,
): string | undefined {
  let maxAbs = 0;
  for (let i = 0; i < sketches.length; i++) {
    const a = Math.abs(sketches[i] as number);
    if (a > maxAbs) maxAbs = a;
  }
  if (!(lr * maxAbs <= MAX_CONTRIBUTION)) return `lr × |sketch value| = ${lr * maxAbs} exceeds 2^96 (G(z) would overflow)`;
  if (products === undefined || columns === undefined) return undefined;
  const m = columns.length;
  const n = m === 0 ? 0 : products.length / m;
  for (let i = 0; i < n; i++) {
    const s = samples?.[i];
    const at = i * m;
    // Adding at most 2^96 to a finite float64 never overflows: at the top of the range one ulp is
    // 2^971, so the sum rounds to a finite value. With every contribution bounded, a sum the
    // batch makes is finite exactly when it was before; the total (Σ_j S_j, kept with the same
    // increments, and set from the sums by imports) is finite exactly when all the sums are. So
    // the sums themselves are read only for a sample whose total is not finite: a second pass
    // over every sample's sums row cost as many cache misses as the apply's own.
    if (s === undefined || Number.isFinite(s.total)) {
      for (let j = 0; j < m; j++) {
        const c = lr * (products[at + j] as number);
        if (!(Math.abs(c) <= MAX_CONTRIBUTION)) return `lr × ⟨sketch, query⟩ = ${c} exceeds 2^96 (sample ${i}, query ${j})`;
      }
      continue;
    }
    let total = s.total;
    for (let j = 0; j < m; j++) {
      const c = lr * (products[at + j] as number);
      if (!(Math.abs(c) <= MAX_CONTRIBUTION)) return `lr × ⟨sketch, query⟩ = ${c} exceeds 2^96 (sample ${i}, query ${j})`;
      const sum = run.sumAt(s, columns[j] as number) + c;
      total += c;
      if (!Number.isFinite(sum) || !Number.isFinite(total)) return `the sums of sample ${i} would overflow`;
    }
  }
  return undefined;
}
