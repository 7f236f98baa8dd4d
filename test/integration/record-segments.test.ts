/**
 * Record segments (store format 6, docs/store.md): compaction keeps the files bounded and every
 * sample's newest state; a frame cut short or failing its checksum at a segment's end is never
 * read (recovery replays the log instead); a format 4 store's LMDB sample records move into
 * segments on start-up. Real files and LMDB in temp dirs, the real engine.
 */
import { appendFileSync, cpSync, existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { open as openLmdb } from 'lmdb';
import { afterAll, describe, expect, it } from 'vitest';
import type { InfluenceEngine } from '../../daemon/influence/index.js';
import { Store, STORE_FORMAT_VERSION, type RunState, type StoreOptions } from '../../daemon/store/index.js';
import { HISTORY_TRAILER_BYTES } from '../../daemon/store/history.js';
import { tempDir } from '../helpers/daemon.js';
import { openStoreRun, reweigh, sampleRows, segmentsOf, worstEmbeddingError, type StoreRun } from '../helpers/store-run.js';
import { rng } from '../helpers/reference.js';

const K = 16;
const dirs: Array<{ remove: () => void }> = [];
afterAll(() => dirs.forEach((d) => d.remove()));

function snapshot(store: Store, run: RunState): string {
  return JSON.stringify(sampleRows(store, run, K));
}

/** A store with run `r` (k = K, dot products) that flushes only when asked. */
function openRun(prefix: string, options: Partial<StoreOptions>): Promise<StoreRun> {
  return openStoreRun(prefix, dirs, K, 'dot', { flushIntervalMs: 1e9, maxDirtySamples: 1e9, ...options });
}

/** Sends `ids` as one batch of random sketches; adds lr · sketch to `expected` (float64). */
function sender(engine: InfluenceEngine, expected: Map<string, Float64Array>, seed: number): (ids: string[], lr: number) => Promise<void> {
  const r = rng(seed);
  let seq = 0;
  return async (ids, lr) => {
    seq++;
    const sketches = Float32Array.from({ length: ids.length * K }, () => r.normal());
    ids.forEach((id, i) => {
      const g = expected.get(id) ?? new Float64Array(K);
      for (let d = 0; d < K; d++) g[d] = (g[d] as number) + lr * (sketches[i * K + d] as number);
      expected.set(id, g);
    });
    const wire = new Uint8Array(sketches.buffer.slice(0));
    await engine.submitBatch({
      runId: 'r',
      rank: 0,
      seq,
      step: seq,
      lr,
      sampleIds: ids,
      sketches,
      wire,
      wireDtype: 'float32' as const,
      bytes: wire.byteLength,
    });
  };
}

describe('record segments', () => {
  it('compaction keeps the segments within twice the live bytes and every sample its newest record and weight', async () => {
    const SEGMENT = 512 << 10;
    const { dir, store, run, engine } = await openRun('motive-compact-', { segmentBytes: SEGMENT, flushChunkSamples: 100 });
    const expected = new Map<string, Float64Array>();
    const send = sender(engine, expected, 3);
    const ids = Array.from({ length: 400 }, (_, i) => `clip-${i}`);
    const weights = new Map<string, number>();
    let weightEntries = 0;
    for (let round = 0; round < 30; round++) {
      // Every sample rewritten each round, but not together: a few weight-only changes too.
      await send(ids.slice(0, 200), 0.01 * (round + 1));
      await send(ids.slice(200), 0.02);
      await store.flush();
      if (round % 7 === 3) {
        const some = ids.filter((_, i) => i % 13 === round % 13);
        const ws = Float32Array.from(some, (_, i) => 0.125 * ((i % 7) + 1));
        await reweigh(store, run, some, ws);
        some.forEach((id, i) => weights.set(id, ws[i] as number));
        weightEntries += some.length;
        // Weight entries alone (no batch since the last flush), then records again next round.
        await store.flush();
      }
    }
    const segments = segmentsOf(store, run);
    const stats = store.flushStats();
    // A record here is a 48-byte header and G(z) (64 bytes; no query set, no sums), its frame
    // 136 bytes with the header and the id padded to 8: 30 rounds wrote 400 of them each.
    const FRAME = 16 + 8 + 8 * Math.ceil((48 + 4 * K + HISTORY_TRAILER_BYTES) / 8);
    // Every byte the flushes appended (records, 40-byte weight entries, and each segment's
    // 32-byte header naming run 'r') is either still in a segment or reclaimed: compaction lost
    // nothing and counted nothing twice.
    const created = Math.max(...readdirSync(segments.dir).map((f) => Number.parseInt(f, 10)));
    expect(stats.bytesCompacted + segments.bytes).toBe(30 * 400 * FRAME + 40 * weightEntries + 32 * created);
    expect(stats.bytesCompacted).toBeGreaterThan(25 * 400 * FRAME);
    // Live: one record per sample, plus weight entries newer than their record (none here: every
    // sample got a record after its last weight change).
    expect(segments.liveBytes).toBe(400 * FRAME);
    // Compaction stops at two segments' worth or at twice the live bytes, whichever is more.
    expect(segments.bytes).toBeLessThanOrEqual(Math.max(2 * SEGMENT, 2 * 400 * FRAME));
    const files = readdirSync(segments.dir);
    expect(files.length).toBe(segments.segmentCount);
    expect(files.reduce((t, f) => t + statSync(join(segments.dir, f)).size, 0)).toBe(segments.bytes);
    expect(worstEmbeddingError(store, K, expected)).toBeLessThan(1e-5);
    for (const [id, w] of weights) expect(run.samples.get(id)?.weight).toBe(w);
    const live = snapshot(store, run);
    await store.close();

    const reopened = await Store.open({ dataDir: dir, mapSizeBytes: 1 << 30, segmentBytes: SEGMENT });
    expect(snapshot(reopened, reopened.run('r')!)).toBe(live);
    expect(segmentsOf(reopened, reopened.run('r')!).liveBytes).toBe(400 * FRAME);
    await reopened.close();
  }, 60_000);

  it('keeps a live weight entry through compaction', async () => {
    const SEGMENT = 128 << 10;
    const { dir, store, run, engine } = await openRun('motive-compact-weights-', { segmentBytes: SEGMENT, flushChunkSamples: 50 });
    const expected = new Map<string, Float64Array>();
    const send = sender(engine, expected, 4);
    const ids = Array.from({ length: 100 }, (_, i) => `clip-${i}`);
    await send(ids, 0.5);
    await store.flush();
    // Only weights change for the first ten: their weight entries stay live while the records of
    // the others are rewritten, and compaction must carry them (and their records) along.
    const ws = Float32Array.from({ length: 10 }, (_, i) => 0.0625 * (i + 1));
    await reweigh(store, run, ids.slice(0, 10), ws);
    await store.flush();
    for (let round = 0; round < 40; round++) {
      await send(ids.slice(10), 0.01);
      await store.flush();
    }
    expect(store.flushStats().bytesCompacted).toBeGreaterThan(0);
    const segments = segmentsOf(store, run);
    // No segment from before the rounds is left: the first ten's frames were moved.
    const first = run.samples.get('clip-0')!;
    expect(first.weightAt).toBeGreaterThanOrEqual(0);
    expect(Math.floor(first.at / 2 ** 32)).toBeGreaterThan(1);
    expect(segments.bytes).toBeLessThanOrEqual(Math.max(2 * SEGMENT, 2 * segments.liveBytes));
    const live = snapshot(store, run);
    await store.close();
    const reopened = await Store.open({ dataDir: dir, mapSizeBytes: 1 << 30, segmentBytes: SEGMENT });
    const back = reopened.run('r')!;
    expect(snapshot(reopened, back)).toBe(live);
    expect(Array.from({ length: 10 }, (_, i) => back.samples.get(`clip-${i}`)?.weight)).toEqual(Array.from(ws));
    expect(worstEmbeddingError(reopened, K, expected)).toBeLessThan(1e-5);
    await reopened.close();
  }, 60_000);

  it('a frame failing its checksum or cut short at a segment end is never read; the log replays instead', async () => {
    const { dir, store, run, engine } = await openRun('motive-torn-', {});
    const expected = new Map<string, Float64Array>();
    const send = sender(engine, expected, 5);
    const ids = Array.from({ length: 20 }, (_, i) => `clip-${i}`);
    await send(ids, 0.5);
    await store.flush();
    // Logged and applied, not flushed: a crash now leaves these in the log only.
    await send(ids.slice(0, 5), 0.25);
    const live = snapshot(store, run);
    const segments = segmentsOf(store, run);
    const sample = run.samples.get('clip-0')!;
    // clip-0's frame as written, rebuilt with a newer lsn and another G(z): accepted, it would
    // replace the record and stop the replay of clip-0's logged batch.
    const idBytes = Buffer.byteLength('clip-0');
    const bodyAt = 16 + Math.ceil(idBytes / 8) * 8;
    const frame = Buffer.alloc(bodyAt + Math.ceil(sample.atBytes / 8) * 8);
    segments.read(sample.at - bodyAt, 0, frame);
    frame.writeDoubleLE(1e9, bodyAt + 32);
    frame.writeFloatLE(123, bodyAt + sample.atBytes - HISTORY_TRAILER_BYTES - 4);
    const { crc32 } = await import('node:zlib');
    frame.writeUInt32LE(crc32(frame.subarray(8)), 4);
    const segmentFile = join(segments.dir, readdirSync(segments.dir).sort().at(-1)!);

    const corrupt = tempDir('motive-torn-crc-');
    const cut = tempDir('motive-torn-cut-');
    const whole = tempDir('motive-torn-whole-');
    dirs.push(corrupt, cut, whole);
    for (const d of [corrupt, cut, whole]) cpSync(dir, d.path, { recursive: true });
    const inCopy = (d: { path: string }): string => segmentFile.replace(dir, d.path);
    // One bit flipped after the checksum was taken, then a good frame behind it: both ignored.
    const flipped = Buffer.from(frame);
    flipped[bodyAt + 100] = (flipped[bodyAt + 100] as number) ^ 1;
    appendFileSync(inCopy(corrupt), Buffer.concat([flipped, frame]));
    // Cut short: the first half of the frame.
    appendFileSync(inCopy(cut), frame.subarray(0, frame.length >> 1));
    // The control: the same frame whole is read, and wins.
    appendFileSync(inCopy(whole), frame);

    for (const d of [corrupt, cut]) {
      const copy = await Store.open({ dataDir: d.path, mapSizeBytes: 1 << 30 });
      expect(snapshot(copy, copy.run('r')!)).toBe(live);
      expect(worstEmbeddingError(copy, K, expected)).toBeLessThan(1e-6);
      await copy.close();
    }
    const control = await Store.open({ dataDir: whole.path, mapSizeBytes: 1 << 30 });
    expect(control.embedding('r', 'clip-0', K)![K - 1]).toBe(123);
    await control.close();
    await store.close();
  }, 60_000);

  it('moves a format 4 store’s LMDB sample records and weight entries into segments on start-up', async () => {
    const d = tempDir('motive-format4-');
    dirs.push(d);
    const info = {
      id: 'old',
      dim: 4,
      dtype: 'float32',
      projection: { kind: 'gaussian', seed: '1', dim: 4, fingerprint: 'fp' },
      scoreMode: 'dot',
      worldSize: 1,
      createdAtMs: 0,
    };
    const main = openLmdb({ path: d.path, maxDbs: 16 });
    await main.openDB({ name: 'meta' }).put('format', 4);
    await main
      .openDB({ name: 'runs' })
      .put('old', { info, queryIds: ['q0', 'q1'], weightsVersion: 3, batches: 2, sketches: 4, lastStep: 9 });
    await main.close();
    // Format 4's record layout (docs/store.md), written out by hand.
    const record = (seen: number, weight: number, lsn: number, sums: number[], g: number[]): Buffer => {
      const b = Buffer.alloc(48 + 8 * sums.length + 4 * g.length);
      b.writeUInt32LE(3, 0);
      b.writeUInt32LE(sums.length, 4);
      b.writeDoubleLE(seen, 8);
      b.writeDoubleLE(7, 16);
      b.writeFloatLE(weight, 24);
      b.writeUInt32LE(g.length, 28);
      b.writeDoubleLE(lsn, 32);
      b.writeDoubleLE(
        sums.reduce((t, x) => t + x, 0),
        40,
      );
      sums.forEach((x, j) => b.writeDoubleLE(x, 48 + 8 * j));
      g.forEach((x, j) => b.writeFloatLE(x, 48 + 8 * sums.length + 4 * j));
      return b;
    };
    const weightEntry = (lsn: number, weight: number): Buffer => {
      const b = Buffer.alloc(12);
      b.writeDoubleLE(lsn, 0);
      b.writeFloatLE(weight, 8);
      return b;
    };
    const samplesEnv = openLmdb({ path: join(d.path, 'samples'), maxDbs: 16 });
    const samples = samplesEnv.openDB<Buffer, [string, string]>({ name: 'samples', encoding: 'binary' });
    const weights = samplesEnv.openDB<Buffer, [string, string]>({ name: 'weights', encoding: 'binary' });
    await samples.put(['old', 'a'], record(2, 1, 5, [0.5, -0.25], [1, 2, 3, 4]));
    await samples.put(['old', 'b'], record(1, 0.5, 5, [0.125], [-1, 0, 0.5, 8]));
    await weights.put(['old', 'a'], weightEntry(6, 0.75)); // newer than a's record: its weight
    await weights.put(['old', 'b'], weightEntry(4, 0.25)); // older than b's record: ignored
    await samplesEnv.close();

    const store = await Store.open({ dataDir: d.path, mapSizeBytes: 1 << 30 });
    const run = store.run('old')!;
    const a = run.samples.get('a')!;
    const b = run.samples.get('b')!;
    expect([a.seen, a.weight, Array.from(run.sumsOf(a)), a.lastStep]).toEqual([2, 0.75, [0.5, -0.25], 7]);
    expect([b.seen, b.weight, Array.from(run.sumsOf(b))]).toEqual([1, 0.5, [0.125]]);
    expect(Array.from(store.embedding('old', 'a', 4)!)).toEqual([1, 2, 3, 4]);
    expect(Array.from(store.embedding('old', 'b', 4)!)).toEqual([-1, 0, 0.5, 8]);
    expect(existsSync(join(d.path, 'samples'))).toBe(false);
    await store.close();

    const main2 = openLmdb({ path: d.path, maxDbs: 16 });
    expect(main2.openDB({ name: 'meta' }).get('format')).toBe(STORE_FORMAT_VERSION);
    await main2.close();
    const again = await Store.open({ dataDir: d.path, mapSizeBytes: 1 << 30 });
    expect(again.run('old')!.samples.get('a')?.weight).toBe(0.75);
    expect(Array.from(again.embedding('old', 'b', 4)!)).toEqual([-1, 0, 0.5, 8]);
    await again.close();
  });
});
