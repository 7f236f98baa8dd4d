import { describe, expect, it } from 'vitest';
import { normalizeRows } from '../../../daemon/shared/vectors.js';
import { rng } from '../../helpers/reference.js';

describe('normalizeRows', () => {
  it('scales every row to unit L2 norm against a float64 reference, for k not a multiple of 4; zero rows stay zero', () => {
    const r = rng(3);
    for (const k of [1, 3, 4, 7, 512, 513]) {
      const n = 5;
      const x = Float32Array.from({ length: n * k }, () => r.normal() * 10);
      x.fill(0, 2 * k, 3 * k); // row 2 is all zeros
      const before = Array.from(x, Number);
      normalizeRows(x, n, k);
      for (let i = 0; i < n; i++) {
        const row = before.slice(i * k, (i + 1) * k);
        const norm = Math.sqrt(row.reduce((t, v) => t + v * v, 0));
        for (let d = 0; d < k; d++) {
          const want = norm === 0 ? 0 : (row[d] as number) / norm;
          expect(Math.abs((x[i * k + d] as number) - want)).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(want)));
        }
      }
    }
  });
});
