/**
 * Feedback latency at a steady sketch rate: one trainer rank sends batches on a fixed schedule
 * (10,000 sample-sketches/s, and 2,500/s and 500/s, rates below this machine's ingest capacity: batches of
 * 256, k = 512, m = 64 queries, fp16) through the real
 * gRPC stream to a daemon child process with `{"weights": {"minSeen": 1, "intervalMs": 50}}` (`--interval-ms` changes the interval; `--sync-commits` adds `{"store": {"syncCommits": true}}` and writes `feedback-sync-commits.json`; `--batch-updates off` turns `weights.batchUpdates` off and writes `feedback-no-batch-updates.json`).
 *
 *   Ack latency           = Ack received − batch sent.
 *   WeightUpdate latency  = time from sending a batch to the first WeightUpdate received after that
 *                           batch's Ack whose version is newer than the newest version the rank had
 *                           received when the Ack arrived (so it reflects a recompute that could
 *                           include the batch).
 *
 * The first 2 s are warm-up and not counted. Sample ids are drawn from a pool of 100,000 clips.
 * Before each run the disk alone is measured at the same batch rate for as long as the run is
 * counted (`diskProbe`): the `disk` columns, and the run's Ack p99 as a multiple of the disk's.
 * The `wait` … `commit` columns are the daemon's own mean ms per step of the Ack path after the
 * warm-up (`motive_ingest_stage_seconds`, docs/observability.md), and `apply` the group's apply,
 * which follows its Acks; the rest of an Ack's latency is decoding before and transport after.
 *
 *   npx tsx bench/feedback.ts [--rates 10000,2500,500] [--interval-ms 50] [--sync-commits] [--batch-updates on|off] [--seconds 15] [--runs 2] [--quick]
 *                             [--cpu-prof DIR]   (the daemon under node --cpu-prof, its profiles written to DIR)
 *                             [--store JSON]     (merged into the daemon's `store` config, e.g. '{"flushChunkSamples": 512}')
 *                             [--root DIR]       (the daemon of another checkout, e.g. an older commit's worktree, for A/B pairs)
 *                             [--trace]          (the daemon's Ack-path trace: where the median and the slowest 1 % of Acks
 *                                                 spent their time, and what ran meanwhile; daemon/shared/trace-summary.ts)
 */
import { closeSync, fdatasyncSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { encodeFloat16Array } from '../trainer-hooks/ts/index.js';
import { rng } from '../test/helpers/reference.js';
import { tempDir } from '../test/helpers/daemon.js';
import { rawStream } from '../test/helpers/raw-stream.js';
import { table } from '../daemon/cli/common.js';
import { SUMMARY_HEADERS, readAckTrace, summaryRows, type AckTraceSummary } from '../daemon/shared/trace-summary.js';
import { bestOf, fmt, quantile, report, scrapeMetric, startBenchDaemon, type BenchDaemon } from './lib.js';

const { values } = parseArgs({
  options: {
    rates: { type: 'string', default: '10000,2500,500' },
    seconds: { type: 'string', default: '15' },
    runs: { type: 'string', default: '2' },
    batch: { type: 'string', default: '256' },
    'interval-ms': { type: 'string', default: '50' },
    'sync-commits': { type: 'boolean' },
    'batch-updates': { type: 'string', default: 'on' },
    'cpu-prof': { type: 'string' },
    trace: { type: 'boolean' },
    store: { type: 'string' },
    quick: { type: 'boolean' },
    root: { type: 'string' },
  },
});
const RATES = values.rates.split(',').map(Number);
const SECONDS = values.quick ? 6 : Number(values.seconds);
const RUNS = values.quick ? 1 : Number(values.runs);
const BATCH = Number(values.batch);
/** weights.intervalMs of the daemon under test. */
const INTERVAL_MS = Number(values['interval-ms']);
/** store.syncCommits of the daemon under test. */
const SYNC_COMMITS = values['sync-commits'] === true;
if (values['batch-updates'] !== 'on' && values['batch-updates'] !== 'off')
  throw new Error(`--batch-updates must be on or off, got ${values['batch-updates']}`);
/** weights.batchUpdates of the daemon under test. */
const BATCH_UPDATES = values['batch-updates'] === 'on';
/** More of the daemon's `store` config (--store). */
const STORE_CONFIG = JSON.parse(values.store ?? '{}') as Record<string, unknown>;
const K = 512;
const M = 64;
const POOL = 100_000;
const WARMUP_MS = 2000;

interface RunResult {
  sentRate: number;
  ack: number[];
  wu: number[];
  batches: number;
  noUpdate: number;
  updates: number;
  avgUpdateIds: number;
  /** The daemon's own view (prom-client default metrics): GC pause time and worst event-loop lag. */
  gcMs: number;
  loopLagMaxMs: number;
  /** Mean ms per Ack-path stage after the warm-up (the daemon's motive_ingest_stage_seconds). */
  stages: Record<Stage, number>;
  /** With --trace: the daemon's Ack-path trace, summarised. */
  trace: AckTraceSummary | undefined;
}

/** The daemon's Ack-path stages (docs/observability.md, motive_ingest_stage_seconds). */
const STAGES = ['wait', 'score', 'queued', 'commit', 'apply'] as const;
type Stage = (typeof STAGES)[number];

/** Cumulative sum and count of each stage's histogram. */
async function scrapeStages(d: BenchDaemon): Promise<Record<Stage, { sum: number; count: number }>> {
  const names = STAGES.flatMap((st) => [
    `motive_ingest_stage_seconds_sum\\{stage="${st}"\\}`,
    `motive_ingest_stage_seconds_count\\{stage="${st}"\\}`,
  ]);
  const v = await scrapeMetric(d, ...names);
  return Object.fromEntries(STAGES.map((st, i) => [st, { sum: v[2 * i] ?? NaN, count: v[2 * i + 1] ?? NaN }])) as Record<
    Stage,
    { sum: number; count: number }
  >;
}

async function once(rate: number, seed: number): Promise<RunResult> {
  const dir = tempDir('motive-bench-feedback-');
  const configFile = join(dir.path, 'config.json');
  const traceFile = join(dir.path, 'ack-trace.txt');
  writeFileSync(
    configFile,
    JSON.stringify({
      weights: { minSeen: 1, intervalMs: INTERVAL_MS, batchUpdates: BATCH_UPDATES },
      store: { ...(SYNC_COMMITS ? { syncCommits: true } : {}), ...STORE_CONFIG },
    }),
  );
  const d = await startBenchDaemon({
    dataDir: join(dir.path, 'store'),
    env: { MOTIVE_CONFIG: configFile, ...(values.trace === true ? { MOTIVE_TRACE_FILE: traceFile } : {}) },
    ...(values['cpu-prof'] === undefined ? {} : { cpuProfDir: values['cpu-prof'] }),
    ...(values.root === undefined ? {} : { root: values.root }),
  });
  const r = rng(seed);
  const payloads = Array.from({ length: 4 }, () => encodeFloat16Array(Float32Array.from({ length: BATCH * K }, () => r.normal())));
  const queries = encodeFloat16Array(Float32Array.from({ length: M * K }, () => r.normal()));
  const s = rawStream(`127.0.0.1:${d.grpcPort}`);
  s.write({
    hello: {
      runId: 'feedback',
      rank: 0,
      worldSize: 1,
      projection: { kind: 'gaussian', seed: 1, dim: K, fingerprint: 'b' },
      dtype: 'FLOAT16',
      token: '',
      client: 'bench',
      applyWeights: true,
    },
  });
  const welcome = await s.next(30_000);
  if (welcome === 'end' || welcome.welcome === undefined) throw new Error('no Welcome');
  s.write({ queries: { version: 1, step: 0, queryIds: Array.from({ length: M }, (_, j) => `q${j}`), groups: [], sketches: queries } });

  const sentAt = new Map<number, number>();
  const ackAt = new Map<number, number>();
  const versionAtAck = new Map<number, number>();
  const updates: Array<{ at: number; version: number; ids: number }> = [];
  let newestVersion = welcome.welcome.weightsVersion;
  let done = false;
  const intervalMs = (BATCH / rate) * 1000;
  const total = Math.floor((SECONDS * 1000) / intervalMs);
  const receiver = (async () => {
    for (;;) {
      let msg;
      try {
        msg = await s.next(done && ackAt.size >= total ? 1000 : 120_000);
      } catch {
        return; // every batch acknowledged and then 1 s without a message: finished
      }
      const now = performance.now();
      if (msg === 'end') return;
      if (msg.error) throw new Error(`${msg.error.code}: ${msg.error.message}`);
      if (msg.ack) {
        ackAt.set(msg.ack.seq, now);
        versionAtAck.set(msg.ack.seq, newestVersion);
      }
      if (msg.weights) {
        updates.push({ at: now, version: msg.weights.version, ids: msg.weights.sampleIds.length });
        if (msg.weights.version > newestVersion) newestVersion = msg.weights.version;
      }
    }
  })();

  const t0 = performance.now();
  const atWarmup = new Promise<Awaited<ReturnType<typeof scrapeStages>>>((resolve, reject) =>
    setTimeout(() => void scrapeStages(d).then(resolve, reject), WARMUP_MS),
  );
  for (let seq = 1; seq <= total; seq++) {
    const due = t0 + (seq - 1) * intervalMs;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((res) => setTimeout(res, wait - 0.5));
    while (performance.now() < due) {
      // spin the last half millisecond so the schedule stays exact
    }
    const ids = Array.from({ length: BATCH }, () => `clip-${r.int(POOL)}`);
    sentAt.set(seq, performance.now());
    s.write({ batch: { seq, step: seq, lr: 1e-4, sampleIds: ids, sketches: payloads[seq % payloads.length] as Buffer, losses: [] } });
  }
  const sentRate = (total * BATCH) / ((performance.now() - t0) / 1000);
  done = true;
  await receiver;
  s.close();
  const [gcSeconds = NaN, lagMax = NaN] = await scrapeMetric(d, 'nodejs_gc_duration_seconds_sum', 'nodejs_eventloop_lag_max_seconds');
  const [early, late] = [await atWarmup, await scrapeStages(d)];
  const stages = Object.fromEntries(
    STAGES.map((st) => [st, ((late[st].sum - early[st].sum) / (late[st].count - early[st].count)) * 1000]),
  ) as Record<Stage, number>;
  await d.stop();
  const trace = values.trace === true ? readAckTrace(traceFile, WARMUP_MS) : undefined;
  dir.remove();

  const ack: number[] = [];
  const wu: number[] = [];
  let noUpdate = 0;
  let counted = 0;
  for (const [seq, sent] of sentAt) {
    if (sent - t0 < WARMUP_MS) continue;
    counted++;
    const acked = ackAt.get(seq);
    if (acked === undefined) throw new Error(`batch ${seq} was never acknowledged`);
    ack.push(acked - sent);
    const v = versionAtAck.get(seq) ?? 0;
    const next = updates.find((u) => u.at >= acked && u.version > v);
    if (next === undefined) noUpdate++;
    else wu.push(next.at - sent);
  }
  ack.sort((a, b) => a - b);
  wu.sort((a, b) => a - b);
  const live = updates.filter((u) => u.at - t0 >= WARMUP_MS);
  return {
    sentRate,
    ack,
    wu,
    batches: counted,
    noUpdate,
    updates: live.length,
    avgUpdateIds: live.reduce((a, u) => a + u.ids, 0) / Math.max(1, live.length),
    gcMs: gcSeconds * 1000,
    loopLagMaxMs: lagMax * 1000,
    stages,
    trace,
  };
}

/**
 * The disk alone, in the seconds right before each run: what a log commit of this rate costs the
 * file system with no daemon. At the run's batch rate (rate / batch per second) for as long as a
 * run is counted, a log entry's bytes (the wire sketches and the products: about 320 KiB at batch
 * 256) are written and `fdatasync`'d, then 4 KiB and `fdatasync` again, as an LMDB commit syncs its
 * data pages and then its meta page. The durable Ack cannot be faster than this; the disk's tail
 * varies from minute to minute on this machine, which is why it is measured beside every run.
 */
async function diskProbe(rate: number, ms: number): Promise<number[]> {
  const dir = tempDir('motive-bench-fsync-');
  const fd = openSync(join(dir.path, 'log'), 'w');
  const entry = Buffer.alloc(BATCH * (2 * K + 4 * M), 1);
  const meta = Buffer.alloc(4096, 2);
  const period = (1000 * BATCH) / rate;
  const times: number[] = [];
  try {
    const end = performance.now() + ms;
    for (let i = 0; performance.now() < end; i++) {
      const t0 = performance.now();
      // A ring of 64 entries, so the file stays small and its blocks allocated after the first lap.
      writeSync(fd, entry, 0, entry.length, (i % 64) * entry.length);
      fdatasyncSync(fd);
      writeSync(fd, meta, 0, meta.length, 0);
      fdatasyncSync(fd);
      const took = performance.now() - t0;
      times.push(took);
      if (took < period) await new Promise((r) => setTimeout(r, period - took));
    }
  } finally {
    closeSync(fd);
    dir.remove();
  }
  return times.sort((a, b) => a - b);
}

const TRACE_HEADERS = ['sketches/s', 'run', ...SUMMARY_HEADERS];
const rows: Array<Array<string | number>> = [];
const traceRows: Array<Array<string | number>> = [];
const best: Record<string, unknown> = {};
for (const rate of RATES) {
  const results: RunResult[] = [];
  for (let run = 1; run <= RUNS; run++) {
    const disk = await diskProbe(rate, SECONDS * 1000 - WARMUP_MS);
    const res = await once(rate, run);
    results.push(res);
    const q = (a: number[], p: number): string => fmt(quantile(a, p), 1);
    rows.push([
      rate,
      run,
      Math.round(res.sentRate),
      res.batches,
      q(res.ack, 0.5),
      q(res.ack, 0.99),
      fmt(res.ack.at(-1) ?? NaN),
      q(res.wu, 0.5),
      q(res.wu, 0.99),
      fmt(res.wu.at(-1) ?? NaN),
      res.noUpdate,
      res.updates,
      Math.round(res.avgUpdateIds),
      fmt(res.gcMs, 0),
      fmt(res.loopLagMaxMs, 0),
      ...STAGES.map((st) => fmt(res.stages[st], 1)),
      q(disk, 0.5),
      q(disk, 0.99),
      fmt(disk.at(-1) ?? NaN),
      fmt(quantile(res.ack, 0.99) / quantile(disk, 0.99), 1),
    ]);
    if (res.trace !== undefined) for (const row of summaryRows(res.trace)) traceRows.push([rate, run, ...row]);
    process.stderr.write(
      `${rate}/s run ${run}: ack p99 ${q(res.ack, 0.99)} ms, WeightUpdate p99 ${q(res.wu, 0.99)} ms; the disk alone before it: p99 ${q(disk, 0.99)} ms\n`,
    );
  }
  const ackP99 = bestOf(
    results.map((r) => quantile(r.ack, 0.99)),
    'lower',
  );
  const wuP99 = bestOf(
    results.map((r) => quantile(r.wu, 0.99)),
    'lower',
  );
  best[String(rate)] = {
    ackP99Ms: ackP99.best,
    ackP99SpreadPct: ackP99.spreadPct,
    weightUpdateP99Ms: wuP99.best,
    weightUpdateP99SpreadPct: wuP99.spreadPct,
  };
}
report(
  (SYNC_COMMITS ? 'feedback-sync-commits' : 'feedback') + (BATCH_UPDATES ? '' : '-no-batch-updates'),
  `Feedback latency (batch ${BATCH}, k ${K}, m ${M}, fp16, 1 rank, weights minSeen 1 / intervalMs ${INTERVAL_MS}${BATCH_UPDATES ? '' : ' / batchUpdates off'}${SYNC_COMMITS ? ', store.syncCommits' : ''}), ${SECONDS} s per run, first ${WARMUP_MS / 1000} s not counted`,
  [
    'sketches/s',
    'run',
    'sent/s',
    'batches',
    'ack p50 ms',
    'ack p99 ms',
    'ack max ms',
    'WU p50 ms',
    'WU p99 ms',
    'WU max ms',
    'no WU',
    'WUs',
    'ids/WU',
    'GC ms',
    'loop lag max ms',
    ...STAGES.map((st) => `${st} ms`),
    'disk p50 ms',
    'disk p99 ms',
    'disk max ms',
    'ack p99 / disk p99',
  ],
  rows,
  {
    ...(traceRows.length > 0 ? { ackTrace: traceRows.map((r) => Object.fromEntries(TRACE_HEADERS.map((h, j) => [h, r[j]]))) } : {}),
    best,
    disk: 'disk p50/p99/max: the disk alone in the seconds before each run, at the run batch rate: a log entry (batch x (2k + 4m) bytes) + fdatasync, then 4 KiB + fdatasync, as an LMDB commit',
    definition:
      'WU latency: batch sent -> first WeightUpdate received after the batch Ack whose version is newer than the newest version received when the Ack arrived',
    target: 'Ack p99 <= 10 ms, WeightUpdate p99 <= 50 ms at 10k sketches/s',
  },
);
if (traceRows.length > 0)
  process.stdout.write(
    `\nWhere the Acks went (the daemon's Ack-path trace, --trace): mean ms per Ack, from reading the batch off its stream to sending its Ack,\n` +
      `by step, and the ms of that span the main thread spent on the flusher, recomputes and GC, or a flush chunk was in flight\n\n${table(TRACE_HEADERS, traceRows)}`,
  );
