/**
 * Ranks of one run may send different sketch dtypes (a FLOAT16 rank beside a FLOAT32 one, same
 * projection). The daemon is SIGKILLed after every batch was acknowledged but before its flusher
 * wrote a record, so recovery rebuilds everything from the write-ahead log; the ranks then resend
 * batches from before their last committed seq. Every stored quantity — each sample's seen,
 * sums, score and every coordinate of G(z) (read back through /attribute with basis queries) —
 * must equal a float64 reference computed here.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { open as openLmdb } from 'lmdb';
import { afterAll, describe, expect, it } from 'vitest';
import { STORE_FORMAT_VERSION, Store } from '../../daemon/store/index.js';
import { MotiveClient } from '../../trainer-hooks/ts/index.js';
import { ReferenceModel, relErr } from '../helpers/reference.js';
import { makeScenario, streamRank, type Scenario } from '../helpers/scenario.js';
import { hello, rawStream, type DaemonReply } from '../helpers/raw-stream.js';
import { freePort, spawnDaemon, tempDir, type ChildDaemon } from '../helpers/daemon.js';

const K = 24;
const RANKS = 2;
const DTYPES = ['float16', 'float32'] as const;

/**
 * The scenario with every value a multiple of 1/64 in (-8, 8): exact in float16 and float32, so
 * either rank's wire bytes carry the same numbers and the reference needs no rounding model.
 */
function exactScenario(): Scenario {
  const scn = makeScenario({ seed: 24, dim: K, queries: 3, ranks: RANKS, batches: 60, batchSize: 6, pool: 40 });
  const q = (v: Float32Array): Float32Array => v.map((x) => Math.max(-7.9, Math.min(7.9, Math.round(x * 64) / 64)));
  return {
    dim: K,
    querySets: scn.querySets.map((s) => ({ ...s, values: q(s.values) })),
    ranks: scn.ranks.map((bs) => bs.map((b) => ({ ...b, values: q(b.values) }))),
  };
}

async function getJson(url: string, init?: RequestInit): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url, init);
  return { status: res.status, body: await res.json() };
}

describe('crash recovery with mixed sketch dtypes among ranks', () => {
  const dir = tempDir();
  let daemon: ChildDaemon | undefined;
  afterAll(() => {
    daemon?.proc.kill('SIGKILL');
    dir.remove();
  });

  it('recovers every G(z), sum and counter exactly after a SIGKILL before the flush', async () => {
    const grpcPort = await freePort();
    const httpPort = await freePort();
    const config = join(dir.path, 'config.json');
    // No flush before the kill: every acknowledged batch is only in the log.
    writeFileSync(config, JSON.stringify({ store: { flushIntervalMs: 600_000, maxDirtySamples: 1_000_000 } }));
    const env = {
      MOTIVE_CONFIG: config,
      MOTIVE_DATA_DIR: join(dir.path, 'data'),
      MOTIVE_GRPC_PORT: String(grpcPort),
      MOTIVE_HTTP_PORT: String(httpPort),
    };
    daemon = await spawnDaemon(env);
    const scn = exactScenario();
    const ref = new ReferenceModel(K);
    const last = Math.max(...scn.ranks.flatMap((bs) => bs.map((b) => b.step)));
    for (const qs of scn.querySets) if (qs.step <= last) ref.addQuerySet(qs.version, qs.step, qs.ids, [...qs.values]);
    scn.ranks.forEach((bs, rank) => bs.forEach((b) => ref.addBatch(rank, b.seq, b.step, b.lr, b.ids, [...b.values])));

    const client = (rank: number): MotiveClient =>
      new MotiveClient({ address: `127.0.0.1:${grpcPort}`, runId: 'mixed', dim: K, rank, worldSize: RANKS, dtype: DTYPES[rank]! });
    // The FLOAT16 rank creates the run: the FLOAT32 rank's bytes are the ones in a foreign dtype.
    const clients = [client(0)];
    await clients[0]!.connect();
    clients.push(client(1));
    await clients[1]!.connect();
    await Promise.all(clients.map((c, rank) => streamRank(c, scn, rank)));
    await Promise.all(clients.map((c) => c.flush(60_000)));
    clients.forEach((c) => c.close());

    daemon.proc.kill('SIGKILL');
    await daemon.exited;
    daemon = await spawnDaemon(env);

    // Each rank resends its last five batches, from before its last committed seq: duplicates.
    for (let rank = 0; rank < RANKS; rank++) {
      const again = client(rank);
      const welcome = await again.connect();
      const batches = scn.ranks[rank]!;
      expect(welcome.lastCommittedSeq).toBe(batches.length);
      (again as unknown as { protocol: { nextSeq: number } }).protocol.nextSeq = batches.length - 4;
      for (const b of batches.slice(-5)) await again.send(b.step, b.lr, b.ids, b.values);
      await again.flush(60_000);
      again.close();
    }

    const base = `http://127.0.0.1:${httpPort}`;
    const run = (await getJson(`${base}/v1/runs/mixed`)) as { body: { batches: number; samples: number } };
    expect(run.body.batches).toBe(60);
    expect(run.body.samples).toBe(ref.samples.size);
    for (const [id, s] of ref.samples) {
      const got = (await getJson(`${base}/v1/runs/mixed/samples/${id}`)) as { body: { seen: number; score: number; querySums: number[] } };
      expect(got.body.seen).toBe(s.seen);
      expect(relErr(got.body.querySums, ref.querySums(id))).toBeLessThanOrEqual(1e-5);
      expect(Math.abs(got.body.score - ref.score(id))).toBeLessThanOrEqual(1e-6);
    }

    // G(z)_d of every sample: /attribute with the basis vector e_d, limit = every sample (so
    // every sample is rescored exactly from its G(z)).
    let worst = 0;
    for (let d = 0; d < K; d++) {
      const sketch = Array.from({ length: K }, (_, i) => (i === d ? 1 : 0));
      const res = (await getJson(`${base}/v1/runs/mixed/attribute`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ sketch, limit: ref.samples.size }),
      })) as { status: number; body: { samples: Array<{ id: string; score: number }> } };
      expect(res.status).toBe(200);
      expect(res.body.samples.length).toBe(ref.samples.size);
      for (const { id, score } of res.body.samples) {
        const want = ref.samples.get(id)!.g[d]!;
        worst = Math.max(worst, Math.abs(score - want));
      }
    }
    // G(z) entries are sums of lr · ĝ_d (lr ≈ 1e-3, |ĝ_d| ≤ 1): float32 rounding is ~1e-9.
    expect(worst).toBeLessThanOrEqual(1e-7);

    // A FLOAT16 row holding +Inf (0x7c00) is refused at ingest and never reaches G(z).
    const raw = rawStream(`127.0.0.1:${grpcPort}`);
    raw.write(
      hello('mixed', K, {
        rank: 0,
        worldSize: RANKS,
        dtype: 'FLOAT16',
        projection: { kind: 'logra-gaussian', seed: 0, dim: K, fingerprint: '' },
      }),
    );
    expect(await raw.next()).toHaveProperty('welcome');
    const halves = new Uint16Array(K).fill(0x3c00);
    halves[3] = 0x7c00;
    raw.write({ batch: { seq: 1000, step: 1000, lr: 0.01, sampleIds: ['clip-0000'], sketches: Buffer.from(halves.buffer), losses: [] } });
    const reply = (await raw.next()) as DaemonReply;
    raw.close();
    expect([reply.error?.code, reply.error?.fatal]).toEqual(['MOTIVE_INGEST_BATCH_NONFINITE', false]);
    const after = (await getJson(`${base}/v1/runs/mixed`)) as { body: { batches: number } };
    expect(after.body.batches).toBe(60);
  }, 120_000);
});

describe('a format 5 store', () => {
  it('replays its log entries, which carry no dtype, in the run’s dtype, and becomes format 6', async () => {
    const d = tempDir('motive-format5-');
    try {
      const info = {
        id: 'half',
        dim: 4,
        dtype: 'float16',
        projection: { kind: 'gaussian', seed: '1', dim: 4, fingerprint: 'fp' },
        scoreMode: 'dot',
        worldSize: 1,
        createdAtMs: 0,
      };
      const main = openLmdb({ path: d.path, maxDbs: 16 });
      await main.openDB({ name: 'meta' }).put('format', 5);
      await main.openDB({ name: 'runs' }).put('half', { info, queryIds: [], weightsVersion: 0, batches: 1, sketches: 1, lastStep: 3 });
      // 1, -2, 0.5, 0.25 as binary16.
      const halves = Buffer.from(new Uint16Array([0x3c00, 0xc000, 0x3800, 0x3400]).buffer);
      const entry = {
        kind: 'batch',
        runId: 'half',
        step: 3,
        lr: 0.5,
        qsVersion: 0,
        ids: ['a'],
        products: new Uint8Array(0),
        sketches: halves,
      };
      await main.openDB({ name: 'log' }).put(1, entry);
      await main.close();
      const store = await Store.open({ dataDir: d.path, mapSizeBytes: 1 << 30 });
      expect(Array.from(store.embedding('half', 'a', 4)!)).toEqual([0.5, -1, 0.25, 0.125]);
      await store.close();
      const again = openLmdb({ path: d.path, maxDbs: 16 });
      expect(again.openDB({ name: 'meta' }).get('format')).toBe(STORE_FORMAT_VERSION);
      await again.close();
    } finally {
      d.remove();
    }
  });
});
