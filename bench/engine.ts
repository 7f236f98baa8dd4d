/**
 * The ingest path without the network: in this process, pre-encoded fp16 batches are decoded and
 * submitted to the influence engine (scoring with onnxruntime, the durable log commit, the apply,
 * the background flusher) on a real store in a temp directory, keeping `--window` batches
 * unacknowledged. Set beside `bench/ingest.ts` (the same case through gRPC and a daemon process),
 * it separates the engine's cost from the transport's. Reports sketches/s, the main thread's busy
 * time per sketch (event-loop utilisation) and the process's CPU per sketch.
 *
 *   npx tsx bench/engine.ts [--seconds 8] [--runs 2] [--k 512] [--m 64] [--batch 256] [--pool 200000] [--window 32]
 */
import { parseArgs } from 'node:util';
import { InfluenceEngine, MatMulKernel, decodeFiniteSketches } from '../daemon/influence/index.js';
import { createLogger } from '../daemon/shared/index.js';
import { Store } from '../daemon/store/index.js';
import { encodeFloat16Array } from '../trainer-hooks/ts/index.js';
import { tempDir } from '../test/helpers/daemon.js';
import { rng } from '../test/helpers/reference.js';
import { bestOf, fmt, report } from './lib.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '8' },
    runs: { type: 'string', default: '2' },
    k: { type: 'string', default: '512' },
    m: { type: 'string', default: '64' },
    batch: { type: 'string', default: '256' },
    pool: { type: 'string', default: '200000' },
    window: { type: 'string', default: '32' },
  },
});
const SECONDS = Number(values.seconds);
const RUNS = Number(values.runs);
const K = Number(values.k);
const M = Number(values.m);
const BATCH = Number(values.batch);
const POOL = Number(values.pool);
const WINDOW = Number(values.window);

interface RunResult {
  rate: number;
  mainUsPerSketch: number;
  cpuUsPerSketch: number;
  flushed: number;
}

async function once(seed: number): Promise<RunResult> {
  const dir = tempDir('motive-bench-engine-');
  const store = await Store.open({ dataDir: dir.path, mapSizeBytes: 64 * 1024 ** 3 });
  const kernel = await MatMulKernel.create({ threads: 1 });
  const engine = new InfluenceEngine(store, kernel, createLogger('error'), {
    maxGroupBytes: 64 * 1024 * 1024,
    scanChunkSamples: 2048,
    maxSamplesPerRun: 50_000_000,
  });
  try {
    await store.createRun({
      id: 'bench',
      dim: K,
      dtype: 'float16',
      projection: { kind: 'gaussian', seed: '1', dim: K, fingerprint: 'b' },
      scoreMode: 'cosine',
      worldSize: 1,
      createdAtMs: Date.now(),
    });
    const r = rng(seed);
    const payloads = Array.from({ length: 4 }, () => encodeFloat16Array(Float32Array.from({ length: BATCH * K }, () => r.normal())));
    const queries = Float32Array.from({ length: M * K }, () => r.normal());
    await engine.submitQueries({
      runId: 'bench',
      version: 1,
      step: 0,
      ids: Array.from({ length: M }, (_, j) => `q${j}`),
      groups: [],
      sketches: queries,
      bytes: queries.byteLength,
    });
    let done = 0;
    let seq = 0;
    const inflight = new Set<Promise<void>>();
    const elu0 = performance.eventLoopUtilization();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const end = t0 + SECONDS * 1000;
    while (performance.now() < end) {
      while (inflight.size < WINDOW) {
        seq++;
        const wire = payloads[seq % payloads.length] as Buffer;
        const ids = Array.from({ length: BATCH }, () => `clip-${r.int(POOL)}`);
        // Decoded and normalised in one pass, as the ingest server does for a cosine run.
        const sketches = decodeFiniteSketches(wire, 'float16', BATCH * K, engine.sketchBuffers, K);
        if (sketches === undefined) throw new Error('payload is not finite');
        const p: Promise<void> = engine
          .submitBatch({
            runId: 'bench',
            rank: 0,
            seq,
            step: seq,
            lr: 1e-4,
            sampleIds: ids,
            sketches,
            normalized: true,
            wire,
            wireDtype: 'float16',
            bytes: wire.length + 64 * BATCH,
          })
          .then(() => {
            done += BATCH;
            inflight.delete(p);
          });
        inflight.add(p);
      }
      await Promise.race(inflight);
    }
    const seconds = (performance.now() - t0) / 1000;
    const elu = performance.eventLoopUtilization(elu0);
    const cpu = process.cpuUsage(cpu0);
    await Promise.all(inflight);
    return {
      rate: done / seconds,
      mainUsPerSketch: (elu.active * 1000) / done,
      cpuUsPerSketch: (cpu.user + cpu.system) / done,
      flushed: store.flushStats().samplesFlushed,
    };
  } finally {
    await store.close();
    await kernel.close();
    dir.remove();
  }
}

const results: RunResult[] = [];
for (let run = 1; run <= RUNS; run++) {
  const res = await once(run);
  results.push(res);
  process.stderr.write(`run ${run}: ${Math.round(res.rate)} sketches/s\n`);
}
const rate = bestOf(
  results.map((x) => x.rate),
  'higher',
);
report(
  'engine',
  `Ingest path in process (no gRPC): k ${K}, m ${M}, batch ${BATCH}, fp16, pool ${POOL}, ${WINDOW} batches in flight, ${SECONDS} s per run`,
  ['run', 'sketches/s', 'main thread µs/sketch', 'process CPU µs/sketch', 'flushed'],
  results.map((x, i) => [i + 1, Math.round(x.rate), fmt(x.mainUsPerSketch), fmt(x.cpuUsPerSketch), x.flushed]),
  { best: rate.best, spreadPct: rate.spreadPct },
);
