/**
 * A/B of two daemons under the same measurements: the daemon of checkout A (`--a-root`, e.g. a
 * worktree of an older commit made by bench/ab.sh) and of checkout B (`--b-root`, default this
 * one), started alternately (A B, then B A, ...) for `--rounds` rounds, each time on a fresh data
 * directory. The clients, the data and the arithmetic of the figures are this checkout's, so only
 * the daemon differs. Per round and daemon:
 *
 *   - ingest: one trainer stream, k = 512, 64 queries, fp16 batches of 256 fresh-or-repeated clips
 *     (a pool of 200,000), up to 32 unacknowledged, as fast as flow control lets it, for
 *     `--seconds`: acknowledged sketches/s (the write path: decode, prepare, commit, apply, flusher);
 *   - Ack latency: a second run on the same daemon, paced at `--rate` sketches/s in batches of 64,
 *     for `--seconds` after a 1 s warm-up: Ack received − batch sent, p50 and p99;
 *   - scan: a copy of the cached filled store of `--scan-samples` samples (bench/fill.ts; filled on
 *     first use), `POST /v1/runs/bench/attribute` with a new query, `--scans` times: client ms, p50
 *     (the read path: int8 scan and exact rescore);
 *   - weights recompute: on that daemon (`weights.batchUpdates` off, `intervalMs` 10, `minSeen` 1)
 *     a trainer sends, `--recomputes` times, one batch of 64 new clips aligned against the run's
 *     first query and waits for its Ack, then for the WeightUpdate of the recompute that follows
 *     it: Ack → WeightUpdate ms, p50 (a recompute over every sample of the run).
 *
 * It prints, per figure, the median over rounds and the spread (min–max, % of the median) of A and
 * of B, and the ratio B / A of the medians (> 1: B higher), with the load average before and after.
 *
 *   npx tsx bench/ab.ts --a-root DIR [--b-root DIR] [--rounds 5] [--seconds 4] [--rate 5000]
 *                       [--scan-samples 100000] [--scans 5] [--recomputes 5]
 */
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { MotiveClient, encodeFloat16Array } from '../trainer-hooks/ts/index.js';
import { rng } from '../test/helpers/reference.js';
import { tempDir } from '../test/helpers/daemon.js';
import { rawStream, type RawStream } from '../test/helpers/raw-stream.js';
import { BENCH_RUN, filledStore, filler } from './fill.js';
import { CACHE_DIR, REPO_ROOT, fmt, keepSending, machine, postJson, quantile, startBenchDaemon, type BenchDaemon } from './lib.js';

const { values } = parseArgs({
  options: {
    'a-root': { type: 'string' },
    'b-root': { type: 'string', default: REPO_ROOT },
    rounds: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '4' },
    rate: { type: 'string', default: '5000' },
    'scan-samples': { type: 'string', default: '100000' },
    scans: { type: 'string', default: '5' },
    recomputes: { type: 'string', default: '5' },
  },
});
if (values['a-root'] === undefined) throw new Error('--a-root DIR is required (bench/ab.sh makes one from a git ref)');
const ROOTS = { A: values['a-root'], B: values['b-root'] } as const;
const ROUNDS = Number(values.rounds);
const SECONDS = Number(values.seconds);
const RATE = Number(values.rate);
const SCAN_SAMPLES = Number(values['scan-samples']);
const SCANS = Number(values.scans);
const RECOMPUTES = Number(values.recomputes);
const K = 512;
const M = 64;
const POOL = 200_000;

type Side = keyof typeof ROOTS;
/** Figure name → one value per round. */
type Figures = Map<string, number[]>;

function hello(runId: string, kind: string, seed: number | string, fingerprint: string, applyWeights: boolean): unknown {
  return {
    hello: {
      runId,
      rank: 0,
      worldSize: 1,
      projection: { kind, seed, dim: K, fingerprint },
      dtype: 'FLOAT16',
      token: '',
      client: 'bench-ab',
      applyWeights,
    },
  };
}

async function attach(d: BenchDaemon, msg: unknown): Promise<RawStream> {
  const s = rawStream(`127.0.0.1:${d.grpcPort}`);
  s.write(msg);
  const w = await s.next(30_000);
  if (w === 'end' || w.welcome === undefined) throw new Error(`no Welcome: ${JSON.stringify(w)}`);
  return s;
}

/** Acknowledged sketches/s of one stream sending as fast as 32 unacknowledged batches allow. */
async function ingest(d: BenchDaemon): Promise<number> {
  const s = await attach(d, hello('ingest', 'gaussian', 1, 'ab', false));
  const r = rng(7);
  const payloads = Array.from({ length: 4 }, () => encodeFloat16Array(Float32Array.from({ length: 256 * K }, () => r.normal())));
  const queries = encodeFloat16Array(Float32Array.from({ length: M * K }, () => r.normal()));
  s.write({ queries: { version: 1, step: 0, queryIds: Array.from({ length: M }, (_, j) => `q${j}`), groups: [], sketches: queries } });
  let seq = 0;
  const started = performance.now();
  const until = started + SECONDS * 1000;
  const send = (): void => {
    seq++;
    const ids = Array.from({ length: 256 }, () => `clip-${r.int(POOL)}`);
    s.write({ batch: { seq, step: seq, lr: 1e-4, sampleIds: ids, sketches: payloads[seq % 4] as Buffer, losses: [] } });
  };
  const acks = await keepSending(s, 32, send, () => performance.now() < until);
  const rate = (acks * 256) / ((performance.now() - started) / 1000);
  s.close();
  return rate;
}

/** Ack latency (ms) of batches of 64 sent at RATE sketches/s; the first second is not counted. */
async function ackLatency(d: BenchDaemon): Promise<{ p50: number; p99: number }> {
  const s = await attach(d, hello('acks', 'gaussian', 1, 'ab', false));
  const r = rng(11);
  const payload = encodeFloat16Array(Float32Array.from({ length: 64 * K }, () => r.normal()));
  const queries = encodeFloat16Array(Float32Array.from({ length: 8 * K }, () => r.normal()));
  s.write({ queries: { version: 1, step: 0, queryIds: Array.from({ length: 8 }, (_, j) => `q${j}`), groups: [], sketches: queries } });
  const sentAt = new Map<number, number>();
  const latencies: number[] = [];
  const start = performance.now();
  const countFrom = start + 1000;
  const until = countFrom + SECONDS * 1000;
  const every = (64 / RATE) * 1000;
  let seq = 0;
  const sender = (async (): Promise<void> => {
    while (performance.now() < until) {
      const due = start + seq * every;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((res) => setTimeout(res, wait));
      seq++;
      sentAt.set(seq, performance.now());
      const ids = Array.from({ length: 64 }, () => `clip-${r.int(POOL)}`);
      s.write({ batch: { seq, step: seq, lr: 1e-4, sampleIds: ids, sketches: payload, losses: [] } });
    }
  })();
  let acked = 0;
  for (;;) {
    const m = await s.next(60_000);
    if (m === 'end') throw new Error('stream ended');
    if (m.error) throw new Error(`${m.error.code}: ${m.error.message}`);
    if (m.ack === undefined) continue;
    const at = sentAt.get(m.ack.seq) as number;
    if (at >= countFrom) latencies.push(performance.now() - at);
    sentAt.delete(m.ack.seq);
    acked = m.ack.seq;
    if (performance.now() >= until && acked === seq) break;
  }
  await sender;
  s.close();
  latencies.sort((x, y) => x - y);
  return { p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99) };
}

/** Client-side ms of `POST /attribute` with a new query each time, p50. */
async function scan(d: BenchDaemon, round: number): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < SCANS; i++) {
    const sketch = Array.from({ length: K }, filler((round * 97 + i + 1) * 2654435761));
    const t0 = performance.now();
    const res = await postJson<{ samples: unknown[] }>(d.httpPort, `/v1/runs/${BENCH_RUN}/attribute`, { sketch, limit: 20 });
    times.push(performance.now() - t0);
    if (res.samples.length !== 20) throw new Error(`attribute returned ${res.samples.length} samples`);
  }
  times.sort((x, y) => x - y);
  return quantile(times, 0.5);
}

/** Ack → WeightUpdate ms of the recompute after each of RECOMPUTES harmful batches, p50. */
async function recompute(d: BenchDaemon, round: number): Promise<number> {
  // The filled run's projection (bench/fill.ts).
  const c = new MotiveClient({
    address: `127.0.0.1:${d.grpcPort}`,
    runId: BENCH_RUN,
    dim: K,
    dtype: 'float16',
    projection: { kind: 'gaussian', seed: '1', fingerprint: 'bench' },
  });
  let version = 0;
  let updatedAt = 0;
  let ack: { seq: number; at: number; version: number } | undefined;
  let updated: (() => void) | undefined;
  c.on('weights', (u: { version: number }) => {
    if (u.version > version) updatedAt = performance.now();
    version = Math.max(version, u.version);
    updated?.();
  });
  c.on('ack', (seq: number) => (ack = { seq, at: performance.now(), version }));
  await c.connect();
  // Every row is the run's first query reversed, so each batch's clips score far below the rest
  // and the recompute after it moves their weights (an update that moves nothing is not sent).
  const q = Float32Array.from({ length: K }, filler(SCAN_SAMPLES + K));
  const rows = new Float32Array(64 * K);
  for (let i = 0; i < 64; i++) for (let j = 0; j < K; j++) rows[i * K + j] = -(q[j] as number);
  const times: number[] = [];
  await new Promise((res) => setTimeout(res, 300)); // the snapshot sent on attach is not timed
  for (let i = 1; i <= RECOMPUTES; i++) {
    const ids = Array.from({ length: 64 }, (_, j) => `ab-${round}-${i}-${j}`);
    const seq = await c.send(i, 1, ids, rows);
    await c.flush(30_000);
    const acked = ack;
    if (acked === undefined || acked.seq !== seq) throw new Error(`no Ack for batch ${seq}`);
    const got = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 60_000);
      updated = (): void => {
        if (version <= acked.version) return;
        clearTimeout(timer);
        resolve(true);
      };
      updated();
    });
    updated = undefined;
    if (!got) throw new Error(`no WeightUpdate within 60 s of the Ack of batch ${seq}`);
    times.push(updatedAt - acked.at);
    await new Promise((res) => setTimeout(res, 50)); // let a recompute still under way end
  }
  c.close();
  times.sort((x, y) => x - y);
  return quantile(times, 0.5);
}

async function measure(side: Side, round: number, scanStore: string, figures: Figures): Promise<void> {
  const add = (name: string, v: number): void => {
    const list = figures.get(name) ?? [];
    list.push(v);
    figures.set(name, list);
  };
  const fresh = tempDir('motive-ab-');
  const d = await startBenchDaemon({ dataDir: fresh.path, root: ROOTS[side] });
  try {
    add('ingest sketches/s', await ingest(d));
    const acks = await ackLatency(d);
    add(`Ack p50 ms at ${RATE}/s`, acks.p50);
    add(`Ack p99 ms at ${RATE}/s`, acks.p99);
  } finally {
    await d.stop();
    fresh.remove();
  }
  const filled = tempDir('motive-ab-scan-');
  const dataDir = join(filled.path, 'data');
  cpSync(scanStore, dataDir, { recursive: true });
  const configFile = join(filled.path, 'config.json');
  writeFileSync(configFile, JSON.stringify({ weights: { minSeen: 1, intervalMs: 10, batchUpdates: false } }));
  const e = await startBenchDaemon({ dataDir, root: ROOTS[side], env: { MOTIVE_CONFIG: configFile } });
  try {
    add(`scan ms p50 (${SCAN_SAMPLES} samples)`, await scan(e, round));
    add(`recompute Ack→update ms p50 (${SCAN_SAMPLES} samples)`, await recompute(e, round));
  } finally {
    await e.stop();
    filled.remove();
  }
}

function summary(values: number[]): { median: number; spreadPct: number } {
  const sorted = [...values].sort((x, y) => x - y);
  const median = quantile(sorted, 0.5);
  return { median, spreadPct: ((sorted[sorted.length - 1]! - sorted[0]!) / median) * 100 };
}

mkdirSync(CACHE_DIR, { recursive: true });
const scanStore = await filledStore(SCAN_SAMPLES, K);
const loadBefore = loadavg();
const figures: Record<Side, Figures> = { A: new Map(), B: new Map() };
for (let round = 1; round <= ROUNDS; round++) {
  const order: Side[] = round % 2 === 1 ? ['A', 'B'] : ['B', 'A'];
  for (const side of order) {
    await measure(side, round, scanStore, figures[side]);
    const got = [...figures[side]].map(([name, v]) => `${name} ${fmt(v[v.length - 1]!, 1)}`).join(', ');
    process.stderr.write(`round ${round} ${side} (load ${loadavg()[0]!.toFixed(2)}): ${got}\n`);
  }
}
const loadAfter = loadavg();
const m = machine();
const out: string[] = [
  `A: ${ROOTS.A}`,
  `B: ${ROOTS.B}`,
  `machine: ${m.cpu}, ${m.cores} cores, node ${m.node}; load average before ${loadBefore.map((x) => x.toFixed(2)).join(' ')}, after ${loadAfter.map((x) => x.toFixed(2)).join(' ')}`,
  `${ROUNDS} rounds, alternating; median over rounds, spread = (max − min) / median`,
  '',
  `| figure | A median | A spread % | B median | B spread % | B / A |`,
  `| --- | ---: | ---: | ---: | ---: | ---: |`,
];
for (const [name, a] of figures.A) {
  const sa = summary(a);
  const sb = summary(figures.B.get(name) ?? []);
  const digits = sa.median >= 1000 ? 0 : 1;
  out.push(
    `| ${name} | ${fmt(sa.median, digits)} | ${fmt(sa.spreadPct, 0)} | ${fmt(sb.median, digits)} | ${fmt(sb.spreadPct, 0)} | ${fmt(sb.median / sa.median, 3)} |`,
  );
}
process.stdout.write(`${out.join('\n')}\n`);
