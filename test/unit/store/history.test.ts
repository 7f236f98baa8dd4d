/**
 * The score-history thinning (daemon/store/history.ts) against the documented rule written out
 * plainly: whatever the flushes in between, a trailer holds the first point, every stride-th
 * (at most 31) and the newest, with their values as added.
 */
import { describe, expect, it } from 'vitest';
import { HISTORY_TRAILER_BYTES, HistoryPending, appendToTrailer, readHistoryTrailer } from '../../../daemon/store/history.js';
import type { SampleState } from '../../../daemon/store/run-state.js';
import { rng } from '../../helpers/reference.js';

describe('score history thinning', () => {
  it('keeps the same points whether flushed after every batch, never, or at random', () => {
    const r = rng(3);
    for (const flushEvery of [1, 1000, 0]) {
      const sample = { seen: 0, total: 0 } as unknown as SampleState;
      const pending = new HistoryPending();
      const trailer = Buffer.alloc(HISTORY_TRAILER_BYTES);
      const all: Array<[number, number, number, number]> = [];
      for (let b = 0; b < 700; b++) {
        sample.seen++;
        sample.total += r.normal();
        const weight = Math.fround(r.uniform());
        pending.add(sample, 3 * b, weight);
        all.push([b, 3 * b, sample.total, weight]);
        const flush = flushEvery === 0 ? r.int(9) === 0 : b % flushEvery === flushEvery - 1;
        if (flush) appendToTrailer(trailer, 0, pending.take(sample), sample.seen);
        const n = all.length;
        let stride = 1;
        while (Math.ceil(n / stride) > 31) stride *= 2;
        const want = all.filter(([i]) => i % stride === 0 || i === n - 1);
        const copy = Buffer.from(trailer);
        appendToTrailer(
          copy,
          0,
          pending.peek(sample).flatMap((p) => [p.i, p.step, p.total, p.weight]),
          sample.seen,
        );
        const got = readHistoryTrailer(copy).map((p) => [p.i, p.step, p.total, p.weight]);
        expect(got).toEqual(want);
        expect(got.length).toBeLessThanOrEqual(32);
      }
    }
  });
});
