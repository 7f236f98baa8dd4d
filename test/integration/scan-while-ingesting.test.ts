/**
 * A scan (`POST /attribute`) between batches sees every batch committed before it: the int8
 * mirror holds the records' G(z) and the scan adds each dirty sample's pending change from the
 * delta pool, including samples changed again after a scan and samples a flush wrote meanwhile.
 * Compared with a float64 reference of G(z) = Σ lr · x / |x| (the default cosine score mode)
 * written here. A dirty sample's mirror row is requantised from its record's int8 row plus the
 * change: the last test builds a query that the base row's rounding misleads, so a scan that left
 * that rounding out of the row's bound ranks wrongly.
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

  // Rows a scan requantises at most: the default, none (every change scored beside the mirror)
  // and two (both ways in one scan).
  for (const budget of [4096, 0, 2]) {
    it(`ranks exactly as the float64 reference after every batch, with flushes in between (${budget} rows requantised a scan)`, async () => {
      daemon.store.mirrorRefreshRows = budget;
      const c = new MotiveClient({
        dtype: 'float32',
        address: `127.0.0.1:${daemon.grpcPort}`,
        runId: `scan-${budget}`,
        dim: K,
        applyWeights: false,
      });
      await c.connect();
      const r = rng(3);
      const g = new Map<string, Float64Array>();
      const url = `http://127.0.0.1:${daemon.httpPort}/v1/runs/scan-${budget}/attribute`;
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
  }

  it("keeps a requantised row's base rounding in its bound: a query aligned against it still ranks exactly", async () => {
    daemon.store.mirrorRefreshRows = 4096;
    const k = 64;
    const c = new MotiveClient({ dtype: 'float32', address: `127.0.0.1:${daemon.grpcPort}`, runId: 'bound', dim: k, applyWeights: false });
    await c.connect();
    const r = rng(11);
    const x1 = Float32Array.from({ length: k }, () => r.normal());
    // A's record: x1 / |x1|, written by a flush, so its mirror row is that record quantised.
    await c.send(0, 1, ['a'], x1);
    await c.flush();
    await daemon.store.flush();
    const n1 = Math.hypot(...x1);
    const u1 = Float64Array.from(x1, (v) => Math.fround(v / n1));
    // The int8 rounding of the record's row, and a query against it: the base row underrates A by Σ|e|.
    const scale = Math.fround(Math.max(...u1.map(Math.abs)) / 127);
    const e = u1.map((v) => (Math.floor(v / scale + 128.5) - 128) * scale - v);
    const q = Array.from(e, (v) => (v > 0 ? -1 : 1));
    const qn = Math.sqrt(k);
    // A's change nearly cancels the record: the requantised row's own scale is small beside the base's.
    const x2 = Float32Array.from(x1, (v) => -v + 0.02 * r.normal());
    await c.send(1, 1, ['a'], x2);
    await c.flush();
    const n2 = Math.hypot(...x2);
    const ga = u1.map((v, d) => v + Math.fround((x2[d] as number) / n2));
    const scoreA = ga.reduce((t, v, d) => t + v * ((q[d] as number) / qn), 0);
    // B scores a little under A (a sketch along ±q, so its own rounding is tiny), above what A's
    // base row makes of it.
    const gap = e.reduce((t, v) => t + Math.abs(v), 0) / qn;
    const want = scoreA - gap / 4;
    const xb = Float32Array.from(q, (v) => (want >= 0 ? v : -v));
    await c.send(2, Math.abs(want), ['b'], xb);
    await c.flush();
    c.close();
    const res = await fetch(`http://127.0.0.1:${daemon.httpPort}/v1/runs/bound/attribute`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ sketch: q, limit: 1 }),
    });
    expect(res.status).toBe(200);
    const got = ((await res.json()) as { samples: Array<{ id: string; score: number }> }).samples;
    expect(got.map((x) => x.id)).toEqual(['a']);
    expect(Math.abs(got[0]!.score - scoreA)).toBeLessThan(1e-5);
  });
});
