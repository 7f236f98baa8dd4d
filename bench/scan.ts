/**
 * Attribution scan: `POST /v1/runs/:run/attribute` with a new query over 100k and 1M stored samples
 * (k = 512) on a daemon child process, against side-by-side baselines over the same G rows:
 *
 *   - the store scan alone (Store.embeddingChunks, no arithmetic), in-process;
 *   - the store scan with the scoring written as plain JS loops (float64 accumulate);
 *   - the plain JS loop over the G matrix already in memory;
 *   - NumPy `G @ q` (float32 BLAS) over the same matrix dumped to a raw file (matmul timed alone);
 *   - the memory-bandwidth limit for those bytes: a JS Float32Array sum, a chunked memcpy
 *     (TypedArray.set into a cache-sized scratch) and NumPy `G.sum()`.
 *
 *   npx tsx bench/scan.ts [--sizes 100000,1000000] [--repeat 5] [--profile] [--quick]
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readSync } from 'node:fs';
import { startTestDaemon } from '../test/helpers/daemon.js';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Store } from '../daemon/store/index.js';
import { BENCH_RUN, dumpedMatrix, filledStore, filler } from './fill.js';
import {
  CACHE_DIR,
  REPO_ROOT,
  bestOf,
  fmt,
  machine,
  postJson,
  printProfile,
  profileWindow,
  quantile,
  report,
  startBenchDaemon,
} from './lib.js';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '100000,1000000' },
    repeat: { type: 'string', default: '5' },
    profile: { type: 'boolean' },
    quick: { type: 'boolean' },
  },
});
const SIZES = values.quick ? [100_000] : values.sizes.split(',').map(Number);
const REPEAT = Number(values.repeat);
const K = 512;
const LIMIT = 20;

function queryVector(seed: number): number[] {
  return Array.from({ length: K }, filler(seed * 2654435761));
}

async function attribute(port: number, seed: number): Promise<{ elapsedMs: number }> {
  const res = await postJson<{ samples: unknown[]; scanned: number; elapsedMs: number }>(port, `/v1/runs/${BENCH_RUN}/attribute`, {
    sketch: queryVector(seed),
    limit: LIMIT,
  });
  if (res.samples.length !== LIMIT) throw new Error(`attribute returned ${res.samples.length} samples`);
  return res;
}

function unitQuery(seed: number): Float64Array {
  const q = Float64Array.from(queryVector(seed));
  let norm = 0;
  for (const v of q) norm += v * v;
  norm = Math.sqrt(norm);
  for (let d = 0; d < K; d++) q[d] = (q[d] as number) / norm;
  return q;
}

/** Plain JS scoring: one float64 dot product per row. */
function jsScores(g: Float32Array, n: number, q: Float64Array, out: Float64Array): void {
  for (let i = 0; i < n; i++) {
    const off = i * K;
    let s = 0;
    for (let d = 0; d < K; d++) s += (g[off + d] as number) * (q[d] as number);
    out[i] = s;
  }
}

function jsSum(a: Float32Array): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  const n = a.length - (a.length % 4);
  for (let i = 0; i < n; i += 4) {
    s0 += a[i] as number;
    s1 += a[i + 1] as number;
    s2 += a[i + 2] as number;
    s3 += a[i + 3] as number;
  }
  return s0 + s1 + s2 + s3;
}

function jsCopy(a: Float32Array, scratch: Float32Array): void {
  for (let off = 0; off < a.length; off += scratch.length) scratch.set(a.subarray(off, Math.min(a.length, off + scratch.length)));
}

function timed(fn: () => void, repeat: number): { best: number; worst: number } {
  const times: number[] = [];
  for (let r = 0; r < repeat; r++) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  return { best: Math.min(...times), worst: Math.max(...times) };
}

function readMatrix(file: string, n: number): { g: Float32Array; ms: number } {
  const t0 = performance.now();
  const g = new Float32Array(n * K);
  const bytes = new Uint8Array(g.buffer);
  const fd = openSync(file, 'r');
  try {
    let off = 0;
    while (off < bytes.length) {
      const got = readSync(fd, bytes, off, Math.min(64 * 1024 * 1024, bytes.length - off), off);
      if (got === 0) throw new Error(`${file} is short`);
      off += got;
    }
  } finally {
    closeSync(fd);
  }
  return { g, ms: performance.now() - t0 };
}

interface Row {
  n: number;
  method: string;
  ms: number;
  spreadPct: number;
  note: string;
}

const rows: Row[] = [];
const profiles: Record<string, Awaited<ReturnType<typeof profileWindow>>> = {};
const summary: Array<Record<string, number>> = [];

for (const n of SIZES) {
  const storeDir = await filledStore(n, K);
  const gFile = await dumpedMatrix(storeDir, n, K);
  const gBytes = n * K * 4;
  const add = (method: string, ms: number, spreadPct: number, note = ''): void => {
    rows.push({ n, method, ms, spreadPct, note });
  };

  // The daemon, end to end over HTTP, each request a query it has not seen.
  const d = await startBenchDaemon({ dataDir: storeDir });
  const http: number[] = [];
  const server: number[] = [];
  try {
    for (let r = 0; r < REPEAT; r++) {
      const t0 = performance.now();
      const res = await attribute(d.httpPort, 1000 + r);
      http.push(performance.now() - t0);
      server.push(res.elapsedMs);
    }
  } finally {
    await d.stop();
  }
  if (values.profile === true && n === Math.max(...SIZES)) {
    // A daemon in this process, profiled over scans only (its start-up would swamp a whole-life profile).
    const inproc = await startTestDaemon({ logLevel: 'warn' }, storeDir);
    try {
      mkdirSync(CACHE_DIR, { recursive: true });
      profiles[`scan-${n}`] = await profileWindow(join(CACHE_DIR, `scan-${n}.cpuprofile`), async () => {
        for (let r = 0; r < REPEAT; r++) await attribute(inproc.httpPort, 2000 + r);
      });
    } finally {
      await inproc.cleanup();
    }
  }
  const h = bestOf(http, 'lower');
  const s = bestOf(server, 'lower');
  add(
    'daemon: POST /attribute (HTTP, end to end)',
    h.best,
    h.spreadPct,
    `median ${fmt(
      quantile(
        [...http].sort((a, b) => a - b),
        0.5,
      ),
    )} ms, first ${fmt(http[0] ?? NaN)} ms`,
  );
  add('daemon: engine.attribute (server-side elapsedMs)', s.best, s.spreadPct);

  // In-process store paths (the daemon is stopped: one process holds the store at a time).
  const store = await Store.open({ dataDir: storeDir, mapSizeBytes: 64 * 1024 ** 3 });
  const q = unitQuery(1000);
  let sink = 0;
  try {
    const scanOnly = timed(() => {
      for (const chunk of store.embeddingChunks(BENCH_RUN, K, 8192)) sink += chunk.rows[0] ?? 0;
    }, 3);
    add(
      'store scan only: embeddingChunks, no arithmetic',
      scanOnly.best,
      ((scanOnly.worst - scanOnly.best) / scanOnly.best) * 100,
      'segment reads + row copy',
    );
    const out = new Float64Array(8192);
    const scanJs = timed(() => {
      let best = -Infinity;
      for (const chunk of store.embeddingChunks(BENCH_RUN, K, 8192)) {
        jsScores(chunk.rows, chunk.ids.length, q, out);
        for (let i = 0; i < chunk.ids.length; i++) if ((out[i] as number) > best) best = out[i] as number;
      }
      sink += best;
    }, 2);
    add(
      'store scan + plain JS loops (float64)',
      scanJs.best,
      ((scanJs.worst - scanJs.best) / scanJs.best) * 100,
      'the daemon path with JS arithmetic',
    );
  } finally {
    await store.close();
  }

  // In-memory baselines over the same rows.
  const { g, ms: readMs } = readMatrix(gFile, n);
  add('read G file into memory (JS readSync)', readMs, 0, 'page cache → heap');
  const scores = new Float64Array(n);
  const js = timed(() => jsScores(g, n, q, scores), 3);
  add('plain JS loops over G in memory (float64)', js.best, ((js.worst - js.best) / js.best) * 100, 'arithmetic only');
  const sum = timed(() => (sink += jsSum(g)), 3);
  add('bandwidth: JS Float32Array sum', sum.best, ((sum.worst - sum.best) / sum.best) * 100, `${fmt(gBytes / sum.best / 1e6, 2)} GB/s`);
  const scratch = new Float32Array((4 * 1024 * 1024) / 4);
  const copy = timed(() => jsCopy(g, scratch), 3);
  add(
    'bandwidth: JS memcpy (TypedArray.set, 4 MiB chunks)',
    copy.best,
    ((copy.worst - copy.best) / copy.best) * 100,
    `${fmt(gBytes / copy.best / 1e6, 2)} GB/s`,
  );

  const py = JSON.parse(
    execFileSync('/usr/bin/python3', [join(REPO_ROOT, 'bench/baseline.py'), gFile, String(n), String(K), '3'], {
      encoding: 'utf8',
      timeout: 300_000,
    }),
  ) as { numpy: string; readS: number; matmulS: number; matmulWorstS: number; sumS: number; sumWorstS: number };
  add(`NumPy ${py.numpy}: np.fromfile`, py.readS * 1000, 0, 'page cache → memory');
  add('NumPy: G @ q (float32 BLAS)', py.matmulS * 1000, ((py.matmulWorstS - py.matmulS) / py.matmulS) * 100, 'arithmetic only');
  add('bandwidth: NumPy G.sum()', py.sumS * 1000, ((py.sumWorstS - py.sumS) / py.sumS) * 100, `${fmt(gBytes / py.sumS / 1e9, 2)} GB/s`);

  const limitMs = Math.min(sum.best, copy.best, py.sumS * 1000);
  summary.push({
    n,
    daemonMs: h.best,
    engineMs: s.best,
    bandwidthLimitMs: limitMs,
    // The same bandwidth applied to an int8 copy of the rows (k + 4 bytes per row, with its scale).
    bandwidthLimitInt8Ms: (limitMs * (K + 4)) / (4 * K),
    daemonOverBandwidth: h.best / limitMs,
    plainJsStoreOverDaemon: rows.find((r) => r.n === n && r.method.startsWith('store scan + plain'))!.ms / h.best,
    plainJsMemoryOverDaemon: js.best / h.best,
    daemonOverNumpy: h.best / (py.matmulS * 1000),
    storeScanOnlyShare: rows.find((r) => r.n === n && r.method.startsWith('store scan only'))!.ms / s.best,
  });
  if (sink === 42) process.stderr.write('');
}

const m = machine();
report(
  'scan',
  `Attribution scan, k = ${K}, new query, limit ${LIMIT}: best of ${REPEAT} (daemon) / 3 (baselines)`,
  ['samples', 'method', 'ms', 'M samples/s', 'GB/s', 'spread %', 'note'],
  rows.map((r) => [r.n, r.method, fmt(r.ms), fmt(r.n / r.ms / 1000, 2), fmt((r.n * K * 4) / r.ms / 1e6, 2), fmt(r.spreadPct, 0), r.note]),
  { summary, profiles, target: 'scan over 1M (k=512) <= 0.5 s, within 3x of the bandwidth limit, >= 5x faster than plain JS' },
);
process.stdout.write(
  `\nRatios (machine ${m.cores} cores, shared)\n\n${(await import('../daemon/cli/common.js')).table(
    [
      'samples',
      'daemon ms',
      'limit ms (f32 rows)',
      'limit ms (int8 rows)',
      'daemon ÷ f32 limit',
      'daemon ÷ int8 limit',
      'plain JS (store) ÷ daemon',
      'plain JS (memory) ÷ daemon',
      'daemon ÷ NumPy matmul',
      'store scan ÷ engine',
    ],
    summary.map((x) => [
      x['n']!,
      fmt(x['daemonMs']!),
      fmt(x['bandwidthLimitMs']!),
      fmt(x['bandwidthLimitInt8Ms']!),
      fmt(x['daemonOverBandwidth']!, 2),
      fmt(x['daemonMs']! / x['bandwidthLimitInt8Ms']!, 2),
      fmt(x['plainJsStoreOverDaemon']!, 2),
      fmt(x['plainJsMemoryOverDaemon']!, 2),
      fmt(x['daemonOverNumpy']!, 2),
      fmt(x['storeScanOnlyShare']!, 2),
    ]),
  )}`,
);
for (const [name, p] of Object.entries(profiles)) printProfile(name, p);
