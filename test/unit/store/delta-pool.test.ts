import { describe, expect, it } from 'vitest';
import { DeltaPool } from '../../../daemon/store/delta-pool.js';
import { EmbeddingMirror } from '../../../daemon/store/embedding-mirror.js';
import { rng } from '../../helpers/reference.js';

/** The values of a pool row. */
function rowOf(pool: DeltaPool, row: number): Float32Array {
  const off = pool.offset(row);
  return pool.block(row).slice(off, off + pool.dim);
}

/** Whether two float32 arrays are equal bit for bit (NaN-free here, so === per element). */
function sameFloats(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && a.every((v, i) => Object.is(v, b[i]));
}

describe('delta pool (WebAssembly SIMD kernels)', () => {
  for (const k of [1, 7, 13, 512]) {
    it(`applies row += lr · sketch exactly as float64 arithmetic rounded to float32 once, k = ${k}`, () => {
      const r = rng(k);
      // Small blocks and shards: rows land in several blocks of several shards, and each batch is
      // copied into each shard it touches; batches over 20 rows take the JavaScript loop instead.
      const pool = new DeltaPool(k, { blockBytes: 4 * k * 3, shardRowBytes: 4 * k * 7, maxStageBytes: 4 * k * 20 });
      const rows = 40;
      const reference = Array.from({ length: rows }, () => new Float64Array(k));
      const ids = Array.from({ length: rows }, () => pool.alloc());
      for (let batch = 0; batch < 6; batch++) {
        // Batches of growing size: each shard's staging area is replaced while rows are held.
        const n = 4 + batch * 9;
        const sketches = Float32Array.from({ length: n * k }, () => r.normal() * 10 ** (r.int(7) - 3));
        const lr = r.normal() * 1e-2;
        pool.stage(sketches, n);
        for (let i = 0; i < n; i++) {
          const target = r.int(rows);
          pool.add(ids[target] as number, i, lr);
          const ref = reference[target] as Float64Array;
          for (let d = 0; d < k; d++) ref[d] = Math.fround((ref[d] as number) + lr * (sketches[i * k + d] as number));
        }
      }
      ids.forEach((id, i) => expect(sameFloats(rowOf(pool, id), Float32Array.from(reference[i] as Float64Array))).toBe(true));
    });
  }

  it('folds base + delta into the scratch row, zeroes and frees the delta, returns max|·|, quantises like the mirror', () => {
    const k = 131;
    const r = rng(3);
    const pool = new DeltaPool(k, { blockBytes: 4 * k * 2, shardRowBytes: 4 * k * 4 });
    const mirror = new EmbeddingMirror(k);
    const reference = new EmbeddingMirror(k);
    for (let trial = 0; trial < 30; trial++) {
      const rows = Array.from({ length: 9 }, () => pool.alloc());
      const sketches = Float32Array.from({ length: rows.length * k }, () => r.normal());
      pool.stage(sketches, rows.length);
      rows.forEach((row, i) => pool.add(row, i, 0.5));
      for (const [i, row] of rows.entries()) {
        const delta = rowOf(pool, row);
        const base = Float32Array.from({ length: k }, () => r.normal() * 10 ** (r.int(5) - 2));
        pool.scratch(row).set(base);
        const max = pool.fold(row);
        const expected = Float32Array.from(base, (b, d) => Math.fround(b + (delta[d] as number)));
        expect(sameFloats(pool.scratch(row), expected)).toBe(true);
        expect(max).toBe(Math.max(...expected.map(Math.abs)));
        expect(rowOf(pool, row).every((v) => v === 0)).toBe(true);
        const scale = max / 127;
        mirror.setQuantized(mirror.add(`s${trial}-${i}`), scale, pool.quantize(row, 1 / scale));
        reference.set(reference.add(`s${trial}-${i}`), expected);
      }
      // The freed rows come back (zeroed) before any new one.
      const again = rows.map(() => pool.alloc());
      expect(new Set(again)).toEqual(new Set(rows));
      for (const row of again) expect(rowOf(pool, row).every((v) => v === 0)).toBe(true);
      for (const row of again) pool.release(row);
    }
    // No row: the scratch as it is. An all-zero record: scale 0, a zero mirror row.
    pool.scratch(-1).fill(0);
    expect(pool.fold(-1)).toBe(0);
    mirror.setQuantized(mirror.add('zero'), 0, undefined);
    reference.set(reference.add('zero'), new Float32Array(k));
    const got = [...mirror.blocksView()];
    const want = [...reference.blocksView()];
    expect(got.length).toBe(want.length);
    got.forEach((b, i) => {
      const w = want[i] as (typeof want)[number];
      expect(b.ids).toEqual(w.ids);
      expect(
        Buffer.from(b.rows.buffer, b.rows.byteOffset, b.rows.byteLength).equals(
          Buffer.from(w.rows.buffer, w.rows.byteOffset, w.rows.byteLength),
        ),
      ).toBe(true);
      expect(sameFloats(b.scales, w.scales)).toBe(true);
    });
  });

  it('quantises to floor(x · inv + 128.5) − 128 in float64, within half a step of x', () => {
    const k = 1027;
    const r = rng(11);
    const pool = new DeltaPool(k);
    const g = Float32Array.from({ length: k }, () => Math.max(-0.99, Math.min(0.99, r.normal() * 0.3)));
    // max|g| = 1, so x = 127 g: exact halves (±63.5) land on the rounding boundary.
    g[0] = 0.5;
    g[1] = -0.5;
    g[2] = 1;
    pool.scratch(-1).set(g);
    const max = pool.fold(-1);
    expect(max).toBe(1);
    const inv = 1 / (max / 127);
    const q = pool.quantize(-1, inv);
    for (let d = 0; d < k; d++) {
      const x = (g[d] as number) * inv;
      expect(q[d]).toBe(Math.floor(x + 128.5) - 128);
      expect(Math.abs((q[d] as number) - x)).toBeLessThanOrEqual(0.5);
    }
  });
  for (const k of [1, 6, 131, 512]) {
    it(`dots each row with a query in float64 (<row, q> and Σ|row · q|), across shards, k = ${k}`, () => {
      const r = rng(100 + k);
      const pool = new DeltaPool(k, { blockBytes: 4 * k * 3, shardRowBytes: 4 * k * 7 });
      const rows = Array.from({ length: 20 }, () => pool.alloc());
      const sketches = Float32Array.from({ length: rows.length * k }, () => r.normal() * 10 ** (r.int(7) - 3));
      pool.stage(sketches, rows.length);
      rows.forEach((row, i) => pool.add(row, i, 0.25));
      const out = new Float64Array(2);
      for (let trial = 0; trial < 3; trial++) {
        const q = Float32Array.from({ length: k }, () => r.normal());
        pool.setQuery(q);
        // A shard made after the query was set gets it at the next setQuery.
        if (trial === 1) rows.push(...Array.from({ length: 9 }, () => pool.alloc()));
        if (trial === 1) pool.setQuery(q);
        for (const row of rows) {
          const g = rowOf(pool, row);
          let dot = 0;
          let abs = 0;
          for (let d = 0; d < k; d++) {
            dot += (g[d] as number) * (q[d] as number);
            abs += Math.abs((g[d] as number) * (q[d] as number));
          }
          pool.dot(row, out);
          // The products are exact in float64; only the order of the sums differs.
          expect(Math.abs((out[0] as number) - dot)).toBeLessThanOrEqual(abs * k * 2.3e-16);
          expect(Math.abs((out[1] as number) - abs)).toBeLessThanOrEqual(abs * k * 2.3e-16);
        }
      }
    });
  }
});
