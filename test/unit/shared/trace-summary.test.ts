/**
 * The Ack-path trace summary (daemon/shared/trace-summary.ts) against a trace written by hand, whose every
 * figure is worked out here independently.
 */
import { describe, expect, it } from 'vitest';
import { overlapMs, summariseAckTrace } from '../../../daemon/shared/trace-summary.js';

describe('Ack-path trace summary', () => {
  it('measures overlap as the length of the spans inside the window', () => {
    const spans: Array<[number, number]> = [
      [0, 2],
      [5, 9],
      [10, 11],
      [20, 30],
    ];
    // [1, 10.5]: 1 of the first, all 4 of the second, 0.5 of the third, none of the fourth.
    expect(overlapMs(spans, 1, 10.5)).toBeCloseTo(5.5, 12);
    expect(overlapMs(spans, 11, 20)).toBe(0);
  });

  it('splits each Ack into its steps, leaves out the warm-up, and averages the median and slowest 1 %', () => {
    const lines: string[] = [];
    // 201 Acks, one every 10 ms from t = 1000; Ack i takes 5 + i/100 ms in all, except the last,
    // which takes 60 ms. Steps: decode 0.5, wait 1, score 2, queued 0.25, commit = the rest − 0.75, send 0.75.
    const total = (i: number): number => (i === 200 ? 60 : 5 + i / 100);
    for (let i = 0; i <= 200; i++) {
      const r = 1000 + 10 * i;
      const t = total(i);
      const submitted = r + 0.5;
      const taken = submitted + 1;
      const prepared = taken + 2;
      const writing = prepared + 0.25;
      const durable = r + t - 0.75;
      lines.push(`ack 0 ${i + 1} ${r} ${submitted} ${r + t}`);
      lines.push(`batch 0 ${i + 1} ${submitted} ${taken} ${prepared} ${writing} ${durable}`);
    }
    // Acks read in the first 50 ms (i = 0..4) are warm-up; a batch with no Ack is ignored.
    lines.push('batch 0 999 1 2 3 4 5');
    // A flusher slice over the last Ack's commit (it spans [3000, 3060]), a GC pause half inside it,
    // a recompute between two Acks of the median.
    lines.push('flush 3010 3030 64', 'gc 3050 3070', 'recompute 1999 2001');
    const s = summariseAckTrace(lines.join('\n'), 50);
    expect(s.acks).toBe(196); // i = 5..200
    const [median, slowest] = s.groups;
    // Sorted by Ack time, the counted Acks are i = 5..200 in order; p40–p60 is positions
    // floor(0.4·196) = 78 to ceil(0.6·196) = 118 exclusive: i = 83..122.
    const ids = Array.from({ length: 40 }, (_, j) => 83 + j);
    const meanTotal = ids.reduce((a, i) => a + total(i), 0) / ids.length;
    expect(median!.acks).toBe(40);
    expect(median!.ackMs).toBeCloseTo(meanTotal, 9);
    expect(median!.steps).toMatchObject({ decode: 0.5, wait: 1, score: 2, queued: 0.25, send: 0.75 });
    expect(median!.steps.commit).toBeCloseTo(meanTotal - 4.5, 9);
    // The recompute [1999, 2001] touches Ack i = 100 ([2000, 2006]) for 1 ms: 1/40 per Ack.
    expect(median!.overlap.recompute).toBeCloseTo(1 / 40, 9);
    expect(median!.overlap.flusher).toBe(0);
    // Slowest 1 % of 196: ceil(1.96) = 2 Acks, i = 199 (6.99 ms) and i = 200 (60 ms).
    expect(slowest!.acks).toBe(2);
    expect(slowest!.ackMs).toBeCloseTo((6.99 + 60) / 2, 9);
    expect(slowest!.overlap.flusher).toBeCloseTo(20 / 2, 9);
    expect(slowest!.overlap.gc).toBeCloseTo(10 / 2, 9);
    expect(slowest!.overlap['flush writes']).toBe(0);
    expect(s.p50Ms).toBeCloseTo(total(5 + 97), 9);
    expect(s.p99Ms).toBeCloseTo(total(5 + 193), 9);
  });
});
