/**
 * The cost of the per-sample score history (docs/store.md, "Score history") at `--samples`
 * (default 1M) samples, in-process on a real store in a temp dir:
 *
 * - memory: the history keeps nothing per sample at rest; a dirty sample holds its unwritten
 *   points (`HistoryPending`). Measured on the V8 heap for `--samples` dirty samples holding 1 and
 *   32 points (run with `--expose-gc`, as below, for exact heap figures);
 * - store: every record carries a fixed 772-byte trailer. The run's batches go through the real
 *   commit / apply / flush path (each sample in two batches, k = `--k`, 8 queries), then the
 *   segments' live bytes per sample are read back, and the trailer's share of a record at
 *   k = 512, m = 64 is stated from the layout;
 * - reads: `Store.sampleHistory` of clean samples (one 772-byte `pread`) and dirty ones.
 *
 *   npx tsx --expose-gc bench/history.ts [--samples 1000000] [--k 16]
 */
import { parseArgs } from 'node:util';
import { Store, type QuerySetRecord, type SampleState } from '../daemon/store/index.js';
import { sampleRecordBytes } from '../daemon/store/codec.js';
import { HISTORY_POINTS, HISTORY_TRAILER_BYTES, HistoryPending, appendToTrailer, writeHistoryTrailer } from '../daemon/store/history.js';
import { tempDir } from '../test/helpers/daemon.js';
import { segmentsOf } from '../test/helpers/store-run.js';
import { filler, sampleId } from './fill.js';
import { fmt, quantile, report } from './lib.js';

const { values } = parseArgs({ options: { samples: { type: 'string', default: '1000000' }, k: { type: 'string', default: '16' } } });
const N = Number(values.samples);
const K = Number(values.k);
const M = 8;
const BATCH = 4096;
const MiB = 1024 ** 2;
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) process.stderr.write('run with --expose-gc for exact heap figures\n');
const heap = (): number => {
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed;
};
const rows: Array<Array<string | number>> = [];

// Memory: the unwritten points of N dirty samples, 1 and HISTORY_POINTS each.
{
  const samples = Array.from({ length: N }, (_, i) => ({ id: sampleId(i), seen: 0, total: 0 }) as unknown as SampleState);
  const pending = new HistoryPending();
  const before = heap();
  for (const s of samples) {
    s.seen++;
    pending.add(s, 1, 1);
  }
  const one = heap();
  for (let p = 1; p < HISTORY_POINTS; p++)
    for (const s of samples) {
      s.seen++;
      pending.add(s, p + 1, 1);
    }
  const full = heap();
  // Keeps the table alive through the measurement above (V8 would collect it once unused).
  if (pending.peek(samples[0] as SampleState).length !== HISTORY_POINTS) throw new Error('points were thinned');
  rows.push(['heap per dirty sample, 1 unwritten point', `${fmt((one - before) / N, 0)} B`, `${fmt((one - before) / MiB, 0)} MiB at ${N}`]);
  rows.push([
    `heap per dirty sample, ${HISTORY_POINTS} unwritten points`,
    `${fmt((full - before) / N, 0)} B`,
    `${fmt((full - before) / MiB, 0)} MiB at ${N}; ${fmt((((full - before) / N) * 65_536) / MiB, 0)} MiB at the default 65,536 dirty`,
  ]);
  samples.length = 0;
}

// The flusher's CPU per record for the history: copy the written trailer, add one point, thin.
{
  const written = Buffer.alloc(HISTORY_TRAILER_BYTES);
  writeHistoryTrailer(
    written,
    0,
    Array.from({ length: HISTORY_POINTS }, (_, j) => ({ i: j, step: j, total: j * 1e-3, weight: 1 })),
  );
  const record = Buffer.alloc(HISTORY_TRAILER_BYTES);
  const rounds = 1_000_000;
  const t = performance.now();
  for (let r = 0; r < rounds; r++) {
    const seen = HISTORY_POINTS + 1 + (r % 4096);
    record.set(written);
    appendToTrailer(record, 0, [seen - 1, seen, 0, 1], seen);
  }
  const us = ((performance.now() - t) * 1000) / rounds;
  rows.push([
    'flusher CPU per record for the history (copy, add a point, thin)',
    `${fmt(us, 2)} µs`,
    `${fmt((us * N) / 1e6, 1)} s of main thread per ${N} records`,
  ]);
}

// Store: N samples through the real commit / apply / flush path.
const dir = tempDir('motive-bench-history-');
try {
  const store = await Store.open({ dataDir: dir.path, mapSizeBytes: 64 * 1024 ** 3, flushIntervalMs: 1e9, maxDirtySamples: 1e9 });
  const run = await store.createRun({
    id: 'bench',
    dim: K,
    dtype: 'float32',
    projection: { kind: 'gaussian', seed: '1', dim: K, fingerprint: 'bench' },
    scoreMode: 'dot',
    worldSize: 1,
    createdAtMs: 0,
  });
  const ids = Array.from({ length: M }, (_, j) => `q${j}`);
  const qs: QuerySetRecord = {
    version: 1,
    step: 0,
    ids,
    groups: [],
    columns: Int32Array.from(ids, (id) => run.queryColumn(id)),
    sketches: new Float32Array(M * K),
    receivedAtMs: 0,
  };
  await store.commit((tx) => {
    tx.putQuerySet('bench', qs);
    tx.putRun(run);
  });
  run.addQuerySet(qs);
  const rand = filler(7);
  let step = 0;
  const batch = async (from: number, to: number): Promise<void> => {
    const sampleIds = Array.from({ length: to - from }, (_, i) => sampleId(from + i));
    const n = sampleIds.length;
    const sketches = Float32Array.from({ length: n * K }, rand);
    const products = Float32Array.from({ length: n * M }, rand);
    const lr = 1e-3;
    step++;
    const lsn = await store.commit((tx) =>
      tx.appendBatch('bench', { step, lr, sampleIds, wire: new Uint8Array(sketches.buffer), wireDtype: 'float32', querySet: qs, products }),
    );
    store.applyBatch(run, { sampleIds, step, lr, sketches, querySet: qs, products }, lsn);
  };
  let flushMs = 0;
  for (let pass = 0; pass < 2; pass++) {
    for (let at = 0; at < N; at += BATCH) await batch(at, Math.min(N, at + BATCH));
    const t = performance.now();
    await store.flush();
    flushMs = performance.now() - t;
  }
  const segments = segmentsOf(store, run);
  const idBytes = Buffer.byteLength(sampleId(0));
  const frame = (body: number): number => 16 + Math.ceil(idBytes / 8) * 8 + Math.ceil(body / 8) * 8;
  rows.push([
    `live record bytes per sample (k = ${K}, m = ${M})`,
    `${fmt(segments.liveBytes / N, 0)} B`,
    `${fmt(segments.liveBytes / MiB, 0)} MiB at ${N}, of which the history trailer ${fmt((N * HISTORY_TRAILER_BYTES) / MiB, 0)} MiB`,
  ]);
  const big = frame(sampleRecordBytes(64, 512));
  const bigNoHistory = frame(sampleRecordBytes(64, 512) - HISTORY_TRAILER_BYTES);
  rows.push([
    'record frame at k = 512, m = 64 (layout)',
    `${big} B (${bigNoHistory} B without history, +${fmt((100 * (big - bigNoHistory)) / bigNoHistory, 0)} %)`,
    `${fmt((N * (big - bigNoHistory)) / MiB, 0)} MiB more at ${N}`,
  ]);
  rows.push([
    'second flush of every sample (reads each record’s history back)',
    `${fmt(flushMs, 0)} ms`,
    `${fmt(N / (flushMs / 1000), 0)} records/s`,
  ]);

  // Reads: clean samples, then a few thousand dirty again.
  const timeReads = (count: number, from: number): number[] => {
    const out: number[] = [];
    for (let i = 0; i < count; i++) {
      const id = sampleId((from + i * 7919) % N);
      const t = performance.now();
      const h = store.sampleHistory('bench', id);
      out.push((performance.now() - t) * 1000);
      if (h?.length !== 2) throw new Error(`${id}: ${h?.length} points`);
    }
    return out.sort((a, b) => a - b);
  };
  const clean = timeReads(10_000, 0);
  rows.push(['sampleHistory, clean sample', `${fmt(quantile(clean, 0.5), 1)} µs median`, `${fmt(quantile(clean, 0.99), 1)} µs p99`]);
  const rss = process.memoryUsage().rss;
  rows.push([`process RSS with the ${N}-sample store open`, `${fmt(rss / MiB, 0)} MiB`, '(informational)']);
  await store.close();
} finally {
  dir.remove();
}

report('history', `Score history cost at ${N} samples (K = ${HISTORY_POINTS} points)`, ['what', 'per sample', 'total'], rows);
