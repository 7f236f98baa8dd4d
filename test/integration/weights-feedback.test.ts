/**
 * Acceptance: a planted set of samples whose sketches oppose the queries ends up with the lowest
 * scores and weights < 1, and the attached client receives those weights as WeightUpdates.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MotiveClient, type WeightUpdateInfo } from '../../trainer-hooks/ts/index.js';
import { rng } from '../helpers/reference.js';
import { startTestDaemon } from '../helpers/daemon.js';

const K = 256;
const M = 6;

describe('planted harmful samples', () => {
  let daemon: Awaited<ReturnType<typeof startTestDaemon>>;
  const updates: WeightUpdateInfo[] = [];
  let client: MotiveClient;
  const harmful = Array.from({ length: 10 }, (_, i) => `bad-${i}`);
  const clean = Array.from({ length: 90 }, (_, i) => `ok-${i}`);

  beforeAll(async () => {
    daemon = await startTestDaemon({ weights: { minSeen: 2, intervalMs: 50, beta: 1, wMin: 0.05 } });
    const r = rng(3);
    const queries = Float32Array.from({ length: M * K }, () => r.normal());
    const mean = new Float64Array(K);
    for (let j = 0; j < M; j++) for (let d = 0; d < K; d++) mean[d] = (mean[d] as number) + (queries[j * K + d] as number) / M;
    client = new MotiveClient({ dtype: 'float32', address: `127.0.0.1:${daemon.grpcPort}`, runId: 'planted', dim: K, applyWeights: true });
    client.on('weights', (u: WeightUpdateInfo) => updates.push(u));
    await client.connect();
    client.setQueries(
      1,
      0,
      Array.from({ length: M }, (_, j) => `motion-${j}`),
      queries,
    );
    const all = [...harmful, ...clean];
    for (let step = 0; step < 30; step++) {
      const ids = Array.from({ length: 20 }, () => all[r.int(all.length)] as string);
      const sk = new Float32Array(ids.length * K);
      ids.forEach((id, i) => {
        // Clean clips: noise plus a small pull toward the queries; harmful: pushed against them.
        const sign = id.startsWith('bad-') ? -1.5 : 0.3;
        for (let d = 0; d < K; d++) sk[i * K + d] = r.normal() * 0.05 + sign * (mean[d] as number);
      });
      await client.send(step, 1e-3, ids, sk);
    }
    await client.flush();
    await daemon.weighting.flushAll();
    for (let i = 0; i < 50 && !updates.some((u) => !u.full && u.sampleIds.length > 0); i++) await new Promise((res) => setTimeout(res, 20));
  });

  afterAll(async () => {
    client.close();
    await daemon.cleanup();
  });

  it('ranks the planted samples most harmful with weights below 1', async () => {
    const res = await fetch(`http://127.0.0.1:${daemon.httpPort}/v1/runs/planted/samples?order=harmful&limit=100`);
    const { samples } = (await res.json()) as { samples: Array<{ id: string; score: number; weight: number; seen: number }> };
    const seenHarmful = samples.filter((s) => s.id.startsWith('bad-') && s.seen >= 2);
    expect(seenHarmful.length).toBeGreaterThan(5);
    const firstIds = samples.slice(0, seenHarmful.length).map((s) => s.id);
    expect(new Set(firstIds)).toEqual(new Set(seenHarmful.map((s) => s.id)));
    for (const s of seenHarmful) {
      expect(s.score).toBeLessThan(0);
      expect(s.weight).toBeLessThan(1);
    }
    // Clean clips sit around the median: none is weighted as low as any planted one.
    const maxHarmful = Math.max(...seenHarmful.map((s) => s.weight));
    for (const s of samples.filter((x) => x.id.startsWith('ok-'))) expect(s.weight).toBeGreaterThan(maxHarmful);
  });

  it('pushes those weights to the attached client', () => {
    const first = updates[0];
    expect(first?.full).toBe(true);
    // After the attach snapshot more updates follow: deltas, or, where the stream fell behind under
    // load, the catch-up snapshot that replaces them (docs/wire.md)
    expect(updates.length).toBeGreaterThan(1);
    const live = client.weights();
    const seenHarmful = harmful.filter((id) => (daemon.store.run('planted')?.samples.get(id)?.seen ?? 0) >= 2);
    for (const id of seenHarmful) {
      expect(live.get(id)).toBeDefined();
      expect(live.get(id)!).toBeLessThan(1);
      expect(live.get(id)).toBeCloseTo(daemon.store.run('planted')!.samples.get(id)!.weight, 6);
    }
    expect(client.weightsVersion).toBe(daemon.store.run('planted')!.weightsVersion);
  });

  it('sends a full snapshot to a trainer that attaches later', async () => {
    const late = new MotiveClient({
      dtype: 'float32',
      address: `127.0.0.1:${daemon.grpcPort}`,
      runId: 'planted',
      dim: K,
      rank: 0,
      applyWeights: true,
    });
    const got = new Promise<WeightUpdateInfo>((resolve) => late.once('weights', resolve));
    await late.connect();
    const snap = await got;
    expect(snap.full).toBe(true);
    expect(new Map(snap.sampleIds.map((id, i) => [id, snap.weights[i]]))).toEqual(new Map(client.weights()));
    late.close();
  });
});
