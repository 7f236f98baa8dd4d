/**
 * Ingest throughput: sample-sketches/s through the real gRPC stream into the real store (durable
 * group commits), for k ∈ {512, 2048}, m ∈ {8, 64}, batch ∈ {16, 256}, fp16, 1 and 4 ranks.
 * The daemon runs as its own process; trainers send pre-encoded batches as fast as flow control
 * lets them, each rank keeping up to 32 batches unacknowledged. Sample ids are drawn from a pool
 * of 200,000 clips, so most samples are updated repeatedly as the run goes on (read-modify-write of
 * their G(z)). Each case runs `--runs` times on a fresh store; the table shows the best and the spread.
 * `--profile` reruns the target case (k 512, m 64, batch 256, 1 rank) under `node --cpu-prof`
 * and prints the daemon's top self-time functions within the measured window and its main thread
 * by phase, in µs per sketch (profile-phases.ts); `--profile-only` runs just that. `--root DIR`
 * runs the daemon of another checkout (an older commit's worktree) under the same load, for A/B pairs.
 *
 *   npx tsx bench/ingest.ts [--seconds 4] [--runs 2] [--profile] [--profile-only] [--root DIR] [--quick] [--config FILE] [--warm]
 *
 * `--config` starts the daemon with that config file (e.g. larger `store.maxDirtySamples`).
 * `--warm` measures a later epoch: before the window, rank 0 sends every clip of the pool once (not
 * timed), so the window updates samples the run already holds instead of creating most of them
 * (in the default cold run about 150,000 of the 200,000 clips are new during the 8 s). The full run
 * also measures the target case for 30 s, cold and warm: sustained, with the flusher in its steady
 * state.
 *
 * CPU columns: cores busy over the window in the whole daemon and in its main thread (where its
 * JavaScript runs, from /proc/<pid>/task/<pid>/stat), and the same per acknowledged sketch. They
 * bound the rate on any machine: at most 1e6 / (main thread µs/sketch) sketches/s while the main
 * thread does that work alone, and at most cores · 1e6 / (daemon CPU µs/sketch).
 */
import { parseArgs } from 'node:util';
import { encodeFloat16Array } from '../trainer-hooks/ts/index.js';
import { rng } from '../test/helpers/reference.js';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../test/helpers/daemon.js';
import { rawStream } from '../test/helpers/raw-stream.js';
import {
  CACHE_DIR,
  bestOf,
  cpuMs,
  fmt,
  keepSending,
  printProfile,
  report,
  startBenchDaemon,
  scrapeMetric,
  summarizeProfile,
  type ProfileSpan,
} from './lib.js';
import { phaseBudget } from './profile-phases.js';
import { table } from '../daemon/cli/common.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '8' },
    runs: { type: 'string', default: '2' },
    profile: { type: 'boolean' },
    quick: { type: 'boolean' },
    config: { type: 'string' },
    warm: { type: 'boolean' },
    'profile-only': { type: 'boolean' },
    root: { type: 'string' },
  },
});
const WARM = values.warm === true;
const SECONDS = Number(values.seconds);
const RUNS = values.quick ? 1 : Number(values.runs);
const WINDOW = 32;
const POOL = 200_000;

interface Case {
  k: number;
  m: number;
  batch: number;
  ranks: number;
  /** Daemon config file (default: the defaults), and its label in the table. */
  config?: { file: string; label: string };
  /** Seconds measured (default --seconds). */
  seconds?: number;
  /** Every clip of the pool sent once before the window (default --warm). */
  warm?: boolean;
}

interface CaseResult {
  rate: number;
  mbps: number;
  batches: number;
  /** CPU cores busy in the daemon and in this (client) process over the measured window. */
  daemonCores: number;
  /** Of those, the daemon's main thread (JavaScript, onnxruntime's calls, lmdb-js reads). */
  mainCores: number;
  clientCores: number;
  /** The daemon's flusher when the window closed: samples written, samples still dirty. */
  flushed: number;
  dirty: number;
  /** The measured window on CLOCK_MONOTONIC (µs), to cut a profile to it. */
  span: ProfileSpan;
  acked: number;
}

const monoUs = (): number => Number(process.hrtime.bigint() / 1000n);

async function runCase(c: Case, cpuProfDir?: string): Promise<CaseResult> {
  const dir = tempDir('motive-bench-');
  const d = await startBenchDaemon({
    dataDir: dir.path,
    ...(values.root === undefined ? {} : { root: values.root }),
    ...(cpuProfDir === undefined ? {} : { cpuProfDir }),
    ...(c.config === undefined ? {} : { env: { MOTIVE_CONFIG: c.config.file } }),
  });
  const r = rng(c.k + c.m + c.batch);
  // A few distinct pre-encoded payloads, reused with fresh sample ids.
  const payloads = Array.from({ length: 4 }, () => encodeFloat16Array(Float32Array.from({ length: c.batch * c.k }, () => r.normal())));
  const queries = encodeFloat16Array(Float32Array.from({ length: c.m * c.k }, () => r.normal()));
  let acked = 0;
  let bytes = 0;
  const deadline = { at: 0 };
  const streams = Array.from({ length: c.ranks }, () => rawStream(`127.0.0.1:${d.grpcPort}`));
  await Promise.all(
    streams.map(async (s, rank) => {
      s.write({
        hello: {
          runId: 'bench',
          rank,
          worldSize: c.ranks,
          projection: { kind: 'gaussian', seed: 1, dim: c.k, fingerprint: 'b' },
          dtype: 'FLOAT16',
          token: '',
          client: 'bench',
          applyWeights: false,
        },
      });
      await s.next(30_000);
      if (rank === 0)
        s.write({
          queries: { version: 1, step: 0, queryIds: Array.from({ length: c.m }, (_, j) => `q${j}`), groups: [], sketches: queries },
        });
    }),
  );
  /** Each rank's last seq sent before the window. */
  const seqStart = streams.map(() => 0);
  if (c.warm ?? WARM) {
    // Every clip of the pool once, from rank 0, acknowledged before the window opens.
    const s = streams[0] as (typeof streams)[number];
    const total = Math.ceil(POOL / c.batch);
    await keepSending(
      s,
      WINDOW,
      () => {
        const seq = ++seqStart[0]!;
        const ids = Array.from({ length: c.batch }, (_, i) => `clip-${((seq - 1) * c.batch + i) % POOL}`);
        s.write({ batch: { seq, step: seq, lr: 1e-4, sampleIds: ids, sketches: payloads[seq % payloads.length] as Buffer, losses: [] } });
      },
      () => seqStart[0]! < total,
    );
  }
  const started = performance.now();
  const fromUs = monoUs();
  const daemonCpu0 = cpuMs(d.pid);
  const mainCpu0 = cpuMs(d.pid, d.pid);
  const clientCpu0 = process.cpuUsage();
  deadline.at = started + (c.seconds ?? SECONDS) * 1000;
  await Promise.all(
    streams.map(async (s, rank) => {
      let seq = seqStart[rank] as number;
      const rr = rng(rank + 1);
      const send = (): void => {
        seq++;
        const ids = Array.from({ length: c.batch }, () => `clip-${rr.int(POOL)}`);
        const sketches = payloads[seq % payloads.length] as Buffer;
        s.write({ batch: { seq, step: seq, lr: 1e-4, sampleIds: ids, sketches, losses: [] } });
        bytes += sketches.length;
      };
      const acks = await keepSending(s, WINDOW, send, () => performance.now() < deadline.at);
      acked += acks * c.batch;
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  const span = { fromUs, toUs: monoUs() };
  const daemonCores = (cpuMs(d.pid) - daemonCpu0) / 1000 / elapsed;
  const mainCores = (cpuMs(d.pid, d.pid) - mainCpu0) / 1000 / elapsed;
  const cu = process.cpuUsage(clientCpu0);
  const clientCores = (cu.user + cu.system) / 1e6 / elapsed;
  const [flushed, dirty] = await scrapeMetric(d, 'motive_store_flushed_samples_total', 'motive_store_dirty_samples');
  streams.forEach((s) => s.close());
  await d.stop();
  dir.remove();
  return {
    rate: acked / elapsed,
    mbps: bytes / elapsed / 1024 / 1024,
    batches: acked / c.batch,
    daemonCores,
    mainCores,
    clientCores,
    flushed: flushed ?? NaN,
    dirty: dirty ?? NaN,
    span,
    acked,
  };
}

const cases: Case[] = [];
for (const k of values.quick ? [512] : [512, 2048])
  for (const m of values.quick ? [64] : [8, 64])
    for (const batch of values.quick ? [256] : [16, 256])
      for (const ranks of values.quick ? [1] : [1, 4])
        cases.push({
          k,
          m,
          batch,
          ranks,
          ...(values.config === undefined ? {} : { config: { file: values.config, label: values.config } }),
        });
if (values.quick !== true && values.config === undefined && !WARM) {
  // The target case again with room for the whole pool dirty: each sample is then written once
  // per flush however often it was touched (docs/performance.md, sizing).
  const file = join(CACHE_DIR, 'ingest-dirty-256k.json');
  mkdirSync(CACHE_DIR, { recursive: true });
  writeFileSync(file, JSON.stringify({ store: { maxDirtySamples: 262144, flushIntervalMs: 4000 } }));
  for (const ranks of [1, 4])
    cases.push({ k: 512, m: 64, batch: 256, ranks, config: { file, label: 'maxDirtySamples 262144, flushIntervalMs 4000' } });
  // Sustained: the target case for 30 s, long enough for the flusher to reach its steady state
  // (in 8 s it is still catching up with what it did not have to write yet), with most samples
  // new (a first epoch) and with every sample already in the run (a later epoch).
  for (const warm of [false, true]) cases.push({ k: 512, m: 64, batch: 256, ranks: 1, seconds: 30, warm });
}

const rows: Array<Array<string | number>> = [];
for (const c of values['profile-only'] === true ? [] : cases) {
  const runs: CaseResult[] = [];
  for (let r = 0; r < RUNS; r++) runs.push(await runCase(c));
  const rate = bestOf(
    runs.map((x) => x.rate),
    'higher',
  );
  const best = runs.find((x) => x.rate === rate.best)!;
  rows.push([
    c.k,
    c.m,
    c.batch,
    c.ranks,
    c.seconds ?? SECONDS,
    (c.warm ?? WARM) ? 'existing' : 'mostly new',
    Math.round(rate.best),
    Math.round(rate.worst),
    fmt(rate.spreadPct, 0),
    fmt(best.mbps),
    Math.round(best.batches),
    fmt(best.daemonCores, 2),
    fmt(best.mainCores, 2),
    fmt((best.daemonCores * 1e6) / best.rate, 1),
    fmt((best.mainCores * 1e6) / best.rate, 1),
    fmt(best.clientCores, 2),
    best.flushed,
    best.dirty,
    c.config?.label ?? 'defaults',
  ]);
  process.stderr.write(
    `k=${c.k} m=${c.m} batch=${c.batch} ranks=${c.ranks}: ${Math.round(rate.best)} sketches/s (spread ${fmt(rate.spreadPct, 0)} %)\n`,
  );
}
let profile: ReturnType<typeof summarizeProfile> | undefined;
let phases: Array<{ phase: string; ms: number; usPerSketch: number; cpuUsPerSketch: number; pct: number }> | undefined;
let phasesCpu: { mainUsPerSketch: number; rate: number } | undefined;
if (values.profile === true) {
  const profDir = join(CACHE_DIR, 'prof-ingest');
  rmSync(profDir, { recursive: true, force: true });
  mkdirSync(profDir, { recursive: true });
  const profiled = await runCase(
    {
      k: 512,
      m: 64,
      batch: 256,
      ranks: 1,
      ...(values.config === undefined ? {} : { config: { file: values.config, label: values.config } }),
    },
    profDir,
  );
  // The measured window only: start-up (tsx's transform of the sources) is not ingest.
  profile = summarizeProfile(profDir, 12, profiled.span);
  const windowMs = (profiled.span.toUs - profiled.span.fromUs) / 1000;
  const rows = phaseBudget(profDir, profiled.span);
  // The profile samples wall time (a thread the OS has preempted is sampled where it stopped), so
  // on a loaded machine its ms exceed the CPU the thread got: each phase's share of the busy
  // samples is also scaled to the main thread's CPU per sketch from /proc.
  const busyMs = rows.filter((r) => r.phase !== '(idle)').reduce((t, r) => t + r.ms, 0);
  const mainUs = (profiled.mainCores * 1e6) / profiled.rate;
  phases = rows.map((r) => ({
    phase: r.phase,
    ms: Math.round(r.ms),
    usPerSketch: Number(((r.ms * 1000) / profiled.acked).toFixed(2)),
    cpuUsPerSketch: r.phase === '(idle)' ? 0 : Number(((r.ms / busyMs) * mainUs).toFixed(2)),
    pct: Number(((r.ms / windowMs) * 100).toFixed(1)),
  }));
  phasesCpu = { mainUsPerSketch: Number(mainUs.toFixed(2)), rate: Math.round(profiled.rate) };
  process.stderr.write(`profiled run: ${Math.round(profiled.rate)} sketches/s, ${profiled.acked} sketches\n`);
}
report(
  WARM ? 'ingest-warm' : 'ingest',
  `Ingest: sample-sketches/s, fp16, durable commits, best of ${RUNS}; samples: mostly new (a first epoch) or existing (every clip of the pool sent once before the window)`,
  [
    'k',
    'm',
    'batch',
    'ranks',
    'seconds',
    'samples',
    'sketches/s',
    'worst',
    'spread %',
    'MiB/s in',
    'batches',
    'daemon cores',
    'main thread cores',
    'daemon CPU µs/sketch',
    'main thread µs/sketch',
    'client cores',
    'flushed',
    'dirty at end',
    'store config',
  ],
  rows,
  {
    target: '>= 100000 sketches/s at k=512, m=64, fp16, batch 256',
    ...(profile === undefined ? {} : { profile }),
    ...(phases === undefined ? {} : { phases, phasesCpu }),
  },
);
if (profile !== undefined) printProfile('ingest k 512, m 64, batch 256, 1 rank', profile);
if (phases !== undefined)
  process.stdout.write(
    `\nmain thread by phase (profiled window at ${phasesCpu?.rate ?? NaN} sketches/s; main thread CPU ${phasesCpu?.mainUsPerSketch ?? NaN} µs per sketch)\n\n${table(
      ['phase', 'ms sampled', '% of window', 'µs/sketch sampled', 'CPU µs/sketch'],
      phases.map((p) => [p.phase, String(p.ms), p.pct.toFixed(1), p.usPerSketch.toFixed(2), p.cpuUsPerSketch.toFixed(2)]),
    )}`,
  );
