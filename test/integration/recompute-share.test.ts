/**
 * A weights recompute passes over every sample of its run, so on a large run it is a large share
 * of the main thread. `weights.maxRecomputeShare` bounds it: the next recompute starts no sooner
 * than the last one's busy time over the share after it began. Real store in a temp dir, a run of
 * 60,000 samples, commits announced every 5 ms to two services that differ only in the share.
 * While a recompute runs, the next waits for it to end, so its gap comes from its busy time.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../daemon/shared/index.js';
import type { Store } from '../../daemon/store/index.js';
import { WeightingService, type WeightingOptions } from '../../daemon/weighting/index.js';
import { openStoreRun } from '../helpers/store-run.js';

const K = 8;
const SAMPLES = 60_000;
const INTERVAL_MS = 10;
const dirs: Array<{ remove: () => void }> = [];
afterAll(() => dirs.forEach((d) => d.remove()));

/** Notes when each recompute starts, and the gap to the next that it leaves once done. */
class TimedWeighting extends WeightingService {
  readonly starts: number[] = [];
  readonly gaps: number[] = [];

  override recompute(runId: string): Promise<void> {
    this.starts.push(performance.now());
    const done = super.recompute(runId);
    void done.then(() => this.gaps.push(this.recomputeGapMs(runId)));
    return done;
  }
}

/** Announces a commit of run `r` every 5 ms for `ms`, then waits for the last recompute. */
async function drive(store: Store, share: number, ms: number): Promise<TimedWeighting> {
  const options: WeightingOptions = {
    policy: 'downweight',
    minSeen: 1,
    beta: 1,
    wMin: 0.05,
    quarantineZ: -4,
    minDelta: 0.01,
    intervalMs: INTERVAL_MS,
    maxRecomputeShare: share,
  };
  const w = new TimedWeighting(store, options, createLogger('warn'));
  const end = performance.now() + ms;
  while (performance.now() < end) {
    w.committed('r', false);
    await new Promise((r) => setTimeout(r, 5));
  }
  w.close();
  await w.flushAll();
  return w;
}

describe('weights.maxRecomputeShare', () => {
  it('spaces the recomputes of a large run by their busy time over the share', async () => {
    const { store, run } = await openStoreRun('motive-recompute-share-', dirs, K, 'dot');
    try {
      for (const q of ['a', 'b']) run.queryColumn(q);
      await store.commit((tx) => tx.putRun(run));
      const entries = [];
      for (let i = 0; i < SAMPLES; i++) {
        const s = run.getOrCreateSample(`clip-${i}`);
        s.seen = 1 + (i % 3);
        s.sums = Float64Array.from([Math.sin(i), Math.cos(i)]);
        s.total = (s.sums[0] as number) + (s.sums[1] as number);
        entries.push({ sample: s });
      }
      await store.writeSamples('r', entries);

      // Share 1: every INTERVAL_MS (the pass over 60,000 samples takes a few ms).
      const whole = await drive(store, 1, 1500);
      // Share 0.1: a recompute busy for d ms is followed by 10·d ms without one.
      const small = await drive(store, 0.1, 1500);
      expect(small.gaps.every((g) => g > INTERVAL_MS)).toBe(true);
      expect(small.starts.length).toBeGreaterThanOrEqual(2);
      expect(whole.starts.length).toBeGreaterThanOrEqual(3 * small.starts.length);
      // Each start after the first waited for the gap the recompute before it left (Date.now's
      // millisecond steps aside).
      for (let i = 1; i < small.starts.length; i++)
        expect((small.starts[i] as number) - (small.starts[i - 1] as number)).toBeGreaterThanOrEqual((small.gaps[i - 1] as number) - 2);
    } finally {
      await store.close();
    }
  }, 60_000);

  it('runs, on flushAll, the recompute a commit asked for while another ran', async () => {
    const { store, run } = await openStoreRun('motive-recompute-again-', dirs, K, 'dot');
    try {
      run.queryColumn('a');
      await store.commit((tx) => tx.putRun(run));
      const entries = [];
      for (let i = 0; i < 1000; i++) {
        const s = run.getOrCreateSample(`clip-${i}`);
        s.seen = 2;
        s.sums = Float64Array.from([Math.sin(i)]);
        s.total = s.sums[0] as number;
        entries.push({ sample: s });
      }
      await store.writeSamples('r', entries);
      const w = new TimedWeighting(
        store,
        {
          policy: 'downweight',
          minSeen: 1,
          beta: 1,
          wMin: 0.05,
          quarantineZ: -4,
          minDelta: 0.01,
          intervalMs: 60_000,
          maxRecomputeShare: 1,
        },
        createLogger('warn'),
      );
      const first = w.recompute('r');
      // A commit while it runs: the next recompute is asked for once it ends.
      w.committed('r', false);
      await w.flushAll();
      expect(w.starts).toHaveLength(2);
      await first;
      w.close();
    } finally {
      await store.close();
    }
  }, 30_000);
});
