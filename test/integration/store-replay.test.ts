/**
 * Store format 3 recovery in one process: a live store with some samples flushed and some only
 * in the write-ahead log is copied file by file after a durable commit (what a crash at that
 * instant leaves on disk), and the copy, opened and replayed, must hold exactly the live state.
 * Real LMDB in temp dirs, the real engine and onnxruntime kernel.
 */
import { cpSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import type { InfluenceEngine } from '../../daemon/influence/index.js';
import { Store, type RunState, type StoreOptions } from '../../daemon/store/index.js';
import { tempDir } from '../helpers/daemon.js';
import { openStoreRun, reweigh, sampleRows, segmentsOf, worstEmbeddingError, type StoreRun } from '../helpers/store-run.js';
import { rng } from '../helpers/reference.js';

const K = 16;
const M = 3;
const dirs: Array<{ remove: () => void }> = [];

afterAll(() => dirs.forEach((d) => d.remove()));

/** Every sample's evidence and G(z) as exact bytes, and the run's counters. */
function snapshot(store: Store, run: RunState): string {
  const rows = sampleRows(store, run, K);
  return JSON.stringify({ rows, queryIds: run.queryIds, commits: [...run.commits], batches: run.batches, sketches: run.sketches });
}

/** A store in a new temp dir with run `r` (k = K, cosine) in it, and an engine over it. */
function openRun(prefix: string, options: Partial<StoreOptions> = {}): Promise<StoreRun> {
  return openStoreRun(prefix, dirs, K, 'cosine', options);
}

/**
 * 450 distinct samples, each in one batch of 50 (nine batches, lr 0.01 · batch number), submitted
 * to `engine`; returns each sample's expected G(z) = lr · ĝ, ĝ the row normalised (cosine runs),
 * in float64.
 */
async function dirtySamples(
  engine: InfluenceEngine,
  seed: number,
  expected = new Map<string, Float64Array>(),
  firstSeq = 1,
): Promise<Map<string, Float64Array>> {
  const r = rng(seed);
  for (let b = 0; b < 9; b++) {
    const ids = Array.from({ length: 50 }, (_, i) => `clip-${b * 50 + i}`);
    const sketches = Float32Array.from({ length: 50 * K }, () => r.normal());
    const lr = 0.01 * (b + 1);
    ids.forEach((id, i) => {
      const row = Array.from(sketches.subarray(i * K, (i + 1) * K), Number);
      const norm = Math.sqrt(row.reduce((a, x) => a + x * x, 0));
      const before = expected.get(id);
      expected.set(
        id,
        Float64Array.from(row, (x, d) => (before?.[d] ?? 0) + (lr * x) / norm),
      );
    });
    const wire = new Uint8Array(sketches.buffer.slice(0));
    const seq = firstSeq + b;
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
  }
  return expected;
}

describe('store recovery (write-ahead log replay)', () => {
  it('a crash copy taken mid-run, with part of the samples flushed, replays to the live state exactly', async () => {
    // The flusher runs only when asked, so the test decides what is on disk at the copy.
    const {
      dir: live,
      store,
      run,
      engine,
    } = await openRun('motive-replay-', {
      flushIntervalMs: 1e9,
      maxDirtySamples: 1e9,
      flushChunkSamples: 2,
    });
    const r = rng(5);
    const matrix = (rows: number): Float32Array => Float32Array.from({ length: rows * K }, () => r.normal());
    const queries = (version: number, step: number): Promise<unknown> => {
      const sketches = matrix(M);
      return engine.submitQueries({
        runId: 'r',
        version,
        step,
        ids: Array.from({ length: M }, (_, j) => `q${version}-${j}`),
        groups: [],
        sketches,
        bytes: sketches.byteLength,
      });
    };
    let seq = 0;
    const batches = (count: number): Promise<unknown> =>
      Promise.all(
        Array.from({ length: count }, () => {
          seq++;
          const n = 4 + r.int(5);
          // Ids repeat within and across batches; one id twice in a batch is counted twice.
          const ids = Array.from({ length: n }, () => `clip-${r.int(40)}`);
          const sketches = matrix(n);
          const wire = new Uint8Array(sketches.buffer.slice(0));
          return engine.submitBatch({
            runId: 'r',
            rank: 0,
            seq,
            step: seq,
            lr: 0.01 * (1 + (seq % 3)),
            sampleIds: ids,
            sketches,
            wire,
            wireDtype: 'float32' as const,
            bytes: wire.byteLength,
          });
        }),
      );

    await batches(5); // before any query set: counted in seen and G(z) only
    await queries(1, 0);
    await batches(20);
    await store.flush(); // these are now in the samples environment; the log is trimmed
    expect(store.flushStats()).toMatchObject({ dirtySamples: 0, logEntries: 0 });
    await queries(2, 26); // adds query ids: later records have more sums
    await batches(20);
    // A weight change, logged like the weighting service does it.
    const ids = ['clip-1', 'clip-2', 'clip-3'].filter((id) => run.samples.has(id));
    const weights = Float32Array.from(ids, (_, i) => 0.25 * (i + 1));
    const lsn = await store.commit((tx) => {
      tx.updateRun(run, { weightsVersion: run.weightsVersion + 1 });
      return tx.appendWeights('r', ids, weights);
    });
    store.applyWeights(run, ids, weights, lsn);
    run.weightsVersion++;
    // One flush cycle racing ingest (two records per transaction, so the batches interleave):
    // records written during it hold log entries newer than the cycle's start, which the cycle
    // does not trim, so recovery must skip those entries for those samples.
    const cycle = (store as unknown as { flusher: { flushCycle: () => Promise<void> } }).flusher.flushCycle();
    await Promise.all([cycle, batches(10)]);
    await engine.drained();
    const stats = store.flushStats();
    expect(stats.dirtySamples).toBeGreaterThan(0);
    expect(stats.logEntries).toBeGreaterThan(0);

    const crash = tempDir('motive-replay-crash-');
    dirs.push(crash);
    cpSync(live, crash.path, { recursive: true });
    const recovered = await Store.open({ dataDir: crash.path, mapSizeBytes: 1 << 30 });
    const back = recovered.run('r')!;
    expect(snapshot(recovered, back)).toBe(snapshot(store, run));
    expect(back.weightsVersion).toBe(run.weightsVersion);

    // A clean close flushes everything; opening again replays nothing and changes nothing.
    await recovered.close();
    const reopened = await Store.open({ dataDir: crash.path, mapSizeBytes: 1 << 30 });
    expect(reopened.flushStats()).toMatchObject({ dirtySamples: 0, logEntries: 0 });
    expect(snapshot(reopened, reopened.run('r')!)).toBe(snapshot(store, run));
    // Segments hold several records of most samples: the int8 mirror still has one row per sample, its own.
    const again = reopened.run('r')!;
    const mirrorIds = [...again.mirror.blocksView()].flatMap((b) => b.ids);
    expect(mirrorIds.length).toBe(again.samples.size);
    for (const s of again.samples.values()) expect(mirrorIds[s.mirrorSlot]).toBe(s.id);
    await reopened.close();
    await store.close();
  }, 60_000);

  it('a commit whose mutate throws after writing writes nothing, in memory or on disk', async () => {
    const { dir, store, run } = await openRun('motive-commit-abort-');
    let failedLsn = 0;
    await expect(
      store.commit((tx) => {
        failedLsn = tx.appendWeights('r', ['clip-1'], Float32Array.of(0.5));
        tx.putCommit('r', 7, 99);
        tx.updateRun(run, { addBatches: 5, addSketches: 50, lastStep: 9 });
        throw new Error('mutate failed after writing');
      }),
    ).rejects.toThrow(/mutate failed after writing/);
    // The LSN it took is free again, and the run's persisted counters are as before.
    const lsn = await store.commit((tx) => {
      tx.updateRun(run, { lastStep: 1 });
      return tx.appendWeights('r', ['clip-2'], Float32Array.of(0.25));
    });
    expect(lsn).toBe(failedLsn);
    await store.close();
    const reopened = await Store.open({ dataDir: dir, mapSizeBytes: 1 << 30 });
    const back = reopened.run('r')!;
    expect(back.commits.get(7)).toBeUndefined();
    expect({ batches: back.batches, sketches: back.sketches, lastStep: back.lastStep }).toEqual({ batches: 0, sketches: 0, lastStep: 1 });
    await reopened.close();
  });

  it('writes each flush chunk in one append, and the records hold every delta', async () => {
    const CHUNK = 200;
    const { store, run, engine } = await openRun('motive-flush-chunk-', {
      flushIntervalMs: 1e9,
      maxDirtySamples: 1e9,
      flushChunkSamples: CHUNK,
    });
    // Three chunks (200, 200, 50), the first two built over four event-loop turns each (slices of 64).
    const expected = await dirtySamples(engine, 9);
    const segments = segmentsOf(store, run);
    const append = segments.append.bind(segments);
    let appends = 0;
    segments.append = (buffers, ready) => {
      appends++;
      return append(buffers, ready);
    };
    await store.flush();
    expect(appends).toBe(3);
    expect(store.flushStats()).toMatchObject({ dirtySamples: 0, logEntries: 0 });
    expect(worstEmbeddingError(store, K, expected)).toBeLessThan(1e-6);
    expect(run.samples.size).toBe(450);
    await store.close();
  }, 60_000);

  it('writes a flush chunk only once the log commits queued before its write are durable', async () => {
    // Every commit takes 150 ms or more here: a flush chunk's write must wait for the one in flight.
    const { store, run, engine } = await openRun('motive-flush-after-log-', {
      flushIntervalMs: 1e9,
      maxDirtySamples: 1e9,
      commitDelayMs: 150,
    });
    const expected = await dirtySamples(engine, 12);
    const segments = segmentsOf(store, run);
    const append = segments.append.bind(segments);
    const writes: number[] = [];
    segments.append = (buffers, ready) =>
      append(buffers, async () => {
        await ready?.();
        writes.push(performance.now());
      });
    let committedAt = Infinity;
    const commit = store
      .commit((tx) => tx.updateRun(run, { weightsVersion: run.weightsVersion + 1 }))
      .then(() => (committedAt = performance.now()));
    await store.flush();
    await commit;
    expect(writes.length).toBeGreaterThan(0);
    expect(writes[0]).toBeGreaterThanOrEqual(committedAt);
    expect(store.flushStats()).toMatchObject({ dirtySamples: 0, logEntries: 0 });
    expect(worstEmbeddingError(store, K, expected)).toBeLessThan(1e-6);
    await store.close();
  }, 60_000);

  it('flushes a weight change alone as a weight entry, not its record; a later record supersedes it', async () => {
    const { dir, store, run, engine } = await openRun('motive-weight-entry-', { flushIntervalMs: 1e9, maxDirtySamples: 1e9 });
    const r = rng(12);
    let seq = 0;
    const batch = async (ids: string[]): Promise<void> => {
      seq++;
      const sketches = Float32Array.from({ length: ids.length * K }, () => r.normal());
      const wire = new Uint8Array(sketches.buffer.slice(0));
      await engine.submitBatch({
        runId: 'r',
        rank: 0,
        seq,
        step: seq,
        lr: 0.01,
        sampleIds: ids,
        sketches,
        wire,
        wireDtype: 'float32' as const,
        bytes: wire.byteLength,
      });
    };
    const reweighTo = (ids: string[], ws: number[]): Promise<void> => reweigh(store, run, ids, Float32Array.from(ws));
    const segments = segmentsOf(store, run);
    const sample = (id: string): { at: number; atBytes: number; weightAt: number } => run.samples.get(id)!;
    const read = (at: number, bytes: number): Buffer => {
      const out = Buffer.alloc(bytes);
      segments.read(at, 0, out);
      return out;
    };
    const record = (id: string): Buffer => read(sample(id).at, sample(id).atBytes);
    await batch(Array.from({ length: 10 }, (_, i) => `clip-${i}`));
    await store.flush();
    const before = [record('clip-1'), record('clip-2')];
    const at = [sample('clip-1').at, sample('clip-2').at];
    const bytes = segments.bytes;

    await reweighTo(['clip-1', 'clip-2'], [0.25, 0.5]);
    await store.flush();
    // The records are where and as they were; the weights are in entries of 40 bytes each (a
    // 16-byte header, the 6-byte id padded to 8, lsn and weight in 16).
    expect([sample('clip-1').at, sample('clip-2').at]).toEqual(at);
    expect(record('clip-1').equals(before[0] as Buffer)).toBe(true);
    expect(record('clip-2').equals(before[1] as Buffer)).toBe(true);
    expect(segments.bytes - bytes).toBe(2 * 40);
    expect(read(sample('clip-1').weightAt, 16).readFloatLE(8)).toBe(0.25);
    expect(store.flushStats()).toMatchObject({ dirtySamples: 0, logEntries: 0 });

    // clip-1's weight changes again and a batch touches it: its record is written, with the new
    // weight and a newer lsn than its (now stale) entry.
    await reweighTo(['clip-1'], [0.75]);
    await batch(['clip-1', 'clip-5']);
    await store.flush();
    expect(record('clip-1').equals(before[0] as Buffer)).toBe(false);
    expect(sample('clip-1').weightAt).toBe(-1);
    expect(read(sample('clip-2').weightAt, 16).readFloatLE(8)).toBe(0.5);
    const live = snapshot(store, run);
    expect(run.samples.get('clip-1')?.weight).toBe(0.75);
    await store.close();

    const reopened = await Store.open({ dataDir: dir, mapSizeBytes: 1 << 30 });
    const back = reopened.run('r')!;
    expect(snapshot(reopened, back)).toBe(live);
    expect([back.samples.get('clip-1')?.weight, back.samples.get('clip-2')?.weight]).toEqual([0.75, 0.5]);
    expect(reopened.flushStats()).toMatchObject({ dirtySamples: 0, logEntries: 0 });
    await reopened.close();
  }, 60_000);

  it('a flush chunk whose write fails leaves it, and the chunk built behind it, dirty; the next cycle writes every delta', async () => {
    const CHUNK = 200;
    const { store, engine } = await openRun('motive-flush-fail-', {
      flushIntervalMs: 1e9,
      maxDirtySamples: 1e9,
      flushChunkSamples: CHUNK,
    });
    const expected = await dirtySamples(engine, 10);
    // The first chunk's append fails after 50 ms: by then the second chunk is built.
    const segments = segmentsOf(store, store.run('r')!);
    const append = segments.append.bind(segments);
    let handed = 0;
    segments.append = (buffers) => {
      handed++;
      if (handed > 1) return append(buffers);
      return new Promise((_, reject) => setTimeout(() => reject(new Error('injected write failure')), 50));
    };
    await expect(store.flush()).rejects.toThrow('injected write failure');
    expect(handed, 'the chunk built behind the failed one is not written').toBe(1);
    expect(store.flushStats()).toMatchObject({ dirtySamples: 450, logEntries: 9 });
    segments.append = append;
    await store.flush();
    expect(store.flushStats()).toMatchObject({ dirtySamples: 0, logEntries: 0 });
    expect(worstEmbeddingError(store, K, expected)).toBeLessThan(1e-6);
    await store.close();
  }, 60_000);

  it('a record that cannot be read back fails its flush with every sample of the chunk still dirty; the next cycle writes every delta', async () => {
    const { dir, store, run, engine } = await openRun('motive-flush-read-fail-', {
      flushIntervalMs: 1e9,
      maxDirtySamples: 1e9,
      flushChunkSamples: 200,
    });
    const expected = await dirtySamples(engine, 13);
    await store.flush();
    // The same 450 samples again: each flush now reads its record back to add the delta to.
    await dirtySamples(engine, 14, expected, 10);
    const segments = segmentsOf(store, run);
    const read = segments.read.bind(segments);
    let reads = 0;
    segments.read = (loc, skip, out) => {
      if (++reads === 100) throw new Error('injected read failure');
      read(loc, skip, out);
    };
    await expect(store.flush()).rejects.toThrow('injected read failure');
    // The 99 records built before the failure are dirty again, not clean and never written.
    expect(store.flushStats()).toMatchObject({ dirtySamples: 450, logEntries: 9 });
    segments.read = read;
    await store.flush();
    expect(store.flushStats()).toMatchObject({ dirtySamples: 0, logEntries: 0 });
    expect(worstEmbeddingError(store, K, expected)).toBeLessThan(1e-6);
    await store.close();
    const reopened = await Store.open({ dataDir: dir, mapSizeBytes: 1 << 30 });
    expect(worstEmbeddingError(reopened, K, expected)).toBeLessThan(1e-6);
    await reopened.close();
  }, 60_000);
});
