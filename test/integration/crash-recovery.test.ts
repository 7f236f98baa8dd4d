/**
 * Acceptance: the daemon is killed with SIGKILL mid-stream and restarted on the same store; the
 * clients reconnect and resend; the final state equals the float64 reference — nothing lost,
 * nothing counted twice. Also: a graceful restart leaves the store byte-for-byte unchanged.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { MotiveClient } from '../../trainer-hooks/ts/index.js';
import { ReferenceModel, decodeBytes, relErr } from '../helpers/reference.js';
import { makeScenario, streamRank } from '../helpers/scenario.js';
import { freePort, spawnDaemon, startTestDaemon, tempDir, type ChildDaemon } from '../helpers/daemon.js';

const K = 128;
const RANKS = 3;

describe('SIGKILL mid-stream', () => {
  const dir = tempDir();
  let daemon: ChildDaemon | undefined;
  afterAll(() => {
    daemon?.proc.kill('SIGKILL');
    dir.remove();
  });

  it('loses nothing and counts nothing twice', async () => {
    const grpcPort = await freePort();
    const httpPort = await freePort();
    const env = { MOTIVE_DATA_DIR: dir.path, MOTIVE_GRPC_PORT: String(grpcPort), MOTIVE_HTTP_PORT: String(httpPort) };
    daemon = await spawnDaemon(env);
    const scn = makeScenario({ seed: 5, dim: K, queries: 4, ranks: RANKS, batches: 240, batchSize: 8, pool: 120 });
    const ref = new ReferenceModel(K);
    const f32 = (v: Float32Array): number[] => decodeBytes(Buffer.from(v.buffer, v.byteOffset, v.byteLength), 'float32');
    for (const qs of scn.querySets) ref.addQuerySet(qs.version, qs.step, qs.ids, f32(qs.values));
    scn.ranks.forEach((bs, rank) => bs.forEach((b) => ref.addBatch(rank, b.seq, b.step, b.lr, b.ids, f32(b.values))));

    const clients = scn.ranks.map(
      (_, rank) =>
        new MotiveClient({
          dtype: 'float32',
          address: `127.0.0.1:${grpcPort}`,
          runId: 'crash',
          dim: K,
          rank,
          worldSize: RANKS,
          maxUnacked: 8,
          reconnectDelayMs: 100,
          maxReconnectDelayMs: 100,
        }),
    );
    await Promise.all(clients.map((c) => c.connect()));
    let acked = 0;
    clients.forEach((c) => c.on('ack', () => acked++));
    let killed = false;
    const killer = (async () => {
      while (acked < 60) await new Promise((r) => setTimeout(r, 5));
      daemon.proc.kill('SIGKILL');
      await daemon.exited;
      killed = true;
      await new Promise((r) => setTimeout(r, 300));
      daemon = await spawnDaemon(env);
    })();
    await Promise.all(clients.map((c, rank) => streamRank(c, scn, rank, { afterBatch: () => new Promise((r) => setImmediate(r)) })));
    await killer;
    await Promise.all(clients.map((c) => c.flush(60_000)));
    expect(killed).toBe(true);
    expect(clients.some((c) => c.reconnects > 0)).toBe(true);
    clients.forEach((c) => c.close());

    const base = `http://127.0.0.1:${daemon.httpPort}`;
    const run = (await (await fetch(`${base}/v1/runs/crash`)).json()) as {
      batches: number;
      samples: number;
      ranks: Array<{ rank: number; lastCommittedSeq: number }>;
    };
    expect(run.batches).toBe(240);
    expect(run.samples).toBe(ref.samples.size);
    expect(run.ranks).toEqual([0, 1, 2].map((rank) => ({ rank, lastCommittedSeq: 80 })));
    for (const [id, s] of ref.samples) {
      const got = (await (await fetch(`${base}/v1/runs/crash/samples/${id}`)).json()) as { seen: number; querySums: number[] };
      expect(got.seen).toBe(s.seen);
      expect(relErr(got.querySums, ref.querySums(id))).toBeLessThanOrEqual(1e-4);
    }

    // A trainer that lost its acks resends rank 0's whole stream: acknowledged, counted nothing.
    const again = new MotiveClient({
      dtype: 'float32',
      address: `127.0.0.1:${grpcPort}`,
      runId: 'crash',
      dim: K,
      rank: 0,
      worldSize: RANKS,
    });
    const welcome = await again.connect();
    expect(welcome.lastCommittedSeq).toBe(80);
    // What the resend could count: each sample's evidence (weights and the fused z follow the
    // weight recomputes, which run on their own schedule).
    const counted = async (): Promise<unknown> => {
      const { samples } = (await (await fetch(`${base}/v1/runs/crash/samples?order=helpful&limit=1000`)).json()) as {
        samples: Array<{ id: string; score: number; seen: number; votes: number; lastStep: number }>;
      };
      return samples.map(({ id, score, seen, votes, lastStep }) => ({ id, score, seen, votes, lastStep }));
    };
    const before = await counted();
    (again as unknown as { protocol: { nextSeq: number } }).protocol.nextSeq = 1;
    for (const b of scn.ranks[0] ?? []) await again.send(b.step, b.lr, b.ids, b.values);
    await again.flush();
    again.close();
    expect(await counted()).toEqual(before);
  });
});

describe('graceful restart', () => {
  it('keeps the stored state byte-for-byte', async () => {
    const dir = tempDir();
    const d1 = await startTestDaemon({}, dir.path);
    const scn = makeScenario({ seed: 8, dim: 64, queries: 3, ranks: 1, batches: 40, batchSize: 8, pool: 50 });
    const c = new MotiveClient({ dtype: 'float32', address: `127.0.0.1:${d1.grpcPort}`, runId: 'persist', dim: 64 });
    await c.connect();
    c.setQueries(1, 0, scn.querySets[0]!.ids, scn.querySets[0]!.values);
    for (const b of scn.ranks[0]!) await c.send(b.step, b.lr, b.ids, b.values);
    await c.flush();
    c.close();
    await d1.weighting.flushAll();
    const snapshot = (d: typeof d1): string => {
      const run = d.store.run('persist')!;
      const rows = [...run.samples.values()]
        .sort((a, b) => (a.id < b.id ? -1 : 1))
        .map((s) => [
          s.id,
          s.seen,
          s.lastStep,
          s.weight,
          s.total,
          Buffer.from(run.sumsOf(s).buffer, run.sumsOf(s).byteOffset, run.sumsOf(s).byteLength).toString('hex'),
          Buffer.from(d.store.embedding('persist', s.id, 64)!.buffer).toString('hex'),
          d.store.sampleHistory('persist', s.id),
        ]);
      return JSON.stringify({ rows, q: run.queryIds, w: run.weightsVersion, c: [...run.commits], b: run.batches });
    };
    const before = snapshot(d1);
    const beforeRest = await (await fetch(`http://127.0.0.1:${d1.httpPort}/v1/runs/persist/samples?order=votes&limit=100`)).text();
    await d1.stop();
    const d2 = await startTestDaemon({}, dir.path);
    expect(snapshot(d2)).toBe(before);
    expect(await (await fetch(`http://127.0.0.1:${d2.httpPort}/v1/runs/persist/samples?order=votes&limit=100`)).text()).toBe(beforeRest);
    await d2.stop();
    dir.remove();
  });
});
