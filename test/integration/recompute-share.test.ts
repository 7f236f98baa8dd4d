/**
 * A weights recompute passes over every sample of its run, so on a large run it is a large share
 * of the main thread. `weights.maxRecomputeShare` bounds it: the next recompute starts no sooner
 * than the last one's busy time over the share after it began. Real store in a temp dir, a run of
 * 60,000 samples, commits announced every 5 ms to a service with a share of 0.02.
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

/** Notes when each recompute starts, and its busy time and the gap to the next that it leaves once done. */
class TimedWeighting extends WeightingService {
  readonly starts: number[] = [];
  readonly gaps: number[] = [];
  readonly busy: number[] = [];
  /** Off once the commits stop: the drain's own recompute (flushAll) does not wait for a gap. */
  recording = true;

  override recompute(runId: string): Promise<void> {
    if (!this.recording) return super.recompute(runId);
    this.starts.push(performance.now());
    const done = super.recompute(runId);
    void done.then(() => {
      this.busy.push(this.recomputeBusyMs(runId));
      this.gaps.push(this.recomputeGapMs(runId));
    });
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
 * started (at most 45 s: a recompute busy for d ms leaves 50·d ms without one, and a loaded machine
 * makes d a few hundred ms), then waits for the last recompute.
 */
async function drive(store: Store, share: number, ms: number, minStarts = 0): Promise<TimedWeighting> {
  const w = new TimedWeighting(store, options(INTERVAL_MS, share), createLogger('warn'));
  const t0 = performance.now();
  const end = t0 + ms;
  while (performance.now() < end || (w.starts.length < minStarts && performance.now() < t0 + 45_000)) {
    w.committed('r', false);
    await new Promise((r) => setTimeout(r, 5));
  }
  w.recording = false;
  w.close();
  await w.flushAll();
  return w;
}

describe('weights.maxRecomputeShare', () => {
  it('spaces the recomputes of a large run by their busy time over the share', async () => {
    const store = await filledRun('motive-recompute-share-', SAMPLES);
    try {
      // Share 0.02: a recompute busy for d ms is followed by 50·d ms without one. Each recompute's
      // own busy time is the reference, so a loaded machine (slower passes) changes nothing.
      const small = await drive(store, 0.02, 2000, 3);
      expect(small.starts.length).toBeGreaterThanOrEqual(2);
      small.busy.forEach((d, i) => {
        expect(d).toBeGreaterThan(0);
        expect(small.gaps[i]).toBeCloseTo(Math.max(INTERVAL_MS, d / 0.02), 6);
      });
      // A pass over 60,000 samples keeps the main thread for more than INTERVAL_MS / 50.
      expect(small.gaps.every((g) => g > INTERVAL_MS)).toBe(true);
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
