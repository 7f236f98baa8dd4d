/**
 * Hostile peers against the limits: concurrent Hellos against `limits.maxRuns` and
 * `limits.maxSamplesPerRun`, Hellos whose rank or world size disagree with the run's, and extreme
 * but finite numbers in every numeric field of a batch and of the REST inputs
 * (docs/security.md, docs/wire.md).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestDaemon, tempDir } from '../helpers/daemon.js';
import { batch, hello, rawStream, type DaemonReply } from '../helpers/raw-stream.js';

const K = 4;

describe('concurrent Hellos against limits.maxRuns', () => {
  it('60 parallel Hellos for new runs with maxRuns 40 create exactly 40 runs, also after a restart', async () => {
    const dir = tempDir();
    const d = await startTestDaemon({ limits: { maxRuns: 40 } }, dir.path);
    const address = `127.0.0.1:${d.grpcPort}`;
    const streams = Array.from({ length: 60 }, () => rawStream(address));
    streams.forEach((s, i) => s.write(hello(`par-${i}`, K)));
    const replies = (await Promise.all(streams.map((s) => s.next(20_000)))) as DaemonReply[];
    streams.forEach((s) => s.close());
    const welcomed = replies.filter((r) => r.welcome !== undefined).length;
    const refused = replies.filter((r) => r.error?.code === 'MOTIVE_INGEST_LIMIT_RUNS' && r.error.fatal).length;
    expect(welcomed).toBe(40);
    expect(refused).toBe(20);
    expect(d.store.runs().length).toBe(40);
    await d.cleanup();
    const again = await startTestDaemon({ limits: { maxRuns: 40 } }, dir.path);
    expect(again.store.runs().length).toBe(40);
    // Attaching to a run it holds is not a new run; a 41st is still refused.
    const old = rawStream(`127.0.0.1:${again.grpcPort}`);
    old.write(hello(welcomedRun(replies), K));
    expect(await old.next()).toHaveProperty('welcome');
    const fresh = rawStream(`127.0.0.1:${again.grpcPort}`);
    fresh.write(hello('one-more', K));
    expect(((await fresh.next()) as DaemonReply).error?.code).toBe('MOTIVE_INGEST_LIMIT_RUNS');
    old.close();
    fresh.close();
    await again.cleanup();
    dir.remove();
  }, 60_000);

  it('parallel Hellos for one new run create it once and welcome them all', async () => {
    const d = await startTestDaemon({ limits: { maxRuns: 1 } });
    const streams = Array.from({ length: 20 }, () => rawStream(`127.0.0.1:${d.grpcPort}`));
    streams.forEach((s) => s.write(hello('shared', K, { worldSize: 20, rank: 0 })));
    const replies = (await Promise.all(streams.map((s) => s.next(20_000)))) as DaemonReply[];
    streams.forEach((s) => s.close());
    expect(replies.every((r) => r.welcome !== undefined)).toBe(true);
    expect(d.store.runs().map((r) => r.info.id)).toEqual(['shared']);
    await d.cleanup();
  });
});

describe('concurrent ranks against limits.maxSamplesPerRun', () => {
  it('4 ranks sending new samples at once never take a run past the limit', async () => {
    const d = await startTestDaemon({ limits: { maxSamplesPerRun: 50 } });
    const ranks = Array.from({ length: 4 }, () => rawStream(`127.0.0.1:${d.grpcPort}`));
    ranks.forEach((s, rank) => s.write(hello('capped', K, { rank, worldSize: 4 })));
    for (const s of ranks) expect(await s.next()).toHaveProperty('welcome');
    // 4 ranks × 3 batches × 10 new ids = 120 distinct samples offered, all at once.
    ranks.forEach((s, rank) => {
      for (let b = 0; b < 3; b++) {
        const ids = Array.from({ length: 10 }, (_, i) => `r${rank}-b${b}-${i}`);
        s.write(batch(b + 1, ids, new Float32Array(10 * K).fill(0.5)));
      }
    });
    let acked = 0;
    let refused = 0;
    for (const s of ranks) {
      for (let b = 0; b < 3; b++) {
        const r = (await s.next(20_000)) as DaemonReply;
        if (r.ack !== undefined) acked++;
        else if (r.error?.code === 'MOTIVE_INGEST_LIMIT_SAMPLES' && !r.error.fatal) refused++;
      }
      s.close();
    }
    expect(acked + refused).toBe(12);
    expect(acked).toBe(5);
    expect(d.store.run('capped')!.samples.size).toBe(50);
    await d.cleanup();
  });
});

/** The run id of the first welcomed stream (streams are numbered like their runs). */
function welcomedRun(replies: DaemonReply[]): string {
  return `par-${replies.findIndex((r) => r.welcome !== undefined)}`;
}

describe('Hellos that disagree with the run', () => {
  let d: Awaited<ReturnType<typeof startTestDaemon>>;
  beforeAll(async () => {
    d = await startTestDaemon();
    const s = rawStream(`127.0.0.1:${d.grpcPort}`);
    s.write(hello('world2', K, { rank: 0, worldSize: 2 }));
    expect(await s.next()).toHaveProperty('welcome');
    s.close();
  });
  afterAll(async () => d.cleanup());

  it.each([
    ['rank 63 of world 64 on a world-2 run', { rank: 63, worldSize: 64 }, 'MOTIVE_INGEST_WORLD_SIZE'],
    ['rank 0 of world 1 on a world-2 run', { rank: 0, worldSize: 1 }, 'MOTIVE_INGEST_WORLD_SIZE'],
    ['rank 2 of world 2', { rank: 2, worldSize: 2 }, 'MOTIVE_INGEST_HELLO_INVALID'],
  ])('refuses %s', async (_name, fields, code) => {
    const s = rawStream(`127.0.0.1:${d.grpcPort}`);
    s.write(hello('world2', K, fields));
    const reply = (await s.next()) as DaemonReply;
    s.close();
    expect(reply.error).toMatchObject({ code, fatal: true });
    expect(d.store.run('world2')?.info.worldSize).toBe(2);
  });

  it('welcomes rank 1 of world 2', async () => {
    const s = rawStream(`127.0.0.1:${d.grpcPort}`);
    s.write(hello('world2', K, { rank: 1, worldSize: 2 }));
    expect(await s.next()).toHaveProperty('welcome');
    s.write(batch(1, ['a'], Float32Array.from([1, 0, 0, 0])));
    expect(await s.next()).toEqual({ ack: { seq: 1 } });
    s.close();
  });
});

describe('extreme but finite numbers in every numeric field of a batch', () => {
  let d: Awaited<ReturnType<typeof startTestDaemon>>;
  beforeAll(async () => {
    // Dot products: sketches keep their magnitude (cosine would normalise them).
    d = await startTestDaemon({ score: { normalize: 'dot' } });
  });
  afterAll(async () => d.cleanup());

  it('refuses each poisonous batch alone with its code, and the run stays finite', async () => {
    const s = rawStream(`127.0.0.1:${d.grpcPort}`);
    s.write(hello('extreme', K));
    expect(await s.next()).toHaveProperty('welcome');
    s.write({
      queries: { version: 1, step: 0, queryIds: ['q'], groups: [], sketches: Buffer.from(Float32Array.from([1e14, 0.5, 0, 0]).buffer) },
    });
    const ok = Float32Array.from([1, 0.5, -0.25, 0]);
    const cases: Array<[string, unknown, string]> = [
      ['lr 1e39', batch(1, ['big-lr'], ok, 0, 1e39), 'MOTIVE_INGEST_BAD_LR'],
      ['lr 1e308', batch(2, ['big-lr'], ok, 0, 1e308), 'MOTIVE_INGEST_BAD_LR'],
      ['lr just above the bound', batch(3, ['big-lr'], ok, 0, 1000.5), 'MOTIVE_INGEST_BAD_LR'],
      ['negative lr', batch(4, ['big-lr'], ok, 0, -1e-3), 'MOTIVE_INGEST_BAD_LR'],
      ['lr × sketch beyond 2^96', batch(5, ['big-g'], Float32Array.from([0, 0, 1e35, 0]), 0, 1000), 'MOTIVE_INGEST_BATCH_OVERFLOW'],
      ['lr × product beyond 2^96', batch(6, ['big-s'], Float32Array.from([1e14, 0, 0, 0]), 0, 1000), 'MOTIVE_INGEST_BATCH_OVERFLOW'],
      ['seq beyond 2^53', batch(2 ** 60, ['big-seq'], ok), 'MOTIVE_INGEST_BATCH_INVALID'],
      ['step beyond 2^53', batch(7, ['big-step'], ok, 2 ** 60), 'MOTIVE_INGEST_BATCH_INVALID'],
    ];
    for (const [name, msg, code] of cases) {
      s.write(msg);
      const reply = (await s.next()) as DaemonReply;
      expect(reply.error, name).toMatchObject({ code, fatal: false });
    }
    // Within the bounds: the largest lr, float32's largest sketch values at lr 0, a huge step.
    s.write(batch(10, ['edge-lr'], ok, 5, 1000));
    s.write(batch(11, ['edge-zero'], Float32Array.from([0, 3.4e38, 0, -3.4e38]), 6, 0));
    s.write(batch(12, ['edge-step'], ok, Number.MAX_SAFE_INTEGER, 1e-3));
    for (const seq of [10, 11, 12]) expect(await s.next(), `seq ${seq}`).toEqual({ ack: { seq } });
    s.close();
    const run = d.store.run('extreme')!;
    expect([...run.samples.keys()].sort()).toEqual(['edge-lr', 'edge-step', 'edge-zero']);
    const url = `http://127.0.0.1:${d.httpPort}/v1/runs/extreme`;
    const { samples } = (await (await fetch(`${url}/samples?order=helpful`)).json()) as { samples: Array<{ id: string; score: unknown }> };
    for (const x of samples) expect(Number.isFinite(x.score), x.id).toBe(true);
    // Reference in float64: score = lr·⟨x, q⟩ over one query.
    expect(samples.find((x) => x.id === 'edge-lr')?.score).toBeCloseTo(1000 * (1 * 1e14 + 0.5 * 0.5), -9);
    const attribute = await fetch(`${url}/attribute`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ sketch: [1, 1, 1, 1] }),
    });
    expect(attribute.status).toBe(200);
    const body = (await attribute.json()) as { samples: Array<{ score: unknown }> };
    for (const x of body.samples) expect(Number.isFinite(x.score)).toBe(true);
  });
});
