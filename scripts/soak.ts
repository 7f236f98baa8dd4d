/**
 * Soak: streams into a child daemon at its sustained rate (each rank keeps `--max-unacked`
 * batches in flight, so the daemon sets the pace) with a deliberately slow store
 * (`store.commitDelayMs`), samples the daemon's RSS from /proc/<pid>/status every few seconds,
 * prints a table and a verdict on whether RssAnon is flat (least-squares slope over the second half;
 * VmRSS also counts the LMDB map's file pages, reclaimable page cache, so it is shown, not judged).
 *
 *   npx tsx scripts/soak.ts [--duration-s 300] [--commit-delay-ms 10] [--sample-every-s 5]
 *     [--ranks 2] [--dim 256] [--batch-size 64] [--pool 10000] [--max-unacked 32]
 *     [--query-every-steps 200] [--flat-mib-per-min 2] [--segment-bytes N]
 *
 * The daemon starts with the fault harness's first store settings (a 5 ms flush interval, 64 dirty
 * samples, 16 KiB record segments: compaction after nearly every flush); `--segment-bytes` starts
 * it with the default store settings instead, with segments of that size.
 *
 * Exits 1 when RssAnon is not flat or the stored batch count differs from the acknowledged one.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { MotiveClient } from '../trainer-hooks/ts/index.js';
import { CrashableDaemon } from '../test/helpers/fault-harness.js';
import { rng } from '../test/helpers/reference.js';

const { values: args } = parseArgs({
  options: {
    'duration-s': { type: 'string', default: '300' },
    'commit-delay-ms': { type: 'string', default: '10' },
    'sample-every-s': { type: 'string', default: '5' },
    ranks: { type: 'string', default: '2' },
    dim: { type: 'string', default: '256' },
    'batch-size': { type: 'string', default: '64' },
    pool: { type: 'string', default: '10000' },
    'max-unacked': { type: 'string', default: '32' },
    'query-every-steps': { type: 'string', default: '200' },
    'flat-mib-per-min': { type: 'string', default: '2' },
    'segment-bytes': { type: 'string' },
  },
});
const num = (name: keyof typeof args): number => {
  const v = Number(args[name]);
  if (!Number.isFinite(v) || v < 0) {
    process.stderr.write(`--${name} must be a non-negative number\n`);
    process.exit(2);
  }
  return v;
};
const durationMs = num('duration-s') * 1000;
const commitDelayMs = num('commit-delay-ms');
const sampleEveryMs = num('sample-every-s') * 1000;
const RANKS = num('ranks');
const K = num('dim');
const N = num('batch-size');
const POOL = num('pool');
const maxUnacked = num('max-unacked');
const queryEvery = num('query-every-steps');
const flatMiBPerMin = num('flat-mib-per-min');
const QUERIES = 8;

interface Sample {
  tS: number;
  vmRssMiB: number;
  rssAnonMiB: number;
  rssFileMiB: number;
  batches: number;
  batchesPerS: number;
  storeMiB: number;
  /** V8 heap in use (nodejs_heap_size_used_bytes from /metrics), NaN when not exported. */
  heapUsedMiB: number;
  externalMiB: number;
}

function procStatus(pid: number): { vmRss: number; rssAnon: number; rssFile: number } {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
  return { vmRss: kb('VmRSS') / 1024, rssAnon: kb('RssAnon') / 1024, rssFile: kb('RssFile') / 1024 };
}

/** Least-squares slope of y over x. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num2 = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num2 += ((xs[i] as number) - mx) * ((ys[i] as number) - my);
    den += ((xs[i] as number) - mx) ** 2;
  }
  return den === 0 ? 0 : num2 / den;
}

const daemon = await CrashableDaemon.create();
const segmentBytes = args['segment-bytes'] === undefined ? undefined : num('segment-bytes');
await daemon.start(commitDelayMs, {
  weights: { minSeen: 2, intervalMs: 1000 },
  logLevel: 'warn',
  ...(segmentBytes === undefined ? {} : { store: { commitDelayMs, segmentBytes } }),
});
const pid = daemon.proc!.proc.pid!;
process.stdout.write(
  `soak: ${durationMs / 1000} s, store.commitDelayMs ${commitDelayMs}, ${RANKS} ranks × ${N} samples × k=${K} float32 per batch, ` +
    `pool ${POOL}, ${maxUnacked} batches in flight per rank, query refresh every ${queryEvery} steps; daemon pid ${pid}\n`,
);

const r = rng(20260);
// A few prepared sketch blocks: the client's own cost stays small, the daemon sees fresh rows.
const blocks = Array.from({ length: 16 }, () => Float32Array.from({ length: N * K }, () => r.normal()));
const runId = 'soak';
let acked = 0;
const clients = Array.from(
  { length: RANKS },
  (_, rank) =>
    new MotiveClient({ dtype: 'float32', address: daemon.address, runId, dim: K, rank, worldSize: RANKS, maxUnacked, applyWeights: true }),
);
clients.forEach((c) => c.on('ack', () => acked++));
await Promise.all(clients.map((c) => c.connect()));

const started = Date.now();
const deadline = started + durationMs;
const senders = clients.map(async (c, rank) => {
  const rr = rng(1000 + rank);
  let version = 0;
  for (let step = 0; Date.now() < deadline; step++) {
    if (step % queryEvery === 0) {
      version++;
      // Every rank sends each refresh (the daemon keeps one copy per version).
      const qr = rng(version);
      const q = Float32Array.from({ length: QUERIES * K }, () => qr.normal());
      c.setQueries(
        version,
        step,
        Array.from({ length: QUERIES }, (_, j) => `motion-${j}`),
        q,
      );
    }
    const ids = Array.from({ length: N }, () => `clip-${rr.int(POOL)}`);
    await c.send(step, 1e-4, ids, blocks[rr.int(blocks.length)] as Float32Array);
  }
  await c.flush(120_000);
});

const samples: Sample[] = [];
let lastBatches = 0;
let lastT = started;
const header = '   t(s)  VmRSS(MiB)  RssAnon(MiB)  RssFile(MiB)  heapUsed(MiB)  external(MiB)  acked batches  batches/s  store(MiB)';
process.stdout.write(`${header}\n`);
let heapUsedMiB = NaN;
let externalMiB = NaN;
/** Polls the daemon's own heap figure; the table shows the latest value. */
const pollHeap = async (): Promise<void> => {
  try {
    const text = await (await fetch(`${daemon.baseUrl}/metrics`)).text();
    const m = /^nodejs_heap_size_used_bytes\s+(\S+)/m.exec(text);
    if (m?.[1] !== undefined) heapUsedMiB = Number(m[1]) / 1024 ** 2;
    // Memory outside the V8 heap that V8 knows of (ArrayBuffers, Buffers).
    const e = /^nodejs_external_memory_bytes\s+(\S+)/m.exec(text);
    if (e?.[1] !== undefined) externalMiB = Number(e[1]) / 1024 ** 2;
  } catch {
    // metrics are optional here
  }
};
const take = (): void => {
  void pollHeap();
  const now = Date.now();
  const st = procStatus(pid);
  // Allocated blocks of the LMDB file (the map itself is sparse) and of the record segments.
  let storeMiB = NaN;
  try {
    // The main environment (with the write-ahead log) and the runs' record segments (docs/store.md).
    storeMiB = (statSync(join(daemon.dataDir, 'data.mdb')).blocks * 512) / 1024 ** 2;
    const records = join(daemon.dataDir, 'records');
    for (const run of existsSync(records) ? readdirSync(records) : [])
      for (const seg of readdirSync(join(records, run)))
        // A segment compaction removed meanwhile counts 0.
        storeMiB += ((statSync(join(records, run, seg), { throwIfNoEntry: false })?.blocks ?? 0) * 512) / 1024 ** 2;
  } catch {
    // not created yet
  }
  const s: Sample = {
    tS: (now - started) / 1000,
    vmRssMiB: st.vmRss,
    rssAnonMiB: st.rssAnon,
    rssFileMiB: st.rssFile,
    batches: acked,
    batchesPerS: ((acked - lastBatches) * 1000) / Math.max(1, now - lastT),
    storeMiB,
    heapUsedMiB,
    externalMiB,
  };
  lastBatches = acked;
  lastT = now;
  samples.push(s);
  process.stdout.write(
    `${s.tS.toFixed(0).padStart(7)}  ${s.vmRssMiB.toFixed(1).padStart(10)}  ${s.rssAnonMiB.toFixed(1).padStart(12)}  ${s.rssFileMiB
      .toFixed(1)
      .padStart(
        12,
      )}  ${Number.isFinite(s.heapUsedMiB) ? s.heapUsedMiB.toFixed(1).padStart(13) : '            -'}  ${Number.isFinite(s.externalMiB) ? s.externalMiB.toFixed(1).padStart(13) : '            -'}  ${String(s.batches).padStart(13)}  ${s.batchesPerS.toFixed(1).padStart(9)}  ${Number.isFinite(s.storeMiB) ? s.storeMiB.toFixed(1).padStart(10) : '         -'}\n`,
  );
};
take();
const timer = setInterval(take, sampleEveryMs);
await Promise.all(senders);
clearInterval(timer);
take();
const elapsedS = (Date.now() - started) / 1000;

const run = (await (await fetch(`${daemon.baseUrl}/v1/runs/${runId}`)).json()) as { batches: number; samples: number; sketches: number };
clients.forEach((c) => c.close());
const exitCode = await daemon.stop('SIGTERM');
await daemon.dispose();

const second = samples.filter((s) => s.tS >= elapsedS / 2);
const xs = second.map((s) => s.tS / 60);
const vmSlope = slope(
  xs,
  second.map((s) => s.vmRssMiB),
);
const anonSlope = slope(
  xs,
  second.map((s) => s.rssAnonMiB),
);
const first = samples[0]!;
const last = samples[samples.length - 1]!;
const peak = Math.max(...samples.map((s) => s.vmRssMiB));
const heapSecond = second.filter((s) => Number.isFinite(s.heapUsedMiB));
const heapSlope =
  heapSecond.length > 1
    ? slope(
        heapSecond.map((s) => s.tS / 60),
        heapSecond.map((s) => s.heapUsedMiB),
      )
    : NaN;
// Judged on RssAnon, the process's own memory. VmRSS adds RssFile: the pages of LMDB's map (the
// log, rewritten as it is trimmed) that the daemon has touched, page cache the kernel takes back
// under memory pressure, which grows with the file's pages ever used, not with a leak.
const flat = Math.abs(anonSlope) <= flatMiBPerMin;
const consistent = run.batches === acked;
process.stdout.write(
  [
    `duration ${elapsedS.toFixed(0)} s; acknowledged ${acked} batches (${(acked / elapsedS).toFixed(1)} batches/s, ${((acked * N) / elapsedS).toFixed(0)} sketches/s); ` +
      `stored batches ${run.batches}, samples ${run.samples}; SIGTERM exit ${exitCode}`,
    `VmRSS start ${first.vmRssMiB.toFixed(1)} MiB, end ${last.vmRssMiB.toFixed(1)} MiB, peak ${peak.toFixed(1)} MiB; ` +
      `RssAnon start ${first.rssAnonMiB.toFixed(1)} MiB, end ${last.rssAnonMiB.toFixed(1)} MiB`,
    `slope over the second half (${second.length} samples): VmRSS ${vmSlope.toFixed(2)} MiB/min, RssAnon ${anonSlope.toFixed(2)} MiB/min, ` +
      `V8 heap used ${Number.isFinite(heapSlope) ? `${heapSlope.toFixed(2)} MiB/min` : 'n/a'}`,
    `verdict: RssAnon ${flat ? 'FLAT' : 'GROWING'} (threshold ±${flatMiBPerMin} MiB/min); store ${consistent ? 'consistent' : `INCONSISTENT (${run.batches} stored vs ${acked} acked)`}`,
  ].join('\n') + '\n',
);
process.exitCode = flat && consistent ? 0 : 1;
