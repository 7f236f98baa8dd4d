/**
 * The overflow check before a batch commits (daemon/influence/finite-check.ts) against the rule
 * of docs/wire.md written out plainly: every lr·x and lr·⟨x, q⟩ at most 2^96 in magnitude, and
 * every sum the batch makes (each S_j it adds to, the total) finite, computed here in float64 over
 * plain arrays, sum by sum. The cases sit at the edges: contributions at and just past 2^96, sums
 * near the largest float64, infinite and NaN sums (as an import can write them), queries the
 * sample holds no sum for yet.
 */
import { describe, expect, it } from 'vitest';
import { MAX_CONTRIBUTION, overflowReason } from '../../../daemon/influence/finite-check.js';
import { RunState, type RunInfo, type SampleState } from '../../../daemon/store/run-state.js';
import { rng } from '../../helpers/reference.js';

const info: RunInfo = {
  id: 'r',
  dim: 4,
  dtype: 'float32',
  projection: { kind: 'gaussian', seed: '1', dim: 4, fingerprint: 'f' },
  scoreMode: 'dot',
  worldSize: 1,
  createdAtMs: 0,
};

/** Whether the batch is refused, by the rule itself over plain arrays (undefined sums: a new sample). */
function refused(
  lr: number,
  sketches: Float32Array,
  products: Float32Array,
  columns: number[],
  sums: Array<number[] | undefined>,
): boolean {
  for (const x of sketches) if (!(Math.abs(lr * x) <= 2 ** 96)) return true;
  const m = columns.length;
  return sums.some((row, i) => {
    let total = row === undefined ? 0 : row.reduce((t, v) => t + v, 0);
    for (let j = 0; j < m; j++) {
      const c = lr * (products[i * m + j] as number);
      if (!(Math.abs(c) <= 2 ** 96)) return true;
      const col = columns[j] as number;
      const sum = (row !== undefined && col < row.length ? (row[col] as number) : 0) + c;
      total += c;
      if (!Number.isFinite(sum) || !Number.isFinite(total)) return true;
    }
    return false;
  });
}

describe('the overflow check before a batch commits', () => {
  it('refuses exactly the batches the rule refuses', () => {
    const r = rng(11);
    const edge = [
      0,
      1,
      -1,
      2 ** 96,
      -(2 ** 96),
      2 ** 97,
      Number.MAX_VALUE,
      -Number.MAX_VALUE,
      Number.MAX_VALUE / 2,
      Infinity,
      -Infinity,
      NaN,
    ];
    const pick = (): number => (r.int(4) === 0 ? (edge[r.int(edge.length)] as number) : r.normal() * 10 ** r.int(40));
    let refusals = 0;
    const cases = 3000;
    for (let t = 0; t < cases; t++) {
      const run = new RunState(info);
      const nq = 1 + r.int(4);
      for (let j = 0; j < nq; j++) run.queryColumn(`q${j}`);
      const n = 1 + r.int(3);
      const m = 1 + r.int(nq);
      // Columns the batch's query set maps to, some of them past what an old sample holds.
      const columns = Array.from({ length: m }, () => r.int(nq));
      const samples: Array<SampleState | undefined> = [];
      const sums: Array<number[] | undefined> = [];
      for (let i = 0; i < n; i++) {
        if (r.int(4) === 0) {
          samples.push(undefined);
          sums.push(undefined);
          continue;
        }
        const held = 1 + r.int(nq);
        const row = Array.from({ length: held }, () => (r.int(6) === 0 ? pick() : r.normal() * 10 ** r.int(300)));
        const s = run.getOrCreateSample(`s${i}`);
        run.setSums(s, row);
        // As imports set it: the sum of the sums.
        s.total = row.reduce((a, v) => a + v, 0);
        samples.push(s);
        sums.push(row);
      }
      const lr = r.int(5) === 0 ? 1000 : r.uniform();
      const scale = (): number => (r.int(8) === 0 ? (MAX_CONTRIBUTION / lr) * (0.5 + r.uniform()) : r.normal());
      const sketches = Float32Array.from({ length: n * info.dim }, scale);
      const products = Float32Array.from({ length: n * m }, scale);
      const want = refused(lr, sketches, products, columns, sums);
      const got = overflowReason(run, lr, sketches, products, Int32Array.from(columns), samples);
      expect(got !== undefined, `case ${t}: ${got ?? 'accepted'}`).toBe(want);
      if (want) refusals++;
    }
    // Both outcomes are met often.
    expect(refusals).toBeGreaterThan(cases / 10);
    expect(refusals).toBeLessThan((cases * 9) / 10);
  });
});
