import { describe, expect, it } from 'vitest';
import { decodeSample, recordLayout, sampleRecordBytes, smallInt, writeSampleRecord } from '../../../daemon/store/codec.js';
import { HISTORY_TRAILER_BYTES } from '../../../daemon/store/history.js';
import { RunState, type RunInfo } from '../../../daemon/store/run-state.js';

const info: RunInfo = {
  id: 'r',
  dim: 3,
  dtype: 'float32',
  projection: { kind: 'gaussian', seed: '1', dim: 3, fingerprint: 'f' },
  scoreMode: 'dot',
  worldSize: 1,
  createdAtMs: 0,
};

describe('sample record codec', () => {
  it('keeps every value smallInt is given', () => {
    for (const x of [0, 1, -1, 7, 2 ** 31 - 1, -(2 ** 31), 2 ** 31, 2 ** 40 + 3, 0.5, -2.25, 1e300, Number.MAX_SAFE_INTEGER])
      expect(smallInt(x)).toBe(x);
  });

  it('writes a record and decodes the same evidence into the run, reusing a row of the same length', () => {
    const run = new RunState(info);
    for (const q of ['a', 'b', 'c']) run.queryColumn(q);
    const s = run.getOrCreateSample('clip');
    s.seen = 5;
    s.lastStep = 2 ** 33 + 1;
    s.weight = 0.25;
    run.setSums(s, [0.5, -1.5, 3e-9]);
    s.total = 0.5 - 1.5 + 3e-9;
    const buf = Buffer.alloc(sampleRecordBytes(3, 3));
    writeSampleRecord(buf, run, s, 3, 42).set([1, 2, 3]);

    const fresh = decodeSample(run, 'clip', buf);
    expect(fresh.lsn).toBe(42);
    const d = fresh.sample;
    expect([d.seen, d.lastStep, d.weight, d.total, d.lsn, d.flushedLsn, d.nq]).toEqual([5, 2 ** 33 + 1, 0.25, s.total, 42, 42, 3]);
    expect(Array.from(run.sumsOf(d))).toEqual([0.5, -1.5, 3e-9]);
    expect(d.sumsAt).not.toBe(s.sumsAt);

    // Decoded over a known sample holding as many sums: its row is reused, the values replaced.
    run.setSums(s, [9, 9, 9]);
    const again = decodeSample(run, 'clip', buf, s);
    expect(again.sample.sumsAt).toBe(s.sumsAt);
    expect(Array.from(run.sumsOf(again.sample))).toEqual([0.5, -1.5, 3e-9]);
    // A known sample with fewer sums keeps its own row.
    const short = run.getOrCreateSample('short');
    run.setSums(short, [4]);
    const other = decodeSample(run, 'clip', buf, short);
    expect(other.sample.sumsAt).not.toBe(short.sumsAt);
    expect(Array.from(run.sumsOf(short))).toEqual([4]);
  });
});

describe('record layout from length', () => {
  it('tells a layout 4 record (history trailer) from a layout 3 one by its length alone', () => {
    for (const k of [3, 8, 512])
      for (const nq of [0, 1, 5, 64]) {
        const v3 = 48 + 8 * nq + 4 * k;
        expect(recordLayout(v3, k)).toEqual({ nq, historyAt: -1 });
        expect(recordLayout(sampleRecordBytes(nq, k), k)).toEqual({ nq, historyAt: v3 });
        expect(sampleRecordBytes(nq, k)).toBe(v3 + HISTORY_TRAILER_BYTES);
      }
    expect(() => recordLayout(48 + 4 * 8 + 3, 8)).toThrow(/does not hold/);
  });
});
