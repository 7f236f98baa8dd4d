import { describe, expect, it } from 'vitest';
import { EmbeddingMirror } from '../../../daemon/store/embedding-mirror.js';
import { rng } from '../../helpers/reference.js';

function row(mirror: EmbeddingMirror, slot: number): { values: Int8Array; scale: number } {
  for (const b of mirror.blocksView()) {
    if (slot < b.first || slot >= b.first + b.count) continue;
    const at = slot - b.first;
    return { values: b.rows.slice(at * mirror.dim, (at + 1) * mirror.dim), scale: b.scales[at] as number };
  }
  throw new Error(`no slot ${slot}`);
}

describe('int8 embedding mirror', () => {
  it('quantises each row to round(g / (max|g| / 127)), within half a step of g', () => {
    const k = 96;
    const r = rng(7);
    const mirror = new EmbeddingMirror(k);
    const rows: Float32Array[] = [];
    for (let i = 0; i < 200; i++) {
      const spread = 10 ** (r.int(9) - 4);
      const g = Float32Array.from({ length: k }, () => r.normal() * spread);
      // Exact ±max and a zero in every row: the extremes must map to ±127 and 0.
      g[i % k] = 0;
      rows.push(g);
      mirror.set(mirror.add(`s${i}`), g);
    }
    mirror.set(mirror.add('zero'), new Float32Array(k));
    rows.forEach((g, i) => {
      const { values, scale } = row(mirror, i);
      let max = 0;
      for (const v of g) max = Math.max(max, Math.abs(v));
      expect(scale).toBe(Math.fround(max / 127));
      const inv = 1 / (max / 127);
      for (let d = 0; d < k; d++) {
        const x = (g[d] as number) * inv;
        // Reference: plain Math.round (round half up) of the float64 ratio.
        expect(values[d]).toBe(Math.round(x) + 0);
        expect(Math.abs((values[d] as number) * scale - (g[d] as number))).toBeLessThanOrEqual(scale / 2 + 1e-6 * max);
      }
      expect(Math.max(...values.map(Math.abs))).toBe(127);
    });
    const z = row(mirror, rows.length);
    expect(z.scale).toBe(0);
    expect([...z.values].every((v) => v === 0)).toBe(true);
  });

  it('finds max|g| wherever it lies, also among the values after the last group of four (k = 7)', () => {
    const k = 7;
    const mirror = new EmbeddingMirror(k);
    for (let at = 0; at < k; at++) {
      const g = Float32Array.from({ length: k }, (_, d) => 0.01 * (d + 1));
      g[at] = -3; // the largest magnitude, negative, at every position in turn
      mirror.set(mirror.add(`s${at}`), g);
      const { values, scale } = row(mirror, at);
      expect(scale).toBe(Math.fround(3 / 127));
      expect(values[at]).toBe(-127);
    }
  });

  it('rounds exact halves up, as Math.round does', () => {
    const mirror = new EmbeddingMirror(6);
    // max 127 makes the step exactly 1, so these values land on the halves themselves.
    mirror.set(mirror.add('h'), Float32Array.from([127, -0.5, 0.5, -2.5, 2.5, -126.5]));
    expect([...row(mirror, 0).values]).toEqual([127, 0, 1, -2, 3, -126]);
  });

  it('writes a row only into a slot it assigned, and rewrites it in place', () => {
    const mirror = new EmbeddingMirror(4);
    expect(() => mirror.set(0, new Float32Array(4))).toThrow(RangeError);
    const a = mirror.add('a');
    const b = mirror.add('b');
    mirror.set(b, Float32Array.from([0, 0, 0, 1]));
    mirror.set(a, Float32Array.from([2, 0, 0, 0]));
    mirror.set(a, Float32Array.from([0, -4, 0, 0]));
    expect(mirror.size).toBe(2);
    expect([...row(mirror, a).values]).toEqual([0, -127, 0, 0]);
    expect(row(mirror, a).scale).toBe(Math.fround(4 / 127));
    expect([...row(mirror, b).values]).toEqual([0, 0, 0, 127]);
    expect(() => mirror.setQuantized(2, 1, undefined)).toThrow(RangeError);
    expect([...mirror.blocksView()].flatMap((v) => v.ids)).toEqual(['a', 'b']);
  });
});
