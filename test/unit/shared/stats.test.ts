import { describe, expect, it } from 'vitest';
import { median, percentile } from '../../../daemon/shared/index.js';
import { ReferenceModel, rng } from '../../helpers/reference.js';

describe('order statistics', () => {
  it.each([1, 2, 3, 10, 101, 1000])('percentiles of %i values equal the sort-based reference', (n) => {
    const r = rng(n);
    const values = Array.from({ length: n }, () => (r.uniform() < 0.2 ? Math.round(r.normal()) : r.normal()));
    for (const p of [0, 1, 10, 25, 50, 75, 90, 99, 100]) {
      expect(percentile(Float64Array.from(values), p)).toBe(ReferenceModel.percentile(values, p));
    }
  });

  it('handles sorted, reversed and constant inputs, and empty ones', () => {
    const up = Float64Array.from({ length: 1001 }, (_, i) => i);
    expect(median(up)).toBe(500);
    expect(median(Float64Array.from({ length: 1000 }, (_, i) => 1000 - i))).toBe(500.5);
    expect(percentile(new Float64Array(50).fill(3), 90)).toBe(3);
    expect(percentile(new Float64Array(0), 50)).toBeNaN();
  });
});
