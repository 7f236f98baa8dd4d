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
  /** Off once the commits stop: the drain's own recompute (flushAll) does not wait for a gap. */
  recording = true;

  override recompute(runId: string): Promise<void> {
    if (!this.recording) return super.recompute(runId);
    this.starts.push(performance.now());
    const done = super.recompute(runId);
    void done.then(() => this.gaps.push(this.recomputeGapMs(runId)));
    return done;
  }
}

/** A store in a temp dir holding run `r` with `n` samples of two query sums each. */
async function filledRun(prefix: string, n: number): Promise<Store> {
  const { store, run } = await openStoreRun(prefix, dirs, K, 'dot');
  for (const q of ['a', 'b']) run.queryColumn(q);
  await store.commit((tx) => tx.putRun(run));
  const entries = [];
  for (let i = 0; i < n; i++) {
    const s = run.getOrCreateSample(`clip-${i}`);
    s.seen = 1 + (i % 3);
    run.setSums(s, [Math.sin(i), Math.cos(i)]);
    s.total = Math.sin(i) + Math.cos(i);
    entries.push({ sample: s });
  }
  await store.writeSamples('r', entries);
  return store;
}

function options(intervalMs: number, share: number): WeightingOptions {
  return { policy: 'downweight', minSeen: 1, beta: 1, wMin: 0.05, quarantineZ: -4, minDelta: 0.01, intervalMs, maxRecomputeShare: share };
}

/**
 * Announces a commit of run `r` every 5 ms for at least `ms` and until `minStarts` recomputes have
 * started (at most 20 s), then waits for the last recompute; `ms` becomes the time it drove.
 */
async function drive(store: Store, share: number, ms: number, minStarts = 0): Promise<{ w: TimedWeighting; ms: number }> {
  const w = new TimedWeighting(store, options(INTERVAL_MS, share), createLogger('warn'));
  const t0 = performance.now();
  const end = t0 + ms;
  while (performance.now() < end || (w.starts.length < minStarts && performance.now() < t0 + 20_000)) {
    w.committed('r', false);
    await new Promise((r) => setTimeout(r, 5));
  }
  const drove = performance.now() - t0;
  w.recording = false;
  w.close();
  await w.flushAll();
  return { w, ms: drove };
}

describe('weights.maxRecomputeShare', () => {
  it('spaces the recomputes of a large run by their busy time over the share', async () => {
    const store = await filledRun('motive-recompute-share-', SAMPLES);
    try {
      // Share 1: every INTERVAL_MS, or back to back when a pass takes longer.
      const whole = await drive(store, 1, 1000);
      // Share 0.02: a recompute busy for d ms is followed by 50·d ms without one.
      const { w: small, ms } = await drive(store, 0.02, 2000, 3);
      expect(small.gaps.every((g) => g > INTERVAL_MS)).toBe(true);
      expect(small.starts.length).toBeGreaterThanOrEqual(2);
      // Per second, at most a third as many (50× the busy time against at most the busy time plus
      // INTERVAL_MS, whatever the machine's speed).
      expect(whole.w.starts.length / whole.ms).toBeGreaterThanOrEqual((3 * small.starts.length) / ms);
      // Each start after the first waited for the gap the recompute before it left (Date.now's
      // millisecond steps aside).
      for (let i = 1; i < small.starts.length; i++)
        expect((small.starts[i] as number) - (small.starts[i - 1] as number)).toBeGreaterThanOrEqual((small.gaps[i - 1] as number) - 2);
    } finally {
      await store.close();
    }
  }, 60_000);

  it('runs, on flushAll, the recompute a commit asked for while another ran', async () => {
    const store = await filledRun('motive-recompute-again-', 1000);
    try {
      const w = new TimedWeighting(store, options(60_000, 1), createLogger('warn'));
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
