/**
 * Attribution scans while a run streams: `POST /v1/runs/:run/attribute` (a new query each time,
 * limit 20) over a filled store of 100k or 1M samples (k = 512) on a daemon child process, one scan
 * every `--interval` ms, in four phases:
 *
 *   - at rest: no ingest, nothing dirty;
 *   - sustained ingest: one trainer stream sending `--rate` sketches/s (fp16, batch 256, the run's
 *     8 queries) into samples the run already holds, paced, up to 32 batches unacknowledged;
 *     scans from 2 s after the stream starts;
 *   - a burst: `--burst` sketches as fast as flow control lets them (no scans meanwhile), then
 *     scans for 10 s from its last Ack, grouped by their start time after that Ack (0–1 s, 1–3 s,
 *     3–10 s), `--bursts` times;
 *   - at rest again, as a check that the store did not change the baseline.
 *
 * Each phase prints scan latency seen by the client (HTTP, end to end) and the engine's own
 * `elapsedMs`, p50 / p99 / max, the ratio to at rest, and the 1-minute load average when the phase
 * ended (the machine may be shared). The store is a copy of the cached one, so ingest leaves the
 * cache as it was.
 *
 * `--daemon-root PATH` (repeatable) runs the same phases against the daemon of another checkout,
 * e.g. an older commit's worktree, one after the other per size: an A/B over minutes, not hours.
 * `--profile` writes a V8 CPU profile of each daemon and prints its main thread's top self-time
 * functions over each phase's window.
 *
 *   npx tsx bench/scan-live.ts [--sizes 100000,1000000] [--rate 10000] [--burst 100000] [--bursts 3]
 *     [--interval 150] [--seconds 12] [--daemon-root PATH]... [--profile] [--quick] [--name scan-live]
 *
 * `--name` names the result file (bench/results/<name>.json).
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { table } from '../daemon/cli/common.js';
import { rng } from '../test/helpers/reference.js';
import { rawStream, type RawStream } from '../test/helpers/raw-stream.js';
import { encodeFloat16Array } from '../trainer-hooks/ts/index.js';
import { BENCH_RUN, filledStore, filler, sampleId } from './fill.js';
import {
  CACHE_DIR,
  REPO_ROOT,
  fmt,
  postJson,
  printProfile,
  quantile,
  report,
  scrapeMetric,
  startBenchDaemon,
  summarizeProfile,
  type BenchDaemon,
} from './lib.js';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '100000,1000000' },
    rate: { type: 'string', default: '10000' },
    burst: { type: 'string', default: '100000' },
    bursts: { type: 'string', default: '3' },
    interval: { type: 'string', default: '150' },
    seconds: { type: 'string', default: '12' },
    'daemon-root': { type: 'string', multiple: true },
    profile: { type: 'boolean' },
    quick: { type: 'boolean' },
    name: { type: 'string', default: 'scan-live' },
  },
});
const SIZES = values.quick ? [100_000] : values.sizes.split(',').map(Number);
const RATE = Number(values.rate);
const BURST = Number(values.burst);
const BURSTS = values.quick ? 1 : Number(values.bursts);
const INTERVAL_MS = Number(values.interval);
const SUSTAIN_MS = Number(values.seconds) * 1000;
const REST_MS = 6000;
const SUSTAIN_WARMUP_MS = 2000;
const AFTER_BURST_MS = 10_000;
const ROOTS = (values['daemon-root'] ?? [REPO_ROOT]).map((r) => resolve(r));
const K = 512;
const M = 8;
const BATCH = 256;
const WINDOW = 32;
const LIMIT = 20;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));
const load1 = (): number => Number((loadavg()[0] ?? 0).toFixed(2));
/** CLOCK_MONOTONIC in µs: the clock of V8's CPU profile timestamps on Linux. */
const monoUs = (): number => Number(process.hrtime.bigint() / 1000n);

function label(root: string): string {
  try {
    const rev = execFileSync('git', ['-C', root, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    return root === REPO_ROOT ? `${rev} (this tree)` : rev;
  } catch {
    return root;
  }
}

interface Scan {
  /** performance.now() when the request was sent. */
  at: number;
  clientMs: number;
  serverMs: number;
}

/** Scans with a new query every `intervalMs` (back to back when a scan takes longer) until `stop()`. */
function scanner(port: number, seed: number, intervalMs: number): { scans: Scan[]; stop: () => Promise<void> } {
  const scans: Scan[] = [];
  let running = true;
  const loop = (async (): Promise<void> => {
    let i = 0;
    while (running) {
      const at = performance.now();
      const query = Array.from({ length: K }, filler((seed + i++) * 2654435761));
      const res = await postJson<{ samples: unknown[]; elapsedMs: number }>(port, `/v1/runs/${BENCH_RUN}/attribute`, {
        sketch: query,
        limit: LIMIT,
      });
      if (res.samples.length !== LIMIT) throw new Error(`attribute returned ${res.samples.length} samples`);
      scans.push({ at, clientMs: performance.now() - at, serverMs: res.elapsedMs });
      await sleep(at + intervalMs - performance.now());
    }
  })();
  return {
    scans,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

/** One rank of the run: pre-encoded fp16 batches of existing sample ids, Acks counted as they come. */
class Trainer {
  private seq: number;
  private inflight = 0;
  acked = 0;
  private room: Array<() => void> = [];
  private readonly payloads: Buffer[];
  private readonly pick: () => number;
  private readonly reader: Promise<void>;

  constructor(
    private readonly s: RawStream,
    lastSeq: number,
    n: number,
  ) {
    this.seq = lastSeq;
    const r = rng(7);
    this.payloads = Array.from({ length: 4 }, () => encodeFloat16Array(Float32Array.from({ length: BATCH * K }, () => r.normal() * 1e-3)));
    const ri = rng(11);
    this.pick = () => ri.int(n);
    this.reader = (async () => {
      for (;;) {
        const m = await s.next(3_600_000);
        if (m === 'end') return;
        if (m.error) throw new Error(`${m.error.code}: ${m.error.message}`);
        if (!m.ack) continue;
        this.inflight--;
        this.acked += BATCH;
        this.room.shift()?.();
      }
    })();
  }

  private async send(): Promise<void> {
    while (this.inflight >= WINDOW) await new Promise<void>((r) => this.room.push(r));
    const seq = ++this.seq;
    const ids = Array.from({ length: BATCH }, () => sampleId(this.pick()));
    this.s.write({ batch: { seq, step: seq, lr: 1e-4, sampleIds: ids, sketches: this.payloads[seq % 4] as Buffer, losses: [] } });
    this.inflight++;
  }

  /** Every batch acknowledged. */
  private async drained(): Promise<void> {
    while (this.inflight > 0) await new Promise<void>((r) => this.room.push(r));
  }

  /** `rate` sketches/s for `ms`, each batch at its time (late ones go at once). */
  async paced(rate: number, ms: number): Promise<void> {
    const t0 = performance.now();
    const every = (BATCH / rate) * 1000;
    for (let i = 0; performance.now() < t0 + ms; i++) {
      await sleep(t0 + i * every - performance.now());
      await this.send();
    }
    await this.drained();
  }

  /** `count` sketches as fast as the window lets them; resolves at the last Ack. */
  async burst(count: number): Promise<void> {
    for (let sent = 0; sent < count; sent += BATCH) await this.send();
    await this.drained();
  }

  async close(): Promise<void> {
    this.s.close();
    await this.reader;
  }
}

async function attach(d: BenchDaemon, n: number): Promise<Trainer> {
  const s = rawStream(`127.0.0.1:${d.grpcPort}`);
  s.write({
    hello: {
      runId: BENCH_RUN,
      rank: 0,
      worldSize: 1,
      projection: { kind: 'gaussian', seed: 1, dim: K, fingerprint: 'bench' },
      dtype: 'FLOAT16',
      token: '',
      client: 'bench-scan-live',
      applyWeights: false,
    },
  });
  const w = await s.next(60_000);
  if (w === 'end' || w.welcome === undefined) throw new Error(`no Welcome: ${JSON.stringify(w)}`);
  return new Trainer(s, w.welcome.lastCommittedSeq, n);
}

/** Waits until the daemon has no dirty samples (the flusher caught up), up to `maxMs`. */
async function settled(d: BenchDaemon, maxMs: number): Promise<number> {
  const until = performance.now() + maxMs;
  for (;;) {
    const [dirty] = await scrapeMetric(d, 'motive_store_dirty_samples');
    if (dirty === 0 || performance.now() > until) return dirty ?? NaN;
    await sleep(250);
  }
}

interface Phase {
  name: string;
  scans: Scan[];
  /** Sketches/s acknowledged over the phase (0 at rest). */
  ingestRate: number;
  load1: number;
  /** CLOCK_MONOTONIC µs bounds of the phase, for the profile. */
  fromUs: number;
  toUs: number;
}

interface Stats {
  count: number;
  client: { p50: number; p99: number; max: number };
  server: { p50: number; p99: number; max: number };
}

function stats(scans: Scan[]): Stats {
  const pick = (f: (s: Scan) => number): { p50: number; p99: number; max: number } => {
    const v = scans.map(f).sort((a, b) => a - b);
    return { p50: quantile(v, 0.5), p99: quantile(v, 0.99), max: v[v.length - 1] ?? NaN };
  };
  return { count: scans.length, client: pick((s) => s.clientMs), server: pick((s) => s.serverMs) };
}

async function runPhases(d: BenchDaemon, n: number): Promise<{ phases: Phase[]; bursts: Array<Record<string, number>> }> {
  const phases: Phase[] = [];
  const trainer = await attach(d, n);
  const port = d.httpPort;
  // Warm-up: the first scans load the query path and the rescoring reads.
  for (let i = 0; i < 3; i++)
    await postJson(port, `/v1/runs/${BENCH_RUN}/attribute`, { sketch: Array.from({ length: K }, filler(99 + i)), limit: LIMIT });

  const rest = async (name: string): Promise<void> => {
    const fromUs = monoUs();
    const sc = scanner(port, 1000 * (phases.length + 1), INTERVAL_MS);
    await sleep(REST_MS);
    await sc.stop();
    phases.push({ name, scans: sc.scans, ingestRate: 0, load1: load1(), fromUs, toUs: monoUs() });
  };
  await rest('at rest');

  {
    const acked0 = trainer.acked;
    const t0 = performance.now();
    const sc = scanner(port, 50_000, INTERVAL_MS);
    const fromUs = monoUs() + SUSTAIN_WARMUP_MS * 1000;
    await trainer.paced(RATE, SUSTAIN_MS);
    const toUs = monoUs();
    await sc.stop();
    const rate = ((trainer.acked - acked0) * 1000) / (performance.now() - t0);
    phases.push({
      name: `sustained ingest ${RATE}/s`,
      scans: sc.scans.filter((s) => s.at >= t0 + SUSTAIN_WARMUP_MS),
      ingestRate: rate,
      load1: load1(),
      fromUs,
      toUs,
    });
  }

  const windows: Array<[string, number, number]> = [
    ['0–1 s', 0, 1000],
    ['1–3 s', 1000, 3000],
    ['3–10 s', 3000, AFTER_BURST_MS],
  ];
  const after: Scan[][] = windows.map(() => []);
  const bursts: Array<Record<string, number>> = [];
  let burstRate = 0;
  let fromUs = 0;
  let burstEndUs = 0;
  for (let b = 0; b < BURSTS; b++) {
    const dirtyBefore = await settled(d, 20_000);
    // Scans only from the burst's last Ack: one still running from before would start the
    // window late (a scan during a burst waits behind the batches in flight).
    const t0 = performance.now();
    if (b === 0) fromUs = monoUs();
    const acked0 = trainer.acked;
    await trainer.burst(BURST);
    const end = performance.now();
    if (b === 0) burstEndUs = monoUs();
    const sc = scanner(port, 100_000 * (b + 1), INTERVAL_MS);
    const [dirtyAtEnd] = await scrapeMetric(d, 'motive_store_dirty_samples');
    await sleep(end + AFTER_BURST_MS - performance.now());
    await sc.stop();
    const rate = ((trainer.acked - acked0) * 1000) / (end - t0);
    burstRate += rate / BURSTS;
    bursts.push({ burst: b, sketchesPerS: Math.round(rate), seconds: (end - t0) / 1000, dirtyBefore, dirtyAtEnd: dirtyAtEnd ?? NaN });
    for (const s of sc.scans) windows.forEach(([, lo, hi], i) => s.at - end >= lo && s.at - end < hi && after[i]!.push(s));
  }
  const l = load1();
  const toUs = monoUs();
  phases.push({ name: `${BURST / 1000}k burst (no scans)`, scans: [], ingestRate: burstRate, load1: l, fromUs, toUs: burstEndUs });
  windows.forEach(([w], i) =>
    phases.push({
      name: `${w} after a burst`,
      scans: after[i]!,
      ingestRate: 0,
      load1: l,
      // The first burst's 10 s after its last Ack (the profile windows are one burst's).
      fromUs: burstEndUs + windows[i]![1] * 1000,
      toUs: i === windows.length - 1 ? Math.min(toUs, burstEndUs + AFTER_BURST_MS * 1000) : burstEndUs + windows[i]![2] * 1000,
    }),
  );
  await settled(d, 20_000);
  await rest('at rest again');
  await trainer.close();
  return { phases, bursts };
}

const rows: Array<Array<string | number>> = [];
const results: Array<Record<string, unknown>> = [];
const profiles: Record<string, unknown> = {};
const profileTables: Array<[string, ReturnType<typeof summarizeProfile>]> = [];

for (const n of SIZES) {
  const cached = await filledStore(n, K);
  for (const root of ROOTS) {
    const name = label(root);
    // A copy of the cached store: ingest rewrites its samples.
    const dataDir = join(CACHE_DIR, `scan-live-${process.pid}`);
    rmSync(dataDir, { recursive: true, force: true });
    process.stderr.write(`n=${n} daemon ${name}: copying the store\n`);
    cpSync(cached, dataDir, { recursive: true });
    const profDir = join(CACHE_DIR, `prof-scan-live-${n}-${name.split(' ')[0]}`);
    if (values.profile === true) {
      rmSync(profDir, { recursive: true, force: true });
      mkdirSync(profDir, { recursive: true });
    }
    const d = await startBenchDaemon({
      dataDir,
      root,
      startTimeoutMs: 600_000,
      ...(values.profile === true ? { cpuProfDir: profDir } : {}),
    });
    let out: Awaited<ReturnType<typeof runPhases>>;
    try {
      out = await runPhases(d, n);
    } finally {
      await d.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
    const base = stats(out.phases[0]!.scans);
    for (const p of out.phases) {
      const s = stats(p.scans);
      rows.push([
        n,
        name,
        p.name,
        s.count,
        Math.round(p.ingestRate),
        fmt(s.client.p50),
        fmt(s.client.p99),
        fmt(s.client.max),
        fmt(s.server.p50),
        fmt(s.server.p99),
        fmt(s.server.max),
        fmt(s.client.p50 / base.client.p50, 2),
        fmt(s.client.p99 / base.client.p50, 2),
        fmt(s.server.p50 / base.server.p50, 2),
        p.load1,
      ]);
      results.push({ n, daemon: name, phase: p.name, ...s, ingestRate: p.ingestRate, load1: p.load1 });
    }
    results.push({ n, daemon: name, bursts: out.bursts });
    if (values.profile === true) {
      for (const p of out.phases) {
        const prof = summarizeProfile(profDir, 10, { fromUs: p.fromUs, toUs: p.toUs });
        profiles[`${n} ${name} ${p.name}`] = prof;
        profileTables.push([`n=${n}, daemon ${name}, ${p.name}`, prof]);
      }
    }
    process.stderr.write(`n=${n} daemon ${name}: bursts ${JSON.stringify(out.bursts)}\n`);
  }
}

report(
  values.name,
  `Attribution scans while a run streams: k = ${K}, new query, limit ${LIMIT}, one scan every ${INTERVAL_MS} ms; ` +
    `ingest fp16, m = ${M}, batch ${BATCH}, existing samples; ratios to the at-rest p50 (client: HTTP end to end; server: elapsedMs)`,
  [
    'samples',
    'daemon',
    'phase',
    'scans',
    'ingest/s',
    'client p50 ms',
    'client p99',
    'client max',
    'server p50 ms',
    'server p99',
    'server max',
    'client p50 ÷ rest',
    'client p99 ÷ rest p50',
    'server p50 ÷ rest',
    'load1',
  ],
  rows,
  { results, profiles, target: 'scan during sustained ingest and within 1 s after a burst <= 2x the at-rest scan time' },
);
process.stdout.write(`\n${table(['note'], [['load1: 1-minute load average when the phase ended (2 cores: above 2 means queued work)']])}`);
for (const [title, p] of profileTables) printProfile(title, p);
