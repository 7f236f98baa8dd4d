/**
 * The fused signal end to end: raw gRPC streams send batches with per-clip features (and one rank
 * without), and the daemon's pushed weights, its views' fused / check and its batch weights are
 * compared with a float64 reference computed here (docs/method.md, "The fused signal"). Features
 * survive a SIGKILL and a restart; they go with a deleted run.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReferenceModel, rng } from '../helpers/reference.js';
import { refSignal, refSignalUnder, refStatsOf, type RefOptions, type RefSample } from '../helpers/fused-reference.js';
import { freePort, spawnDaemon, startTestDaemon, tempDir, type ChildDaemon } from '../helpers/daemon.js';
import { hello, rawStream, type DaemonReply, type RawStream } from '../helpers/raw-stream.js';
import { MotiveClient } from '../../trainer-hooks/ts/index.js';

const K = 32;
const M = 4;
const NAMES = ['shake', 'freeze'];
const WEIGHTS = { policy: 'downweight', minSeen: 2, beta: 0.7, wMin: 0.05, quarantineZ: -4, minDelta: 0, intervalMs: 600_000 } as const;
const OPTIONS: RefOptions = { ...WEIGHTS, signal: 'fused', checkWeight: 1.5, checkFloorZ: 0.5 };

interface Sent {
  seq: number;
  step: number;
  lr: number;
  ids: string[];
  sketches: Float32Array;
  features: number[] | undefined;
}

function batchMsg(b: Sent): unknown {
  return {
    batch: {
      seq: b.seq,
      step: b.step,
      lr: b.lr,
      sampleIds: b.ids,
      sketches: Buffer.from(b.sketches.buffer, b.sketches.byteOffset, b.sketches.byteLength),
      losses: [],
      features: b.features ?? [],
    },
  };
}

/** Reads daemon messages until `done` says so; returns them. */
async function readUntil(s: RawStream, done: (m: DaemonReply, all: DaemonReply[]) => boolean): Promise<DaemonReply[]> {
  const all: DaemonReply[] = [];
  for (;;) {
    const m = await s.next(20_000);
    if (m === 'end') throw new Error(`stream ended after ${JSON.stringify(all.slice(-3))}`);
    all.push(m);
    if (m.error !== undefined) throw new Error(`daemon error ${m.error.code}: ${m.error.message}`);
    if (done(m, all)) return all;
  }
}

/** Applies WeightUpdates to a trainer-side weight map, as a client does. */
function applyUpdates(map: Map<string, number>, msgs: readonly DaemonReply[]): void {
  for (const m of msgs) {
    if (m.weights === undefined) continue;
    if (m.weights.full) map.clear();
    m.weights.sampleIds.forEach((id, i) => map.set(id, m.weights!.weights[i]!));
  }
}

interface View {
  id: string;
  score: number;
  seen: number;
  weight: number;
  fused: number | null;
  check: number | null;
  features: Record<string, number>;
}

describe('fused signal with a real daemon', () => {
  let daemon: Awaited<ReturnType<typeof startTestDaemon>>;
  let a: RawStream;
  let b: RawStream;
  const ref = new ReferenceModel(K);
  /** Each clip's latest features as the daemon stores them (float32). */
  const latest = new Map<string, number[]>();
  const pushed = new Map<string, number>();
  /** The newest weights version rank 0 has read. */
  let heard = 0;
  /** Reads rank 0's stream, applying its WeightUpdates, until `done`. */
  const readA = async (done: (m: DaemonReply, all: DaemonReply[]) => boolean): Promise<DaemonReply[]> => {
    const msgs = await readUntil(a, (m, all) => {
      if (m.weights !== undefined) heard = Math.max(heard, m.weights.version);
      return done(m, all);
    });
    applyUpdates(pushed, msgs);
    return msgs;
  };
  /** Reads rank 0's stream until it has every weights version the run has. */
  const catchUp = async (): Promise<void> => {
    const version = daemon.store.run('fused')!.weightsVersion;
    if (heard < version) await readA(() => heard >= version);
  };
  const r = rng(21);
  const queries = Float32Array.from({ length: M * K }, () => r.normal());
  const mean = new Float64Array(K);
  for (let j = 0; j < M; j++) for (let d = 0; d < K; d++) mean[d] = (mean[d] as number) + (queries[j * K + d] as number) / M;
  // Clean clips; shaky and frozen ones the checks see; reversed ones only attribution sees; and
  // clips of the rank that sends no features.
  const clips = [
    ...Array.from({ length: 40 }, (_, i) => `ok-${i}`),
    ...Array.from({ length: 5 }, (_, i) => `shaky-${i}`),
    ...Array.from({ length: 5 }, (_, i) => `frozen-${i}`),
    ...Array.from({ length: 5 }, (_, i) => `rev-${i}`),
  ];
  const plain = Array.from({ length: 12 }, (_, i) => `plain-${i}`);
  const seqs = [0, 0];
  const url = (): string => `http://127.0.0.1:${daemon.httpPort}/v1/runs/fused`;

  const sketchFor = (id: string): number[] => {
    const sign = id.startsWith('rev-') ? -1.2 : 0.3;
    return Array.from({ length: K }, (_, d) => r.normal() * 0.3 + sign * (mean[d] as number));
  };
  const featuresFor = (id: string): number[] => {
    const shake = id.startsWith('shaky-') ? 6 + r.uniform() : 1 + 0.2 * r.normal();
    const freeze = id.startsWith('frozen-') ? 9 + r.uniform() : 0.5 + 0.1 * r.normal();
    return [shake, freeze];
  };

  /** Sends one batch on rank `rank` (`withFeatures`: the rank that named them) and applies it to the reference. */
  const send = (rank: 0 | 1, step: number, ids: string[], features?: number[][]): Sent => {
    const rows = ids.map(sketchFor);
    const sent: Sent = {
      seq: ++seqs[rank]!,
      step,
      lr: 0.01,
      ids,
      sketches: Float32Array.from(rows.flat()),
      features: features?.flat(),
    };
    ref.addBatch(rank, sent.seq, step, sent.lr, ids, [...sent.sketches]);
    features?.forEach((row, i) => latest.set(ids[i]!, row.map(Math.fround)));
    (rank === 0 ? a : b).write(batchMsg(sent));
    return sent;
  };

  const refSamples = (): Array<RefSample & { id: string }> =>
    [...ref.samples.entries()].map(([id, s]) => ({ id, score: ref.score(id), seen: s.seen, features: latest.get(id) }));

  const views = async (): Promise<Map<string, View>> => {
    const out = new Map<string, View>();
    for (const id of ref.samples.keys()) out.set(id, (await (await fetch(`${url()}/samples/${encodeURIComponent(id)}`)).json()) as View);
    return out;
  };

  beforeAll(async () => {
    daemon = await startTestDaemon({ weights: { ...WEIGHTS, signal: 'fused', checkWeight: 1.5, checkFloorZ: 0.5 } });
    const address = `127.0.0.1:${daemon.grpcPort}`;
    a = rawStream(address);
    a.write(hello('fused', K, { worldSize: 2, applyWeights: true, featureNames: NAMES }));
    await readA((m) => m.weights?.full === true);
    b = rawStream(address);
    b.write(hello('fused', K, { rank: 1, worldSize: 2 }));
    await readUntil(b, (m) => m.welcome !== undefined);
    const qids = Array.from({ length: M }, (_, j) => `q${j}`);
    ref.addQuerySet(1, 0, qids, [...queries]);
    a.write({ queries: { version: 1, step: 0, queryIds: qids, groups: [], sketches: Buffer.from(queries.buffer) } });
    for (let step = 0; step < 12; step++) {
      const ids = Array.from({ length: 12 }, () => clips[r.int(clips.length)]!);
      send(0, step, ids, ids.map(featuresFor));
      send(
        1,
        step,
        Array.from({ length: 3 }, () => plain[r.int(plain.length)]!),
      );
    }
    await readA((m) => m.ack?.seq === seqs[0]);
    await readUntil(b, (m) => m.ack?.seq === seqs[1]);
  }, 60_000);

  afterAll(async () => {
    a.close();
    b.close();
    await daemon.cleanup();
  });

  it('computes fused and check in the views and pushes weights as the float64 reference does', async () => {
    await daemon.weighting.flushAll();
    await catchUp();
    const samples = refSamples();
    const want = refSignal(samples, OPTIONS);
    const got = await views();
    let flagged = 0;
    samples.forEach((s, i) => {
      const v = got.get(s.id)!;
      const w = want[i]!;
      expect(v.seen).toBe(s.seen);
      if (w.check === null) expect(v.check, s.id).toBeNull();
      else expect(Math.abs(v.check! - w.check), s.id).toBeLessThan(1e-4);
      expect(Math.abs(v.fused! - w.fused!), s.id).toBeLessThan(1e-4);
      expect(Math.abs(v.weight - w.weight), s.id).toBeLessThan(1e-4);
      // What the trainer holds: the pushed weights (1 where never pushed).
      expect(Math.abs((pushed.get(s.id) ?? 1) - w.weight), s.id).toBeLessThan(1e-4);
      expect(v.features).toEqual(s.features === undefined ? {} : Object.fromEntries(NAMES.map((n, j) => [n, s.features![j]])));
      if (w.weight < 0.9) flagged++;
    });
    expect(flagged).toBeGreaterThan(5);
    // The checks catch the shaky and frozen clips, attribution the reversed ones.
    for (const prefix of ['shaky-', 'frozen-', 'rev-']) {
      const planted = samples.filter((s) => s.id.startsWith(prefix) && s.seen >= 2);
      expect(planted.length).toBeGreaterThan(0);
      for (const s of planted) expect(got.get(s.id)!.weight, s.id).toBeLessThan(0.9);
    }
    // order=harmful follows the fused z.
    const { samples: listed } = (await (await fetch(`${url()}/samples?order=harmful&limit=1000`)).json()) as { samples: View[] };
    const fusedOrder = [...samples.keys()].sort((i, j) => want[i]!.fused! - want[j]!.fused!).map((i) => samples[i]!.id);
    expect(listed.map((s) => s.id).slice(0, 10)).toEqual(fusedOrder.slice(0, 10));
  });

  it("weighs a batch's samples with the last recompute's statistics of both parts", async () => {
    await daemon.weighting.flushAll();
    await catchUp();
    const before = refStatsOf(refSamples(), OPTIONS);
    // A clean clip now arrives with shaky features, and another clean one with its old ones.
    const target = [...ref.samples.keys()].find((id) => id.startsWith('ok-') && ref.samples.get(id)!.seen >= 2)!;
    const other = [...ref.samples.keys()].find((id) => id.startsWith('ok-') && id !== target && ref.samples.get(id)!.seen >= 1)!;
    const sent = send(0, 20, [target, other], [[8, 0.5], latest.get(other)!]);
    const msgs = await readA((m, all) => all.some((x) => x.ack?.seq === sent.seq) && m.weights !== undefined);
    const update = msgs[msgs.length - 1]!.weights!;
    expect(update.full).toBe(false);
    const byId = new Map(update.sampleIds.map((id, i) => [id, update.weights[i]!]));
    const after = new Map(refSamples().map((s) => [s.id, s]));
    const want = refSignalUnder(before, after.get(target)!, OPTIONS).weight;
    expect(want).toBeLessThan(0.9);
    expect(Math.abs(byId.get(target)! - want)).toBeLessThan(1e-4);
    if (byId.has(other)) expect(Math.abs(byId.get(other)! - refSignalUnder(before, after.get(other)!, OPTIONS).weight)).toBeLessThan(1e-4);
  });

  it('takes features from the TypeScript client', async () => {
    const c = new MotiveClient({
      dtype: 'float32',
      address: `127.0.0.1:${daemon.grpcPort}`,
      runId: 'ts-features',
      dim: K,
      featureNames: ['jitter'],
    });
    await c.connect();
    await c.send(0, 0.01, ['x', 'y'], new Float32Array(2 * K).fill(0.5), [], [0.1, 7]);
    await c.flush();
    c.close();
    const base = `http://127.0.0.1:${daemon.httpPort}/v1/runs/ts-features/samples`;
    expect(((await (await fetch(`${base}/x`)).json()) as View).features).toEqual({ jitter: Math.fround(0.1) });
    expect(((await (await fetch(`${base}/y`)).json()) as View).features).toEqual({ jitter: 7 });
  });

  it('refuses a Hello naming other features, and forgets the names with a deleted run', async () => {
    const c = rawStream(`127.0.0.1:${daemon.grpcPort}`);
    c.write(hello('fused', K, { worldSize: 2, featureNames: ['shake'] }));
    const refused = await c.next();
    expect(refused !== 'end' && refused.error?.code).toBe('MOTIVE_INGEST_FEATURES_MISMATCH');
    c.close();
    // Features of the wrong width are refused batch by batch.
    a.write(batchMsg({ seq: ++seqs[0]!, step: 30, lr: 0.01, ids: ['ok-1'], sketches: new Float32Array(K), features: [1, 2, 3] }));
    const bad = await a.next();
    expect(bad !== 'end' && bad.error).toMatchObject({ code: 'MOTIVE_INGEST_BATCH_INVALID', fatal: false, seq: seqs[0] });

    expect((await fetch(url(), { method: 'DELETE' })).status).toBe(200);
    const d = rawStream(`127.0.0.1:${daemon.grpcPort}`);
    d.write(hello('fused', K, { featureNames: ['flicker'] }));
    await readUntil(d, (m) => m.welcome !== undefined);
    d.write(batchMsg({ seq: 1, step: 0, lr: 0.01, ids: ['ok-1'], sketches: new Float32Array(K).fill(1), features: [0.25] }));
    await readUntil(d, (m) => m.ack !== undefined);
    const v = (await (await fetch(`${url()}/samples/ok-1`)).json()) as View;
    expect(v.features).toEqual({ flicker: 0.25 });
    d.close();
  });
});

describe('features across SIGKILL', () => {
  const dir = tempDir();
  let child: ChildDaemon | undefined;
  afterAll(() => {
    child?.proc.kill('SIGKILL');
    dir.remove();
  });

  it("keeps every sample's latest features after a kill and a restart", async () => {
    const env = { MOTIVE_DATA_DIR: dir.path, MOTIVE_GRPC_PORT: String(await freePort()), MOTIVE_HTTP_PORT: String(await freePort()) };
    child = await spawnDaemon(env);
    const s = rawStream(`127.0.0.1:${child.grpcPort}`);
    s.write(hello('kill', 8, { featureNames: ['a', 'b', 'c'] }));
    await readUntil(s, (m) => m.welcome !== undefined);
    const r = rng(4);
    const latest = new Map<string, number[]>();
    const batches = 30;
    for (let seq = 1; seq <= batches; seq++) {
      const ids = Array.from({ length: 10 }, () => `clip-${r.int(60)}`);
      const rows = ids.map(() => [r.normal() * 1e3, r.uniform(), seq]);
      rows.forEach((row, i) => latest.set(ids[i]!, row.map(Math.fround)));
      const sketches = Float32Array.from({ length: ids.length * 8 }, () => r.normal());
      s.write(batchMsg({ seq, step: seq, lr: 0.01, ids, sketches, features: rows.flat() }));
    }
    await readUntil(s, (m) => m.ack?.seq === batches);
    s.close();
    child.proc.kill('SIGKILL');
    await child.exited;
    child = await spawnDaemon(env);
    const base = `http://127.0.0.1:${child.httpPort}/v1/runs/kill`;
    for (const [id, row] of latest) {
      const v = (await (await fetch(`${base}/samples/${id}`)).json()) as View;
      expect(v.features, id).toEqual({ a: row[0], b: row[1], c: row[2] });
    }
    const again = rawStream(`127.0.0.1:${child.grpcPort}`);
    again.write(hello('kill', 8, { featureNames: ['a', 'b'] }));
    const refused = await again.next();
    expect(refused !== 'end' && refused.error?.code).toBe('MOTIVE_INGEST_FEATURES_MISMATCH');
    again.close();
  }, 90_000);
});
