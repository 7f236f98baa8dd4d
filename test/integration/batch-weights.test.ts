/**
 * Batch weight updates: a committed batch's samples get their weights right after the commit, from
 * the median and scale of the run's last recompute, without waiting for the next recompute (the
 * interval here is a minute, so only the batch update can deliver them in time). The expected
 * weight is computed here in float64 from the daemon's reported scores: median, 1.4826 · MAD,
 * clamp(exp(beta · z), wMin, 1).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MotiveClient, type WeightUpdateInfo } from '../../trainer-hooks/ts/index.js';
import { rng } from '../helpers/reference.js';
import { startTestDaemon } from '../helpers/daemon.js';

const K = 64;
const M = 4;
const BETA = 1;
const W_MIN = 0.05;

type Daemon = Awaited<ReturnType<typeof startTestDaemon>>;

interface Sample {
  id: string;
  score: number;
  weight: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 === 1 ? (s[h] as number) : ((s[h - 1] as number) + (s[h] as number)) / 2;
}

async function samples(d: Daemon, run: string): Promise<Map<string, Sample>> {
  const res = await fetch(`http://127.0.0.1:${d.httpPort}/v1/runs/${run}/samples?order=harmful&limit=1000`);
  const body = (await res.json()) as { samples: Sample[] };
  return new Map(body.samples.map((s) => [s.id, s]));
}

/** Waits up to `ms` for an update naming `id`; undefined if none came. */
async function updateFor(updates: WeightUpdateInfo[], id: string, ms: number): Promise<WeightUpdateInfo | undefined> {
  const until = Date.now() + ms;
  for (;;) {
    const u = updates.find((x) => !x.full && x.sampleIds.includes(id));
    if (u !== undefined || Date.now() > until) return u;
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('batch weight updates', () => {
  let daemon: Daemon | undefined;
  let client: MotiveClient | undefined;

  afterEach(async () => {
    client?.close();
    await daemon?.cleanup();
    client = undefined;
    daemon = undefined;
  });

  /** A run with 40 samples and one recompute behind it; returns what the test needs. */
  async function setUp(batchUpdates: boolean, store: Record<string, unknown> = {}, weights: Record<string, unknown> = {}) {
    daemon = await startTestDaemon({
      weights: { minSeen: 1, intervalMs: 60_000, beta: BETA, wMin: W_MIN, batchUpdates, ...weights },
      store,
    });
    const r = rng(11);
    const queries = Float32Array.from({ length: M * K }, () => r.normal());
    const mean = new Float64Array(K);
    for (let j = 0; j < M; j++) for (let d = 0; d < K; d++) mean[d] = (mean[d] as number) + (queries[j * K + d] as number) / M;
    const updates: WeightUpdateInfo[] = [];
    const c = new MotiveClient({ dtype: 'float32', address: `127.0.0.1:${daemon.grpcPort}`, runId: 'bw', dim: K, applyWeights: true });
    client = c;
    c.on('weights', (u: WeightUpdateInfo) => updates.push(u));
    await c.connect();
    c.setQueries(
      1,
      0,
      Array.from({ length: M }, (_, j) => `q${j}`),
      queries,
    );
    /** Sends one batch and waits for its Ack: sketch i is noise plus `pull(i)` times the mean query direction. */
    const send = async (step: number, ids: string[], pull: (i: number) => number) => {
      const sk = new Float32Array(ids.length * K);
      for (let i = 0; i < ids.length; i++) for (let d = 0; d < K; d++) sk[i * K + d] = r.normal() * 0.5 + pull(i) * (mean[d] as number);
      await c.send(step, 1e-3, ids, sk);
      await c.flush();
    };
    const first = Array.from({ length: 40 }, (_, i) => `clip-${i}`);
    await send(1, first, (i) => (i % 5) * 0.1);
    // The first commit's recompute runs at once (no earlier one): wait until it has run.
    await daemon.weighting.flushAll();
    const before = await samples(daemon, 'bw');
    const scores = first.map((id) => (before.get(id) as Sample).score);
    const med = median(scores);
    const sigma = 1.4826 * median(scores.map((s) => Math.abs(s - med)));
    return { c, updates, send, queries, med, sigma };
  }

  it("pushes a new harmful sample's weight right after its batch, from the last recompute's statistics", async () => {
    const { updates, send, med, sigma } = await setUp(true);
    expect(sigma).toBeGreaterThan(0);
    const sent = Date.now();
    await send(2, ['bad-1', 'fine-1'], (i) => (i === 0 ? -2 : 0.3));
    const u = await updateFor(updates, 'bad-1', 5000);
    expect(u, 'a batch update for bad-1 well before the 60 s recompute').toBeDefined();
    expect(Date.now() - sent).toBeLessThan(5000);
    const now = await samples(daemon as Daemon, 'bw');
    const bad = now.get('bad-1') as Sample;
    const z = (bad.score - med) / sigma;
    expect(z).toBeLessThan(-1);
    const want = Math.min(1, Math.max(W_MIN, Math.exp(BETA * z)));
    const got = (u as WeightUpdateInfo).weights[(u as WeightUpdateInfo).sampleIds.indexOf('bad-1')] as number;
    expect(Math.abs(got - want)).toBeLessThan(1e-6);
    expect(client?.weights().get('bad-1')).toBeCloseTo(want, 6);
    expect(bad.weight).toBeCloseTo(want, 6);
    // fine-1 points the queries' way: at or above the median, weight 1, nothing to push
    expect((now.get('fine-1') as Sample).score).toBeGreaterThan(med);
    expect((u as WeightUpdateInfo).sampleIds).not.toContain('fine-1');
  });

  it("logs a batch's weights in its group's own transaction: no commit of their own", async () => {
    // No flush cycle (whose log trim is a commit) during the test.
    const { updates, send } = await setUp(true, { flushIntervalMs: 600_000 });
    const d = daemon as Daemon;
    const version = d.store.run('bw')?.weightsVersion as number;
    const commits = d.store.commits;
    await send(2, ['bad-1'], () => -2);
    const u = await updateFor(updates, 'bad-1', 5000);
    expect(u, 'a batch update for bad-1').toBeDefined();
    expect(d.store.commits - commits).toBe(1);
    expect(u?.version).toBe(version + 1);
    expect(d.store.run('bw')?.weightsVersion).toBe(version + 1);
  });

  it('weighs samples from their scores after every group still committing ahead of theirs', async () => {
    // One batch per group, and every transaction waits 30 ms first, so batches sent back to back
    // are prepared while the groups before them commit; each sample is in every batch.
    // minDelta 0: each weight is the one of its sample's final score, exactly (float32), from the
    // statistics of the setup's recompute, computed here in float64.
    const { c, med, sigma } = await setUp(true, { commitDelayMs: 30, flushIntervalMs: 600_000, maxGroupBytes: 1024 }, { minDelta: 0 });
    const d = daemon as Daemon;
    const commits = d.store.commits;
    const ids = Array.from({ length: 8 }, (_, i) => `x${i}`);
    const r = rng(5);
    for (let b = 0; b < 12; b++) {
      const sk = Float32Array.from({ length: ids.length * K }, () => r.normal());
      await c.send(3 + b, 2e-4, ids, sk);
    }
    await c.flush();
    // One transaction per batch, its weights in it.
    expect(d.store.commits - commits).toBe(12);
    const now = await samples(d, 'bw');
    let unclamped = 0;
    for (const id of ids) {
      const s = now.get(id) as Sample;
      const want = Math.min(1, Math.max(W_MIN, Math.exp((BETA * (s.score - med)) / sigma)));
      if (want > W_MIN && want < 1) unclamped++;
      expect(Math.abs(s.weight - want), id).toBeLessThan(1e-6);
      expect(client?.weights().get(id) ?? 1, id).toBeCloseTo(s.weight, 6);
    }
    expect(unclamped, 'weights between wMin and 1').toBeGreaterThanOrEqual(3);
  });

  it('without batchUpdates the weight waits for the next recompute', async () => {
    const { updates, send } = await setUp(false);
    await send(2, ['bad-1'], () => -2);
    expect(await updateFor(updates, 'bad-1', 1000)).toBeUndefined();
    await (daemon as Daemon).weighting.flushAll();
    expect(await updateFor(updates, 'bad-1', 2000)).toBeDefined();
  });

  it('after a new query set the batch updates wait for the recompute that follows it', async () => {
    const { c, updates, send, queries } = await setUp(true);
    // the same directions under new ids: every score changes (new columns), the harmful side stays
    c.setQueries(
      2,
      2,
      Array.from({ length: M }, (_, j) => `q2-${j}`),
      queries,
    );
    await send(3, ['bad-2'], () => -2);
    expect(await updateFor(updates, 'bad-2', 1000)).toBeUndefined();
    await (daemon as Daemon).weighting.flushAll();
    // once recomputed, batch updates resume with the new statistics
    await send(4, ['bad-3'], () => -3);
    expect(await updateFor(updates, 'bad-3', 5000)).toBeDefined();
  });
});

describe('recompute over a run larger than one slice', () => {
  it("gives every sample the policy's weight from the final scores (float64 reference)", async () => {
    const K2 = 16;
    const d = await startTestDaemon({ weights: { minSeen: 1, intervalMs: 60_000, beta: BETA, wMin: W_MIN, batchUpdates: true } });
    const c = new MotiveClient({ dtype: 'float32', address: `127.0.0.1:${d.grpcPort}`, runId: 'big', dim: K2, applyWeights: false });
    try {
      await c.connect();
      const r = rng(21);
      c.setQueries(
        1,
        0,
        ['q0', 'q1'],
        Float32Array.from({ length: 2 * K2 }, () => r.normal()),
      );
      const n = 20_000; // more than two of the recompute's slices
      for (let at = 0; at < n; at += 1000) {
        const ids = Array.from({ length: 1000 }, (_, i) => `s${at + i}`);
        await c.send(
          1,
          1e-3,
          ids,
          Float32Array.from({ length: 1000 * K2 }, () => r.normal()),
        );
      }
      await c.flush();
      await d.weighting.flushAll();
      const run = d.store.run('big');
      expect(run?.samples.size).toBe(n);
      const states = [...(run?.samples.values() ?? [])];
      const scores = states.map((s) => run?.score(s) as number);
      const med = median(scores);
      const sigma = 1.4826 * median(scores.map((x) => Math.abs(x - med)));
      let below = 0;
      for (let i = 0; i < n; i++) {
        const z = ((scores[i] as number) - med) / sigma;
        const want = Math.min(1, Math.max(W_MIN, Math.exp(BETA * z)));
        // a weight that moved by less than minDelta (0.01) since the last push is kept
        expect(Math.abs((states[i]?.weight as number) - want)).toBeLessThanOrEqual(0.01 + 1e-6);
        if (want < 1) below++;
      }
      expect(below).toBeGreaterThan(n / 3);
    } finally {
      c.close();
      await d.cleanup();
    }
  });
});
