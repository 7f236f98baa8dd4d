/**
 * A SIGKILL between a commit and the weight recompute it asked for: the restarted daemon must
 * recompute the recovered run's weights, since the trainers' resends of what was committed are
 * duplicates that ask for none. Checked against the fused signal of the float64 reference
 * (docs/method.md) over the final scores.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { MotiveClient } from '../../trainer-hooks/ts/index.js';
import { CrashableDaemon } from '../helpers/fault-harness.js';
import { loadConfig } from '../../daemon/config/index.js';
import { refSignal, type RefOptions } from '../helpers/fused-reference.js';
import { ReferenceModel } from '../helpers/reference.js';

const K = 16;
/** The daemon's default weighting, read from its configuration (CONFIG below changes none of these). */
const D = loadConfig({ env: {} }).weights;
const OPTIONS: RefOptions = {
  policy: D.policy,
  minSeen: D.minSeen,
  beta: D.beta,
  wMin: D.wMin,
  quarantineZ: D.quarantineZ,
  signal: D.signal,
  checkWeight: D.checkWeight,
  checkFloorZ: D.checkFloorZ,
};
const MIN_DELTA = 0.01;
/**
 * The query set's commit starts the run's first recompute at once; batch 1's waits the interval.
 * Batch 2 follows that second recompute, and the kill comes long before its own.
 */
const CONFIG = { weights: { minSeen: 1, intervalMs: 5000, batchUpdates: false } };

interface WeightsJson {
  version: number;
  weights: Record<string, number>;
}

describe('a SIGKILL before the recompute a commit asked for', () => {
  let daemon: CrashableDaemon | undefined;
  afterAll(async () => {
    await daemon?.dispose();
  });

  it('is made up by a recompute of every recovered run at start-up', async () => {
    daemon = await CrashableDaemon.create();
    await daemon.start(0, CONFIG);
    const base = daemon.baseUrl;
    const weights = async (): Promise<WeightsJson> => (await (await fetch(`${base}/v1/runs/w/weights`)).json()) as WeightsJson;
    const ref = new ReferenceModel(K);
    const client = new MotiveClient({
      dtype: 'float32',
      address: daemon.address,
      runId: 'w',
      dim: K,
      reconnectDelayMs: 50,
      maxReconnectDelayMs: 50,
    });
    await client.connect();
    const q = Float32Array.from({ length: K }, (_, i) => (i === 0 ? 1 : 0));
    client.setQueries(1, 0, ['q0'], q);
    ref.addQuerySet(1, 0, ['q0'], [...q]);
    // Batch 1: twenty samples with spread scores.
    const row = (x: number): number[] => Array.from({ length: K }, (_, i) => (i === 0 ? x : i === 1 ? 1 : 0));
    const send = async (seq: number, ids: string[], xs: number[]): Promise<void> => {
      const values = xs.flatMap(row);
      await client.send(seq - 1, 1e-2, ids, Float32Array.from(values));
      ref.addBatch(0, seq, seq - 1, 1e-2, ids, values);
    };
    const first = Array.from({ length: 20 }, (_, i) => `s${i}`);
    await send(
      1,
      first,
      first.map((_, i) => (i - 10) / 4),
    );
    await client.flush(30_000);
    const deadline = Date.now() + 20_000;
    while ((await weights()).version < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const v1 = await weights();
    expect(v1.version).toBe(1);
    // Batch 2: twenty new samples far above the others move the median and scale, so the first
    // twenty samples' weights change; their recompute waits intervalMs, past the kill.
    expect(Object.values(v1.weights).filter((w) => w < 1).length).toBeGreaterThan(5);
    const second = Array.from({ length: 20 }, (_, i) => `t${i}`);
    await send(
      2,
      second,
      second.map((_, i) => 4 + i / 8),
    );
    await client.flush(30_000);
    client.close();
    const want = refSignal(
      [...ref.samples.keys()].map((id) => ({ score: ref.score(id), seen: ref.samples.get(id)!.seen })),
      OPTIONS,
    );
    const ids = [...ref.samples.keys()];
    const stale = (w: WeightsJson): string[] =>
      ids.filter((id, i) => !(Math.abs((w.weights[id] ?? 1) - want[i]!.weight) <= MIN_DELTA + 1e-4));
    // The test bites: before the kill the stored weights are the first recompute's, not the final ones.
    const before = await weights();
    expect(before.version).toBe(1);
    expect(stale(before).length).toBeGreaterThan(5);

    await daemon.stop('SIGKILL');
    await daemon.start(0, CONFIG);
    const until = Date.now() + 20_000;
    let after = await weights();
    while (after.version < 2 && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 50));
      after = await weights();
    }
    expect(after.version).toBe(2);
    expect(stale(after)).toEqual([]);
  }, 90_000);
});
