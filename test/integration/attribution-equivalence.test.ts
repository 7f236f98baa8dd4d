/**
 * Acceptance: for random sketches (k = 512, m = 8, 3 ranks, 200 batches, fp16 and fp32) every
 * sample's seen, per-query sums, score, votes, G(z) and the /attribute ranking equal a float64
 * reference written plainly in test/helpers/reference.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MotiveClient, encodeFloat16Array } from '../../trainer-hooks/ts/index.js';
import { ReferenceModel, decodeBytes, relErr, rng } from '../helpers/reference.js';
import { makeScenario, streamRank, type Scenario } from '../helpers/scenario.js';
import { startTestDaemon } from '../helpers/daemon.js';

const K = 512;
const M = 8;
const RANKS = 3;

function wireValues(values: Float32Array, dtype: 'float32' | 'float16'): number[] {
  const bytes = dtype === 'float16' ? encodeFloat16Array(values) : Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  return decodeBytes(bytes, dtype);
}

async function stream(scn: Scenario, address: string, runId: string, dtype: 'float32' | 'float16'): Promise<MotiveClient[]> {
  const clients = scn.ranks.map(
    (_, rank) =>
      new MotiveClient({
        address,
        runId,
        dim: scn.dim,
        rank,
        worldSize: RANKS,
        dtype,
        projection: { kind: 'gaussian', seed: 7, fingerprint: 'fp-test' },
      }),
  );
  await Promise.all(clients.map((c) => c.connect()));
  await Promise.all(
    clients.map(async (c, rank) => {
      await streamRank(c, scn, rank);
      await c.flush();
    }),
  );
  return clients;
}

describe.each(['float32', 'float16'] as const)('attribution equals the float64 reference (%s)', (dtype) => {
  let daemon: Awaited<ReturnType<typeof startTestDaemon>>;
  const scn = makeScenario({
    seed: dtype === 'float32' ? 11 : 12,
    dim: K,
    queries: M,
    ranks: RANKS,
    batches: 200,
    batchSize: 16,
    pool: 300,
  });
  const ref = new ReferenceModel(K);
  const runId = `equiv-${dtype}`;
  let base: string;

  beforeAll(async () => {
    daemon = await startTestDaemon({ weights: { minSeen: 1, intervalMs: 50 } });
    base = `http://127.0.0.1:${daemon.httpPort}`;
    for (const qs of scn.querySets) ref.addQuerySet(qs.version, qs.step, qs.ids, wireValues(qs.values, dtype));
    scn.ranks.forEach((batches, rank) => {
      for (const b of batches) ref.addBatch(rank, b.seq, b.step, b.lr, b.ids, wireValues(b.values, dtype));
    });
    const clients = await stream(scn, `127.0.0.1:${daemon.grpcPort}`, runId, dtype);
    clients.forEach((c) => c.close());
  });

  afterAll(async () => {
    await daemon.cleanup();
  });

  it('lists the query ids in first-seen order and every batch once', async () => {
    const run = (await (await fetch(`${base}/v1/runs/${runId}`)).json()) as {
      queryIds: string[];
      batches: number;
      samples: number;
      queryVersion: number;
    };
    expect(run.queryIds).toEqual(ref.queryIds);
    expect(run.batches).toBe(200);
    expect(run.samples).toBe(ref.samples.size);
    expect(run.queryVersion).toBe(3);
  });

  it('matches seen, lastStep, per-query sums, score and votes for every sample', async () => {
    const votes = ref.votes(90);
    let worst = 0;
    for (const [id, s] of ref.samples) {
      const res = await fetch(`${base}/v1/runs/${runId}/samples/${encodeURIComponent(id)}`);
      expect(res.status).toBe(200);
      const got = (await res.json()) as { seen: number; lastStep: number; querySums: number[]; score: number; votes: number };
      expect(got.seen).toBe(s.seen);
      expect(got.lastStep).toBe(s.lastStep);
      const e = relErr(got.querySums, ref.querySums(id));
      worst = Math.max(worst, e);
      expect(e).toBeLessThanOrEqual(1e-4);
      expect(Math.abs(got.score - ref.score(id))).toBeLessThanOrEqual(1e-4 * Math.max(1e-6, ...ref.querySums(id).map(Math.abs)));
      expect(got.votes).toBe(votes.get(id));
    }
    expect(worst).toBeLessThan(1e-4);
  });

  it('matches the influence embedding G(z) of every sample', () => {
    for (const [id, s] of ref.samples) {
      const g = daemon.store.embedding(runId, id, K);
      expect(g).toBeDefined();
      expect(relErr(g!, s.g)).toBeLessThanOrEqual(1e-4);
    }
  });

  it('ranks /attribute like the reference', async () => {
    const r = rng(99);
    const q = Array.from({ length: K }, () => r.normal());
    const res = await fetch(`${base}/v1/runs/${runId}/attribute`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ sketch: q, limit: 50 }),
    });
    expect(res.status).toBe(200);
    const got = (await res.json()) as { samples: Array<{ id: string; score: number }> };
    const want = ref.attribute(q);
    expect(got.samples).toHaveLength(50);
    const scale = Math.abs(want[0]!.score);
    got.samples.forEach((s, i) => {
      expect(Math.abs(s.score - want[i]!.score)).toBeLessThanOrEqual(1e-4 * scale);
      // Same id unless the reference has a near-tie at this rank.
      if (s.id !== want[i]!.id)
        expect(Math.abs(want[i]!.score - (want.find((w) => w.id === s.id)?.score ?? Infinity))).toBeLessThan(1e-4 * scale);
    });
  });
});
