/**
 * A scan (`POST /attribute`) between batches sees every batch committed before it: the int8
 * mirror holds the records' G(z) and the scan adds each dirty sample's pending change from the
 * delta pool, including samples changed again after a scan and samples a flush wrote meanwhile.
 * Compared with a float64 reference of G(z) = Σ lr · x / |x| (the default cosine score mode)
 * written here.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MotiveClient } from '../../trainer-hooks/ts/index.js';
import { startTestDaemon } from '../helpers/daemon.js';
import { rng } from '../helpers/reference.js';

const K = 16;
const POOL = 40;

describe('scans interleaved with ingest', () => {
  let daemon: Awaited<ReturnType<typeof startTestDaemon>>;
  beforeAll(async () => {
    // A long flush interval: samples stay dirty across scans unless a test flushes.
    daemon = await startTestDaemon({ store: { flushIntervalMs: 60_000 } });
  });
  afterAll(async () => {
    await daemon.cleanup();
  });

  it('ranks exactly as the float64 reference after every batch, with flushes in between', async () => {
    const c = new MotiveClient({ dtype: 'float32', address: `127.0.0.1:${daemon.grpcPort}`, runId: 'scan', dim: K, applyWeights: false });
    await c.connect();
    const r = rng(3);
    const g = new Map<string, Float64Array>();
    const url = `http://127.0.0.1:${daemon.httpPort}/v1/runs/scan/attribute`;
    for (let b = 0; b < 24; b++) {
      // Few ids per batch from a small pool: the same samples change again after a scan synced them.
      const ids = [...new Set(Array.from({ length: 6 }, () => `s${Math.floor(r.uniform() * POOL)}`))];
      const x = Float32Array.from({ length: ids.length * K }, () => r.normal());
      const lr = 0.01 * (1 + (b % 3));
      await c.send(b, lr, ids, x);
      await c.flush();
      ids.forEach((id, i) => {
        const row = g.get(id) ?? new Float64Array(K);
        // The run scores by cosine (the default): each sketch row counts normalised.
        const norm = Math.hypot(...x.subarray(i * K, (i + 1) * K));
        for (let d = 0; d < K; d++) row[d] = (row[d] as number) + Math.fround(lr) * ((x[i * K + d] as number) / norm);
        g.set(id, row);
      });
      if (b % 7 === 6) await daemon.store.flush();
      const q = Array.from({ length: K }, () => r.normal());
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ sketch: q, limit: 5 }),
      });
      expect(res.status).toBe(200);
      const got = ((await res.json()) as { samples: Array<{ id: string; score: number }> }).samples;
      const qn = Math.hypot(...q);
      const want = [...g.entries()]
        .map(([id, row]) => ({ id, score: row.reduce((s, v, d) => s + v * ((q[d] as number) / qn), 0) }))
        .sort((a, b2) => b2.score - a.score)
        .slice(0, 5);
      expect(
        got.map((x2) => x2.id),
        `after batch ${b}`,
      ).toEqual(want.map((x2) => x2.id));
      got.forEach((x2, i) => expect(Math.abs(x2.score - want[i]!.score)).toBeLessThan(1e-4 * (1 + Math.abs(want[i]!.score))));
    }
    c.close();
  });
});
