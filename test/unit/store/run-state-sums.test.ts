import { describe, expect, it } from 'vitest';
import { RunState, SUMS_SLAB_LENGTH, type RunInfo } from '../../../daemon/store/run-state.js';
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

describe("a run's per-sample sums rows", () => {
  it('keeps every sample its own values while rows are added, grown, replaced and span several slabs', () => {
    const run = new RunState(info);
    const r = rng(3);
    // The reference: plain arrays per sample, changed in step with the rows.
    const expected = new Map<string, number[]>();
    // Enough samples for several slabs (up to 40 sums a row, 131,072 sums a slab).
    const ids = Array.from({ length: 6_000 }, (_, i) => `s${i}`);
    for (let round = 0; round < 4; round++) {
      for (const q of Array.from({ length: 10 }, (_, j) => `q${round}-${j}`)) run.queryColumn(q);
      for (const id of ids) {
        const s = run.getOrCreateSample(id);
        // A new sample starts with a zero for each of the run's queries.
        const want = expected.get(id) ?? new Array<number>(s.nq).fill(0);
        const pick = r.int(3);
        if (pick === 0) {
          // Grown to the run's query count, then some sums changed through the slab.
          run.growSums(s, run.queryIds.length);
          while (want.length < run.queryIds.length) want.push(0);
          const j = r.int(s.nq);
          const slab = run.sumsSlabs[Math.floor(s.sumsAt / SUMS_SLAB_LENGTH)] as Float64Array;
          const at = (s.sumsAt % SUMS_SLAB_LENGTH) + j;
          slab[at] = (slab[at] as number) + 1.5;
          want[j] = (want[j] as number) + 1.5;
        } else if (pick === 1) {
          // Replaced outright, sometimes shorter.
          const values = Array.from({ length: r.int(run.queryIds.length + 1) }, () => r.normal());
          run.setSums(s, values);
          want.length = 0;
          want.push(...values);
        }
        expected.set(id, want);
      }
    }
    expect(run.sumsSlabs.length).toBeGreaterThan(2);
    for (const id of ids) {
      const s = run.samples.get(id)!;
      const want = expected.get(id)!;
      expect(s.nq).toBe(want.length);
      expect(Array.from(run.sumsOf(s))).toEqual(want);
      for (let j = 0; j < run.queryIds.length; j++) expect(run.sumAt(s, j)).toBe(want[j] ?? 0);
    }
  });

  it('gives a row longer than a slab a slab of its own, without disturbing the rows around it', () => {
    const run = new RunState(info);
    const small = run.getOrCreateSample('small');
    run.setSums(small, [1, 2, 3]);
    const big = run.getOrCreateSample('big');
    const values = Float64Array.from({ length: SUMS_SLAB_LENGTH + 5 }, (_, i) => i * 0.25);
    run.setSums(big, values);
    const after = run.getOrCreateSample('after');
    run.setSums(after, [7, 8]);
    expect(run.sumsOf(big)).toEqual(values);
    expect(Array.from(run.sumsOf(small))).toEqual([1, 2, 3]);
    expect(Array.from(run.sumsOf(after))).toEqual([7, 8]);
    run.growSums(small, 6);
    expect(Array.from(run.sumsOf(small))).toEqual([1, 2, 3, 0, 0, 0]);
    expect(run.sumAt(big, SUMS_SLAB_LENGTH + 4)).toBe((SUMS_SLAB_LENGTH + 4) * 0.25);
  });
});
