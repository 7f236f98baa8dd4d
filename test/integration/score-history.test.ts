/**
 * Per-sample score history (docs/store.md, "Score history") against a plain float64 replay of the
 * same batches written in this test: every batch's Σ_j lr · p_j added in order, the weight in force
 * when the batch was applied, thinned by the documented rule. Real LMDB and record segments in a
 * temp dir; checked live, on a crash copy (some samples flushed, the rest only in the log) and
 * after a clean restart.
 */
import { cpSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { Store, type QuerySetRecord, type RunState } from '../../daemon/store/index.js';
import { tempDir } from '../helpers/daemon.js';
import { rng } from '../helpers/reference.js';
import { reweigh } from '../helpers/store-run.js';

const K = 8;
const M = 3;
const dirs: Array<{ remove: () => void }> = [];
afterAll(() => dirs.forEach((d) => d.remove()));

type Point = [i: number, step: number, total: number, weight: number];

/** The documented thinning, written out: the first, every stride-th (at most 31) and the newest. */
function thinned(all: readonly Point[]): Point[] {
  const n = all.length;
  let stride = 1;
  while (Math.ceil(n / stride) > 31) stride *= 2;
  return all.filter(([i]) => i % stride === 0 || i === n - 1);
}

function histories(store: Store, run: RunState): Map<string, Point[]> {
  const out = new Map<string, Point[]>();
  for (const id of [...run.samples.keys()].sort())
    out.set(
      id,
      store.sampleHistory('r', id)!.map((p) => [p.i, p.step, p.total, p.weight]),
    );
  return out;
}

describe('score history', () => {
  it('holds exactly the thinned float64 replay of the batches, live, after a crash and after a restart', async () => {
    const d = tempDir('motive-history-');
    dirs.push(d);
    const options = { dataDir: d.path, mapSizeBytes: 1 << 30, flushIntervalMs: 1e9, maxDirtySamples: 1e9, flushChunkSamples: 3 };
    const store = await Store.open(options);
    const run = await store.createRun({
      id: 'r',
      dim: K,
      dtype: 'float32',
      projection: { kind: 'gaussian', seed: '1', dim: K, fingerprint: 'fp' },
      scoreMode: 'dot',
      worldSize: 1,
      createdAtMs: 0,
    });
    const ids = ['q0', 'q1', 'q2'];
    const qs: QuerySetRecord = {
      version: 1,
      step: 0,
      ids,
      groups: [],
      columns: Int32Array.from(ids, (id) => run.queryColumn(id)),
      sketches: new Float32Array(M * K),
      receivedAtMs: 0,
    };
    await store.commit((tx) => {
      tx.putQuerySet('r', qs);
      tx.putRun(run);
    });
    run.addQuerySet(qs);

    const r = rng(11);
    // The reference: every point of every sample, unthinned, and the weights in force.
    const all = new Map<string, Point[]>();
    const totals = new Map<string, number>();
    const weights = new Map<string, number>();
    const clips = Array.from({ length: 6 }, (_, i) => `clip-${i}`);
    for (let b = 0; b < 160; b++) {
      const step = 10 * b + r.int(5);
      const lr = 0.001 * (1 + r.int(7));
      // 'hot' is in every batch (twice in some: each counts), so its history is thinned.
      const sampleIds = ['hot', ...(b % 5 === 0 ? ['hot'] : []), ...clips.filter(() => r.int(3) === 0)];
      const n = sampleIds.length;
      const products = Float32Array.from({ length: n * M }, () => r.normal());
      const sketches = Float32Array.from({ length: n * K }, () => r.normal());
      const lsn = await store.commit((tx) =>
        tx.appendBatch('r', {
          step,
          lr,
          sampleIds,
          wire: new Uint8Array(sketches.buffer.slice(0)),
          wireDtype: 'float32',
          querySet: qs,
          products,
        }),
      );
      store.applyBatch(run, { sampleIds, step, lr, sketches, querySet: qs, products }, lsn);
      sampleIds.forEach((id, i) => {
        let add = 0;
        for (let j = 0; j < M; j++) add += lr * (products[i * M + j] as number);
        const total = (totals.get(id) ?? 0) + add;
        totals.set(id, total);
        const points = all.get(id) ?? [];
        points.push([points.length, step, total, weights.get(id) ?? 1]);
        all.set(id, points);
      });
      if (b % 7 === 3) {
        const changed = ['hot', ...clips.filter(() => r.int(2) === 0)].filter((id) => run.samples.has(id));
        const ws = Float32Array.from(changed, () => 0.125 * (1 + r.int(15)));
        await reweigh(store, run, changed, ws);
        changed.forEach((id, i) => weights.set(id, ws[i] as number));
      }
      if (b % 41 === 40) await store.flush();
    }
    const expected = new Map([...all].sort(([a], [b]) => (a < b ? -1 : 1)).map(([id, points]) => [id, thinned(points)]));
    expect(all.get('hot')!.length).toBeGreaterThan(150);
    expect(expected.get('hot')!.length).toBeLessThanOrEqual(32);
    expect(expected.get('hot')![0]![0]).toBe(0);
    expect(histories(store, run)).toEqual(expected);

    // A crash copy: the last flush left later batches in the log only.
    expect(store.flushStats().dirtySamples).toBeGreaterThan(0);
    const crash = tempDir('motive-history-crash-');
    dirs.push(crash);
    cpSync(d.path, crash.path, { recursive: true });
    const copy = await Store.open({ ...options, dataDir: crash.path });
    expect(histories(copy, copy.run('r')!)).toEqual(expected);
    await copy.close();

    await store.close();
    const reopened = await Store.open(options);
    expect(reopened.flushStats().logEntries).toBe(0);
    expect(histories(reopened, reopened.run('r')!)).toEqual(expected);
    await reopened.close();
  }, 60_000);
});
