/**
 * Negative control of the crash harness's comparisons (test/helpers/fault-harness.ts): on a run
 * streamed without any kill they report nothing against the true reference, and they report a
 * reference that counts one batch twice, and feature rows off by 1/64.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { MotiveClient } from '../../trainer-hooks/ts/index.js';
import { startTestDaemon } from '../helpers/daemon.js';
import {
  FEATURE_NAMES,
  TRIAL_DIM,
  compareEmbeddings,
  compareSignal,
  compareWithReference,
  featuresOf,
  halfExact,
  referenceOf,
  withFeatures,
} from '../helpers/fault-harness.js';
import { decodeBytes } from '../helpers/reference.js';
import { makeScenario, streamRank } from '../helpers/scenario.js';

describe('the crash harness comparisons (negative control)', () => {
  let cleanup: (() => Promise<void>) | undefined;
  afterAll(async () => {
    await cleanup?.();
  });

  it('pass on the true reference and report a batch counted twice and features off by 1/64', async () => {
    const d = await startTestDaemon({ weights: { minSeen: 1, intervalMs: 50 } });
    cleanup = d.cleanup;
    const base = `http://127.0.0.1:${d.httpPort}`;
    const scn = halfExact(makeScenario({ seed: 7, dim: TRIAL_DIM, queries: 4, ranks: 1, batches: 60, batchSize: 8, pool: 40 }));
    const c = new MotiveClient({
      dtype: 'float32',
      address: `127.0.0.1:${d.grpcPort}`,
      runId: 'nc',
      dim: TRIAL_DIM,
      featureNames: FEATURE_NAMES,
    });
    await c.connect();
    await streamRank(withFeatures(c), scn, 0);
    await c.flush(60_000);
    c.close();
    // The last recompute (every 50 ms) sees the final scores.
    await new Promise((r) => setTimeout(r, 1500));
    const ref = referenceOf(scn);
    expect(await compareWithReference(base, 'nc', scn, ref, 7)).toEqual([]);
    expect(await compareSignal(base, 'nc', ref)).toEqual([]);

    const twice = referenceOf(scn);
    const b = scn.ranks[0]![30]!;
    twice.addBatch(
      1,
      1,
      b.step,
      b.lr,
      b.ids,
      decodeBytes(Buffer.from(b.values.buffer, b.values.byteOffset, b.values.byteLength), 'float32'),
    );
    const counted = await compareWithReference(base, 'nc', scn, twice, 7);
    expect(counted.some((m) => / seen \d+ != \d+/.test(m))).toBe(true);
    expect((await compareEmbeddings(base, 'nc', TRIAL_DIM, twice)).some((m) => m.includes(': G(z)_'))).toBe(true);

    const off = await compareSignal(base, 'nc', ref, (id) => featuresOf(id).map((x) => x + 1 / 64));
    expect(off.some((m) => m.includes(': features '))).toBe(true);
  }, 120_000);
});
